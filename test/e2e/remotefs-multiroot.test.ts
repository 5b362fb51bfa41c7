/**
 * Multi-root SFTP and FTP sources (issue 14.5) against real sshd and vsftpd: `paths` listed in
 * order, `match: first` hiding a relative path under later roots, and every item acting on
 * its own root (tidy-up, openPath, ledger identity).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Item } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { ftpSource } from '../../plugins/ftp/source.js';
import { sftpSource } from '../../plugins/sftp/source.js';
import { REMOTE_CONNECTORS, type RemoteServer } from '../helpers/remote-fs-connectors.js';
import { readAll } from '../helpers/remote-fs-fixtures.js';
import { codeOf, listAll } from '../helpers/source-probe.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';

const SAME_TIME = new Date('2023-04-05T06:07:08.000Z');
const rooted = (items: Item[]) => items.map((i) => [i.root, i.path]);

describe('remote sources: validate paths', () => {
  for (const plugin of [sftpSource, ftpSource]) {
    it(`${plugin.name}: exactly one of path and paths; match only with paths; no folder twice`, () => {
      const fail = (config: object) => {
        try {
          plugin.validate!(config as never);
        } catch (err) {
          return [
            (err as { code: string }).code,
            (err as Error).message,
            (err as { context: { jsonPath: string } }).context.jsonPath,
          ];
        }
        return undefined;
      };
      expect(fail({ path: 'a', paths: ['b'] })).toEqual([
        'SLUICE_E_CONFIG',
        'set either `path` (one folder) or `paths` (several), not both',
        '/paths',
      ]);
      expect(fail({ path: 'a', match: 'first' })?.[2]).toBe('/match');
      expect(fail({ paths: ['a', 'b', 'a'] })?.slice(1)).toEqual(['"a" is in `paths` twice', '/paths/2']);
      expect(fail({ paths: ['a', 'b'], match: 'first' })).toBeUndefined();
      expect(fail({})).toBeUndefined();
    });
  }
});

for (const connector of REMOTE_CONNECTORS) {
  describe(`${connector.protocol}: several roots`, () => {
    let server: RemoteServer;
    let ws: Workspace;
    const roots = (...dirs: string[]) => ({ path: undefined, paths: dirs.map((d) => server.path(d)) });

    beforeAll(async () => {
      server = await connector.start('sluice-roots');
      ws = makeWorkspace();
    });
    afterAll(async () => {
      ws?.cleanup();
      await server?.stop();
    });

    it('lists every root in order, each item carrying its root; match: first hides later copies', async () => {
      server.put('l/a/x.csv', 'x from a');
      server.put('l/a/only-a.csv', 'a');
      server.put('l/b/x.csv', 'x from b, longer');
      server.put('l/b/only-b.csv', 'b');
      server.put('l/c/sub/x.csv', 'deeper: another relative path');
      const [a, b, c] = ['l/a', 'l/b', 'l/c'].map((d) => server.path(d));
      const all = await server.source('', roots('l/a', 'l/b', 'l/c'));
      const listed: Item[] = [];
      for await (const item of all.list(new AbortController().signal)) listed.push(item);
      expect(rooted(listed)).toEqual([
        [a, 'only-a.csv'],
        [a, 'x.csv'],
        [b, 'only-b.csv'],
        [b, 'x.csv'],
        [c, 'sub/x.csv'],
      ]);
      const first = await server.source('', { ...roots('l/a', 'l/b', 'l/c'), match: 'first' });
      const firstItems = await listAll(first);
      expect(rooted(firstItems)).toEqual([
        [a, 'only-a.csv'],
        [b, 'only-b.csv'],
        [c, 'sub/x.csv'],
        [a, 'x.csv'],
      ]);
      expect((await readAll(await firstItems[3].open())).toString()).toBe('x from a');
      // A single `path` stamps no root: identities of existing pipelines do not change.
      expect((await listAll(await server.source('l/a'))).map((i) => i.root)).toEqual([undefined, undefined]);
    });

    it('a root inside another is listed as itself, never twice', async () => {
      server.put('n/top.csv', 't');
      server.put('n/inner/in.csv', 'i');
      const [outer, inner] = ['n', 'n/inner'].map((d) => server.path(d));
      const items = await listAll(await server.source('', roots('n', 'n/inner')));
      expect(rooted(items)).toEqual([
        [inner, 'in.csv'],
        [outer, 'top.csv'],
      ]);
    });

    it('openPath, remove and move act on the item root', async () => {
      server.put('t/a/x.csv', 'x from a');
      server.put('t/b/x.csv', 'x from b');
      server.put('t/b/y.csv', 'y from b');
      const src = await server.source('', roots('t/a', 't/b'));
      const [xa, xb, yb] = await listAll(src).then((items) =>
        items.sort((p, q) => `${p.path}${p.root}`.localeCompare(`${q.path}${q.root}`)),
      );
      expect([xa.root, xb.root, yb.root]).toEqual([
        server.path('t/a'),
        server.path('t/b'),
        server.path('t/b'),
      ]);
      const open = src.openPath as (
        p: string,
        s?: AbortSignal,
        root?: string,
      ) => ReturnType<NonNullable<typeof src.openPath>>;
      expect((await readAll((await open('x.csv', undefined, xb.root))!)).toString()).toBe('x from b');
      expect((await readAll((await open('x.csv'))!)).toString()).toBe('x from a');
      expect((await readAll((await open('y.csv'))!)).toString()).toBe('y from b');
      expect(await codeOf(open('x.csv', undefined, server.path('elsewhere')))).toBe('SLUICE_E_NAME');

      await src.remove!(xb);
      expect(readdirSync(join(server.rootDir, 't/a'))).toEqual(['x.csv']);
      expect(readdirSync(join(server.rootDir, 't/b'))).toEqual(['y.csv']);
      await src.move!(yb, server.path('t/done'));
      expect(readdirSync(join(server.rootDir, 't/done'))).toEqual(['y.csv']);
      expect(readdirSync(join(server.rootDir, 't/b'))).toEqual([]);
      expect(await codeOf(src.remove!({ ...xa, root: server.path('t') }))).toBe('SLUICE_E_NAME');
      expect(readFileSync(join(server.rootDir, 't/a/x.csv'), 'utf8')).toBe('x from a');
    });

    it('check proves every root', async () => {
      server.put('k/a/1.csv', '1');
      server.put('k/b/2.csv', '2');
      const src = await server.source('', roots('k/a', 'k/b'));
      const { detail } = await src.check!({ depth: 'full', signal: new AbortController().signal });
      expect(detail).toMatch(
        /^logged in as [^,]+, \S+k\/a listed \(1 entries\); \S+k\/b listed \(1 entries\)$/,
      );
      const missing = await server.source('', roots('k/a', 'k/nope'));
      expect(await codeOf(missing.check!({ depth: 'cheap', signal: new AbortController().signal }))).toBe(
        'SLUICE_E_SOURCE',
      );
    });

    it('pipeline: the same name, size and mtime under two roots are two items; one destination per pass, so the second is a collision and stays in its root', async () => {
      server.put('p/a/same.csv', 'same bytes', SAME_TIME);
      server.put('p/b/same.csv', 'same bytes', SAME_TIME);
      const file = ws.pipeline(
        [
          `name: roots-${connector.protocol}`,
          'source:',
          `  ${connector.protocol}:`,
          ...server.yaml(),
          `    paths: ["${server.path('p/a')}", "${server.path('p/b')}"]`,
          '    after_success: delete',
          'sink:',
          `  local: { path: ${ws.path('out')}, if_exists: rename }`,
          '',
        ].join('\n'),
        `roots-${connector.protocol}.yaml`,
      );
      const summary = await runPipelineFile(file);
      expect(summary).toMatchObject({ ok: 1, failed: 1 });
      expect(summary.failures.map((f) => f.code)).toEqual(['SLUICE_E_COLLISION']);
      expect(ws.files('out')).toEqual(['same.csv']);
      // Each item is its own: the delivered one is deleted from its root, the other is kept.
      const left = ['p/a/same.csv', 'p/b/same.csv'].filter((p) => existsSync(join(server.rootDir, p)));
      expect(left).toHaveLength(1);
    });

    it('pipeline: a ready marker and its after_success follow the item root', async () => {
      server.put('r/a/x.csv', 'x in a');
      server.put('r/a/x.csv.done', '');
      server.put('r/b/x.csv', 'x in b, not ready');
      server.put('r/b/y.csv', 'y in b');
      server.put('r/b/y.csv.done', '');
      const file = ws.pipeline(
        [
          `name: ready-${connector.protocol}`,
          'source:',
          `  ${connector.protocol}:`,
          ...server.yaml(),
          `    paths: ["${server.path('r/a')}", "${server.path('r/b')}"]`,
          '    ready: { marker: "{path}.done" }',
          '    after_success: delete',
          'sink:',
          `  local: { path: ${ws.path('ready-out')} }`,
          '',
        ].join('\n'),
        `ready-${connector.protocol}.yaml`,
      );
      expect(await runPipelineFile(file)).toMatchObject({ ok: 2, failed: 0 });
      expect(ws.read('ready-out/x.csv')).toBe('x in a');
      expect(ws.read('ready-out/y.csv')).toBe('y in b');
      expect(readdirSync(join(server.rootDir, 'r/a'))).toEqual([]);
      expect(readdirSync(join(server.rootDir, 'r/b'))).toEqual(['x.csv']);
    });
  });
}
