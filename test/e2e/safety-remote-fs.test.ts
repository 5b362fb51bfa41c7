/**
 * Data safety on the SFTP and FTP connectors (issue 11), against real sshd and vsftpd: a name
 * is one name, an unreadable folder does not stop the listing, a linked folder is not walked,
 * tidy-up acts only on the listed version, and the sink reports the name it wrote.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asideName } from '../../core/item.js';
import type { Item } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { REMOTE_CONNECTORS, type RemoteServer } from '../helpers/remote-fs-connectors.js';
import { readAll } from '../helpers/remote-fs-fixtures.js';
import { REPLACED_CONTENT, safetyRegistry } from '../helpers/replacing-sink.js';
import { codeOf, listAll } from '../helpers/source-probe.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';

for (const connector of REMOTE_CONNECTORS) {
  describe(`${connector.protocol}: data safety`, () => {
    let server: RemoteServer;
    let uid: number;
    let gid: number;
    let ws: Workspace;

    /** Writes files (name → bytes; a name may be a Buffer of raw bytes) into `dir` on the server, owned by its user. */
    const put = (dir: string, files: Array<[string | Buffer, string]>) => {
      const abs = join(server.rootDir, dir);
      mkdirSync(abs, { recursive: true });
      chownSync(abs, uid, gid);
      for (const [name, body] of files) {
        const path = Buffer.isBuffer(name) ? Buffer.concat([Buffer.from(`${abs}/`), name]) : join(abs, name);
        writeFileSync(path, body);
        chownSync(path, uid, gid);
      }
    };
    const source = (dir: string) => server.source(dir);
    const pipeline = (name: string, dir: string, extra: string, sink = 'local: { path: ./out }') =>
      ws.pipeline(
        [
          `name: ${name}`,
          'source:',
          `  ${connector.protocol}:`,
          ...server.yaml(),
          `    path: "${server.path(dir)}"`,
          ...extra.split('\n').map((l) => `    ${l}`),
          'sink:',
          `  ${sink}`,
          '',
        ].join('\n'),
        `${name}.yaml`,
      );
    const run = (file: string) => runPipelineFile(file, { registry: safetyRegistry() });

    beforeAll(async () => {
      server = await connector.start('sluice-safety');
      uid = Number(execFileSync('id', ['-u', server.username]).toString());
      gid = Number(execFileSync('id', ['-g', server.username]).toString());
      ws = makeWorkspace();
    });

    afterAll(async () => {
      ws?.cleanup();
      await server?.stop();
    });

    it('a\\b.txt is its own file: never delivered or deleted as a/b.txt', async () => {
      put('bs', [['a\\b.txt', 'backslash file']]);
      put('bs/a', [['b.txt', 'the real a/b.txt']]);
      const items = await listAll(await source('bs'));
      expect(items.map((i) => i.path)).toEqual(['a/b.txt', 'a\\b.txt']);

      const result = await run(pipeline('bs', 'bs', 'after_success: delete', 'local: { path: ./out-bs }'));
      expect(ws.read('out-bs/a/b.txt')).toBe('the real a/b.txt');
      expect(readdirSync(join(server.rootDir, 'bs')).sort()).toEqual(['a', 'a\\b.txt']);
      expect(readdirSync(join(server.rootDir, 'bs/a'))).toEqual([]);
      expect(result).toMatchObject({ ok: 1, failed: 1 });
    });

    it('..\\..\\victim.txt stays a name; a path that leads out is refused', async () => {
      put('v/in', [['..\\..\\victim.txt', 'dropped']]);
      put('', [['victim.txt', 'outside the root']]);
      const src = await source('v/in');
      const [item] = await listAll(src);
      expect(item.path).toBe('..\\..\\victim.txt');
      const forged = { ...item, path: '../../victim.txt' };
      expect(await codeOf(src.remove!(forged))).toBe('SLUICE_E_NAME');
      expect(await codeOf(src.move!(forged, server.path('moved')))).toBe('SLUICE_E_NAME');
      expect(await src.openPath!('../../victim.txt')).toBeNull();
      expect(existsSync(join(server.rootDir, 'victim.txt'))).toBe(true);

      const result = await run(
        pipeline(
          'victim',
          'v/in',
          'after_success: delete',
          'local: { path: ./out-v }\nsteps:\n  - rename: { to: "{name}" }',
        ),
      );
      expect(result).toMatchObject({ ok: 0, failed: 1 });
      expect(readdirSync(join(server.rootDir, 'v/in'))).toEqual(['..\\..\\victim.txt']);
      expect(existsSync(join(server.rootDir, 'victim.txt'))).toBe(true);
    });

    it('reports a Latin-1 name as a failed item, never skipped or mapped', async () => {
      put('latin', [
        [Buffer.from('caf\xe9.txt', 'latin1'), 'legacy'],
        ['good.txt', 'good'],
      ]);
      const items = await listAll(await source('latin'));
      expect(items.map((i) => [i.path, i.rejected === undefined])).toEqual([
        ['caf\ufffd.txt', false],
        ['good.txt', true],
      ]);
      expect(items[0].rejected).toMatch(/not valid UTF-8/);
      expect(await codeOf(items[0].open())).toBe('SLUICE_E_NAME');

      const result = await run(
        pipeline('latin', 'latin', 'after_success: delete', 'local: { path: ./out-latin }'),
      );
      expect(result).toMatchObject({ ok: 1, failed: 1 });
      expect(readdirSync(join(server.rootDir, 'latin'), { encoding: 'buffer' })).toEqual([
        Buffer.from('caf\xe9.txt', 'latin1'),
      ]);
    });

    it('reports an unreadable folder and goes on with the others; does not walk a linked folder', async () => {
      put('locked/a', [['1.txt', 'one']]);
      put('locked/b-locked', [['2.txt', 'two']]);
      put('locked/c', [['3.txt', 'three']]);
      chmodSync(join(server.rootDir, 'locked/b-locked'), 0o000);
      // A link back to its parent: walked, it would never end.
      symlinkSync('..', join(server.rootDir, 'locked/c/loop'));
      const items = await listAll(await source('locked'));
      expect(items.map((i) => i.path)).toEqual(['a/1.txt', 'b-locked', 'c/3.txt']);
      expect(items[1].rejected).toMatch(/could not be listed/);

      const result = await run(
        pipeline('locked', 'locked', 'after_success: delete', 'local: { path: ./out-locked }'),
      );
      expect(result).toMatchObject({ ok: 2, failed: 1 });
      expect(readdirSync(ws.path('out-locked')).sort()).toEqual(['a', 'c']);
      chmodSync(join(server.rootDir, 'locked/b-locked'), 0o755);
      expect(readdirSync(join(server.rootDir, 'locked/b-locked'))).toEqual(['2.txt']);
    });

    it('remove and move leave a file changed since the listing (SLUICE_E_CHANGED), act on an unchanged one', async () => {
      put('ver', [
        ['big.bin', 'old version'],
        ['other.bin', 'stays the same'],
      ]);
      const src = await source('ver');
      const [big, other] = await listAll(src);
      const file = join(server.rootDir, 'ver/big.bin');
      // Same size, an mtime seconds later: another version all the same.
      writeFileSync(file, 'new version');
      utimesSync(file, new Date(), new Date(big.mtime!.getTime() + 5000));
      expect(await codeOf(src.remove!(big))).toBe('SLUICE_E_CHANGED');
      expect(await codeOf(src.move!(big, server.path('ver-done')))).toBe('SLUICE_E_CHANGED');
      expect(readdirSync(join(server.rootDir, 'ver')).sort()).toEqual(['big.bin', 'other.bin']);

      await src.move!(other, server.path('ver-done'));
      expect(readdirSync(join(server.rootDir, 'ver-done'))).toEqual(['other.bin']);
      await src.remove!(other); // already gone: not an error
      await src.remove!(big).catch(() => undefined);
      expect(readdirSync(join(server.rootDir, 'ver'))).toEqual(['big.bin']);
    });

    it('a file a tidy-up left aside (connection lost, process killed) is listed as the item it was and tidied', async () => {
      put('strand', [['f.dat', 'delivered, then set aside']]);
      const src = await source('strand');
      const [f] = await listAll(src);
      renameSync(join(server.rootDir, 'strand/f.dat'), join(server.rootDir, 'strand', asideName(f)));
      const [again] = await listAll(src);
      expect([again.path, again.size, again.mtime?.getTime(), again.rejected]).toEqual([
        'f.dat',
        f.size,
        f.mtime!.getTime(),
        undefined,
      ]);
      // Its bytes are not at its path: said, so that nothing re-opens it by its path (pool threads).
      expect(again.storedAt).toBe(asideName(f));
      expect((await readAll(await again.open())).toString()).toBe('delivered, then set aside');
      await src.remove!(again);
      expect(readdirSync(join(server.rootDir, 'strand'))).toEqual([]);
    });

    it('a file replaced between commit and after_success: delete is kept for the next pass', async () => {
      put('rep', [['big.bin', 'the version that was delivered']]);
      const replace = join(server.rootDir, 'rep/big.bin');
      const result = await run(
        pipeline(
          'rep',
          'rep',
          'after_success: delete',
          `replacing_local: { path: ./out-rep, replace: "${replace}" }`,
        ),
      );
      expect(result).toMatchObject({ ok: 1, failed: 0 });
      expect(ws.read('out-rep/big.bin')).toBe('the version that was delivered');
      expect(readdirSync(join(server.rootDir, 'rep'))).toEqual(['big.bin']);
      expect(readFileSync(replace, 'utf8')).toBe(REPLACED_CONTENT);
    });

    it('sink: if_exists: rename reserves each candidate and reports the destination written; skip reports the existing size', async () => {
      put('snk', [['x.csv', 'already here, longer']]);
      const sink = await server.sink('snk', { if_exists: 'rename' });
      const reserved: string[] = [];
      const commit = await sink.write({
        item: { source: 's', path: 'x.csv' } as Item,
        destination: 'x.csv',
        body: Readable.from([Buffer.from('new')]),
        signal: new AbortController().signal,
        reserve: async (name) => {
          expect(existsSync(join(server.rootDir, 'snk', name))).toBe(name === 'x.csv');
          reserved.push(name);
        },
      });
      expect(reserved).toEqual(['x.csv', 'x (1).csv']);
      expect(commit).toMatchObject({ destination: 'x (1).csv', size: 3 });

      const skip = await server.sink('snk', { if_exists: 'skip' });
      const skipped = await skip.write({
        item: { source: 's', path: 'x.csv' } as Item,
        destination: 'x.csv',
        body: Readable.from([Buffer.from('new')]),
        signal: new AbortController().signal,
      });
      expect(skipped).toMatchObject({ skipped: true, size: 'already here, longer'.length });
      expect(skipped.destination).toBeUndefined();
    });

    // FTP cannot tell a link from what it leads to (no lstat; the ftp sink says so), so only
    // SFTP is held to this.
    if (connector.protocol === 'sftp') {
      const request = (destination: string) => ({
        item: { source: 's', path: destination } as Item,
        destination,
        body: Readable.from([Buffer.from('bravo')]),
        signal: new AbortController().signal,
      });
      const refusal = (message: RegExp) => ({
        code: 'SLUICE_E_DESTINATION',
        message: expect.stringMatching(message),
      });

      it('sink: a folder below the root that is a link leading out is refused; nothing is written there', async () => {
        put('lnk-out', []);
        put('lnk-elsewhere', [['.keep', '']]);
        symlinkSync(join(server.rootDir, 'lnk-elsewhere'), join(server.rootDir, 'lnk-out/2024'));
        const sink = await server.sink('lnk-out', {});
        await expect(sink.write(request('2024/a.txt'))).rejects.toMatchObject(
          refusal(/lnk-out\/2024 is a symbolic link/),
        );
        expect(readdirSync(join(server.rootDir, 'lnk-elsewhere'))).toEqual(['.keep']);
        // A real folder beside it takes the file.
        expect(await sink.write(request('2025/a.txt'))).toMatchObject({ size: 5 });
      });

      it('sink: if_exists: skip through a linked folder that leads back to the source is refused, before any upload', async () => {
        put('lnk-src/2024', [['a.txt', 'alpha']]);
        put('lnk-back', []);
        symlinkSync(join(server.rootDir, 'lnk-src/2024'), join(server.rootDir, 'lnk-back/2024'));
        const sink = await server.sink('lnk-back', { if_exists: 'skip' });
        await expect(sink.stat!('2024/a.txt', new AbortController().signal)).rejects.toMatchObject(
          refusal(/lnk-back\/2024 is a symbolic link/),
        );
        await expect(sink.write(request('2024/a.txt'))).rejects.toMatchObject(
          refusal(/lnk-back\/2024 is a symbolic link/),
        );
        expect(readFileSync(join(server.rootDir, 'lnk-src/2024/a.txt'), 'utf8')).toBe('alpha');
      });

      it('sink: a folder named ..x that is a link is checked like any other', async () => {
        put('lnk-dots', []);
        put('lnk-dots-elsewhere', [['.keep', '']]);
        symlinkSync(join(server.rootDir, 'lnk-dots-elsewhere'), join(server.rootDir, 'lnk-dots/..x'));
        const sink = await server.sink('lnk-dots', {});
        await expect(sink.write(request('..x/b.txt'))).rejects.toMatchObject(refusal(/is a symbolic link/));
        expect(readdirSync(join(server.rootDir, 'lnk-dots-elsewhere'))).toEqual(['.keep']);
      });

      it('source: move_to never moves a file through a link planted below its folder; the file stays', async () => {
        put('mvl/sub', [['x.txt', 'x']]);
        put('mvl-done', []);
        put('mvl-elsewhere', [['.keep', '']]);
        symlinkSync(join(server.rootDir, 'mvl-elsewhere'), join(server.rootDir, 'mvl-done/sub'));
        const src = await source('mvl');
        const [x] = await listAll(src);
        expect(x.path).toBe('sub/x.txt');
        await expect(src.move!(x, server.path('mvl-done'))).rejects.toMatchObject(
          refusal(/mvl-done\/sub is a symbolic link/),
        );
        expect(readdirSync(join(server.rootDir, 'mvl-elsewhere'))).toEqual(['.keep']);
        expect(readdirSync(join(server.rootDir, 'mvl/sub'))).toEqual(['x.txt']);
      });

      it.each(['skip', 'fail'])(
        'sink: if_exists: %s — a link at the destination to a file with the same bytes is no copy',
        async (ifExists) => {
          put(`lnk-${ifExists}`, []);
          put(`lnk-${ifExists}-target`, [['b.txt', 'bravo']]);
          symlinkSync(
            join(server.rootDir, `lnk-${ifExists}-target/b.txt`),
            join(server.rootDir, `lnk-${ifExists}/b.txt`),
          );
          const sink = await server.sink(`lnk-${ifExists}`, { if_exists: ifExists });
          await expect(sink.stat!('b.txt', new AbortController().signal)).rejects.toMatchObject(
            refusal(/exists and is a symbolic link/),
          );
          await expect(sink.write(request('b.txt'))).rejects.toMatchObject(
            refusal(/exists and is a symbolic link/),
          );
          expect(readFileSync(join(server.rootDir, `lnk-${ifExists}-target/b.txt`), 'utf8')).toBe('bravo');
          expect(readdirSync(join(server.rootDir, `lnk-${ifExists}`))).toEqual(['b.txt']);
        },
      );
    }
  });
}
