/**
 * Data safety on the local connector (issue 11): a name is one name, an unreadable folder does
 * not stop the listing, tidy-up acts only on the listed version, move_to across file systems,
 * and the sink reports the name it wrote.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { asideName } from '../../core/item.js';
import type { Item, SourceInstance } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { localSink } from '../../plugins/local/sink.js';
import { localSource } from '../../plugins/local/source.js';
import { makePluginContext } from '../helpers/context.js';
import { REPLACED_CONTENT, safetyRegistry } from '../helpers/replacing-sink.js';
import { codeOf, listAll } from '../helpers/source-probe.js';
import { listFiles, makeWorkspace, sha256, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
  ws?.cleanup();
});

const run = (file: string) => runPipelineFile(file, { registry: safetyRegistry() });

/** A local sink on ./out of the workspace, in code. */
const outSink = (cfg: Record<string, unknown> = {}) =>
  localSink.create({ path: './out', ...cfg } as never, makePluginContext({ baseDir: ws.dir }));

async function source(path: string, extra: Record<string, unknown> = {}): Promise<SourceInstance> {
  return localSource.create(
    { path, recursive: true, ...extra } as never,
    makePluginContext({ baseDir: ws.dir }),
  );
}

const pipeline = (name: string, src: string, sink = 'local: { path: ./out }', steps = '') =>
  `name: ${name}\nsource:\n  local:\n${src
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n')}\n${steps}sink:\n  ${sink}\n`;

/** Runs `fn` with the effective uid/gid of `nobody`, so permissions bite (tests run as root). */
async function asNobody<T>(fn: () => Promise<T>): Promise<T> {
  process.setegid!(65534);
  process.seteuid!(65534);
  try {
    return await fn();
  } finally {
    process.seteuid!(0);
    process.setegid!(0);
  }
}

describe('local: a name is one name', () => {
  it('a\\b.txt is its own file: never read, delivered or deleted as a/b.txt', async () => {
    ws = makeWorkspace();
    ws.write('in/a\\b.txt', 'backslash file');
    ws.write('in/a/b.txt', 'the real a/b.txt');
    const items = await listAll(await source('in'));
    expect(items.map((i) => i.path)).toEqual(['a/b.txt', 'a\\b.txt']);
    expect((await (await source('in')).readAll!(items[1])).toString()).toBe('backslash file');

    const file = ws.pipeline(pipeline('bs', 'path: ./in\nafter_success: delete'));
    const result = await run(file);
    // a/b.txt is delivered with its own bytes and deleted; a\b.txt fails at the sink (a
    // backslash is refused in destinations) and is kept.
    expect(ws.read('out/a/b.txt')).toBe('the real a/b.txt');
    // (readdirSync: the workspace helper's listFiles spells `\\` as `/`.)
    expect(readdirSync(ws.path('in')).sort()).toEqual(['a', 'a\\b.txt']);
    expect(readdirSync(ws.path('in/a'))).toEqual([]);
    expect(ws.read('in/a\\b.txt')).toBe('backslash file');
    expect(result.ok).toBe(1);
    expect(result.failed).toBe(1);
  });

  it('..\\..\\..\\victim.txt never reaches outside the source folder', async () => {
    ws = makeWorkspace();
    ws.write('victim.txt', 'outside the root');
    ws.write('x/y/in/..\\..\\..\\victim.txt', 'dropped by anyone');
    ws.write('x/y/in/ok.txt', 'fine');
    const src = await source('x/y/in');
    const items = await listAll(src);
    expect(items.map((i) => i.path)).toEqual(['..\\..\\..\\victim.txt', 'ok.txt']);
    expect((await src.readAll!(items[0])).toString()).toBe('dropped by anyone');
    // A path that does lead out (a forged or revived item) is refused by every operation.
    const forged = { ...items[0], path: '../../../victim.txt', origin: undefined };
    expect(await codeOf(src.readAll!(forged))).toBe('SLUICE_E_NAME');
    const origin = { kind: 'local', endpoint: 'localhost', location: { path: ws.path('victim.txt') } };
    expect(await codeOf(src.readAll!({ ...items[1], origin }))).toBe('SLUICE_E_NAME');
    expect(await codeOf(src.remove!(forged))).toBe('SLUICE_E_NAME');
    expect(await codeOf(src.move!(forged, 'done'))).toBe('SLUICE_E_NAME');
    expect(await src.openPath!('../../../victim.txt')).toBeNull();

    const file = ws.pipeline(
      pipeline(
        'victim',
        'path: ./x/y/in\nafter_success: delete',
        'local: { path: ./out }',
        'steps:\n  - rename: { to: "{name}" }\n',
      ),
    );
    const result = await run(file);
    expect(ws.read('victim.txt')).toBe('outside the root');
    expect(readdirSync(ws.path('x/y/in'))).toEqual(['..\\..\\..\\victim.txt']);
    expect(ws.files('out')).toEqual(['ok.txt']);
    expect(result).toMatchObject({ ok: 1, failed: 1 });
  });

  it('reports a Latin-1 name and a control character as failed items, never skipped or mapped', async () => {
    ws = makeWorkspace();
    mkdirSync(ws.path('in'));
    writeFileSync(Buffer.from(`${ws.path('in')}/caf\xe9.txt`, 'latin1'), 'legacy');
    ws.write('in/line\nbreak.txt', 'newline');
    ws.write('in/good.txt', 'good');
    const items = await listAll(await source('in'));
    const rejected = items.filter((i) => i.rejected);
    expect(items.filter((i) => !i.rejected).map((i) => i.path)).toEqual(['good.txt']);
    expect(rejected).toHaveLength(2);
    expect(rejected.find((i) => i.path.startsWith('caf'))?.rejected).toMatch(
      /not valid UTF-8 \(bytes 63 61 66 e9/,
    );
    expect(rejected.find((i) => i.path.startsWith('line'))).toMatchObject({
      path: 'line\\x0abreak.txt',
      rejected: expect.stringMatching(/control character/),
    });
    for (const item of rejected) expect(await codeOf(item.open())).toBe('SLUICE_E_NAME');

    const result = await run(ws.pipeline(pipeline('names', 'path: ./in\nafter_success: delete')));
    expect(result).toMatchObject({ ok: 1, failed: 2 });
    expect(readdirSync(ws.path('in'), { encoding: 'buffer' })).toHaveLength(2); // both kept
    expect(ws.files('out')).toEqual(['good.txt']);
  });

  it('never follows a symbolic link: links are not listed, a folder swapped for a link leads nowhere', async () => {
    ws = makeWorkspace();
    ws.write('secret/passwd', 'outside');
    ws.write('in/sub/passwd', 'inside');
    symlinkSync(ws.path('secret/passwd'), ws.path('in/link.txt'));
    symlinkSync(ws.path('secret'), ws.path('in/linked-dir'));
    const src = await source('in');
    const items = await listAll(src);
    expect(items.map((i) => i.path)).toEqual(['sub/passwd']);
    // After the listing, a producer swaps the folder for a link to another one.
    renameSync(ws.path('in/sub'), ws.path('in/sub-was'));
    symlinkSync(ws.path('secret'), ws.path('in/sub'));
    expect(await codeOf(items[0].open())).toBe('SLUICE_E_NAME');
    expect(await codeOf(src.readAll!(items[0]))).toBe('SLUICE_E_NAME');
    expect(await codeOf(src.remove!(items[0]))).toBe('SLUICE_E_NAME');
    expect(await src.openPath!('sub/passwd')).toBeNull();
    expect(await src.openPath!('link.txt')).toBeNull();
    expect(ws.read('secret/passwd')).toBe('outside');
  });
});

describe('local: an unreadable sub-folder', () => {
  it('is reported and the listing goes on with the other folders', async () => {
    ws = makeWorkspace();
    ws.write('in/a/1.txt', 'one');
    ws.write('in/b-locked/2.txt', 'two');
    ws.write('in/c/3.txt', 'three');
    execFileSync('chown', ['-R', 'nobody:nogroup', ws.dir]);
    chmodSync(ws.path('in/b-locked'), 0o000);
    const src = await source('in');
    const items = await asNobody(() => listAll(src));
    expect(items.map((i) => i.path)).toEqual(['a/1.txt', 'b-locked', 'c/3.txt']);
    expect(items[1].rejected).toMatch(/could not be listed \(EACCES\)/);

    const file = ws.pipeline(pipeline('locked', 'path: ./in\nafter_success: delete'));
    execFileSync('chown', ['nobody:nogroup', file]);
    const result = await asNobody(() => run(file));
    expect(result).toMatchObject({ ok: 2, failed: 1 });
    expect(ws.files('out')).toEqual(['a/1.txt', 'c/3.txt']);
    chmodSync(ws.path('in/b-locked'), 0o755);
    expect(ws.files('in')).toEqual(['b-locked/2.txt']);
  });
});

describe('local: tidy-up acts only on the listed version', () => {
  it('remove and move leave a file changed since the listing (SLUICE_E_CHANGED), act on an unchanged one', async () => {
    ws = makeWorkspace();
    ws.write('in/big.bin', 'old version');
    ws.write('in/other.bin', 'stays the same');
    const src = await source('in');
    const [big, other] = await listAll(src);
    ws.write('in/big.bin', 'new version!');
    expect(await codeOf(src.remove!(big))).toBe('SLUICE_E_CHANGED');
    expect(await codeOf(src.move!(big, 'done'))).toBe('SLUICE_E_CHANGED');
    expect(ws.read('in/big.bin')).toBe('new version!');
    // Same size, other mtime: still another version.
    ws.write('in/big.bin', 'old version');
    utimesSync(ws.path('in/big.bin'), new Date(), new Date(big.mtime!.getTime() + 3000));
    expect(await codeOf(src.remove!(big))).toBe('SLUICE_E_CHANGED');
    expect(readdirSync(ws.path('in')).sort()).toEqual(['big.bin', 'other.bin']); // nothing left aside

    await src.move!(other, 'done');
    expect(ws.read('done/other.bin')).toBe('stays the same');
    await src.remove!(other); // already gone: not an error
  });

  it('a file a killed tidy-up left aside is listed as the item it was, and its tidy-up redone', async () => {
    ws = makeWorkspace();
    ws.write('in/d/f.dat', 'delivered, then set aside');
    ws.write('in/d/g.dat', 'set aside, then replaced by its producer');
    const src = await source('in');
    const [f, g] = await listAll(src);
    // What a SIGKILL between the rename aside and the unlink leaves behind.
    renameSync(ws.path('in/d/f.dat'), ws.path('in/d', asideName(f)));
    renameSync(ws.path('in/d/g.dat'), ws.path('in/d', asideName(g)));
    writeFileSync(ws.path('in/d', asideName(g)), 'another version');
    const again = await listAll(src);
    expect(again.map((i) => [i.path, i.size, i.mtime?.getTime(), i.rejected === undefined])).toEqual([
      [`d/${asideName(g)}`, 'another version'.length, expect.any(Number), false],
      ['d/f.dat', f.size, f.mtime!.getTime(), true],
    ]);
    expect(again[0].rejected).toMatch(/rename it back to "g.dat"/);
    expect((await src.readAll!(again[1])).toString()).toBe('delivered, then set aside');
    await src.remove!(again[1]);
    expect(readdirSync(ws.path('in/d'))).toEqual([asideName(g)]);
  });

  it('a file replaced between commit and after_success: delete is kept for the next pass', async () => {
    ws = makeWorkspace();
    ws.write('in/big.bin', 'the version that was delivered');
    const file = ws.pipeline(
      pipeline(
        'replace',
        'path: ./in\nafter_success: delete',
        'replacing_local: { path: ./out, replace: ./in/big.bin }',
      ),
    );
    const result = await run(file);
    expect(result).toMatchObject({ ok: 1, failed: 0 });
    expect(ws.read('out/big.bin')).toBe('the version that was delivered');
    expect(ws.read('in/big.bin')).toBe(REPLACED_CONTENT);
    expect(readdirSync(ws.path('in'))).toEqual(['big.bin']);
  });
});

describe('local sink: never writes through a symbolic link in its tree', () => {
  it('a folder under the sink root that is a link leading out: refused, nothing written there, the source kept', async () => {
    ws = makeWorkspace();
    ws.write('in/2024/a.txt', 'alpha');
    ws.write('elsewhere/.keep', '');
    mkdirSync(ws.path('out'));
    symlinkSync(ws.path('elsewhere'), ws.path('out/2024'));
    const file = ws.pipeline(pipeline('link-dir', 'path: ./in\nafter_success: delete'));
    const result = await run(file);
    expect(result).toMatchObject({ ok: 0, failed: 1 });
    expect(result.failures[0].code).toBe('SLUICE_E_DESTINATION');
    expect(result.failures[0].error).toContain(`${ws.path('out/2024')} is a symbolic link`);
    expect(readdirSync(ws.path('elsewhere'))).toEqual(['.keep']);
    expect(ws.read('in/2024/a.txt')).toBe('alpha');
  });

  it('if_exists: skip through a linked folder that leads back to the source: refused, the source kept', async () => {
    ws = makeWorkspace();
    ws.write('in/2024/a.txt', 'alpha');
    mkdirSync(ws.path('out'));
    symlinkSync(ws.path('in/2024'), ws.path('out/2024'));
    const file = ws.pipeline(
      pipeline('link-back', 'path: ./in\nafter_success: delete', 'local: { path: ./out, if_exists: skip }'),
    );
    const result = await run(file);
    expect(result).toMatchObject({ ok: 0, failed: 1 });
    expect(result.failures[0].code).toBe('SLUICE_E_DESTINATION');
    expect(ws.read('in/2024/a.txt')).toBe('alpha');
    // The look before reading (any source): it refuses the folder too, rather than report the
    // source's own bytes as a copy already there.
    const sink = await outSink({ if_exists: 'skip' });
    await expect(sink.stat!('2024/a.txt', new AbortController().signal)).rejects.toMatchObject({
      code: 'SLUICE_E_DESTINATION',
    });
    await sink.close?.();
  });

  it('if_exists: rename still takes the next name past a folder or a link at the name', async () => {
    ws = makeWorkspace();
    ws.write('in/report', 'r');
    ws.write('in/link.txt', 'l');
    ws.write('elsewhere/x', 'x');
    mkdirSync(ws.path('out/report'), { recursive: true });
    symlinkSync(ws.path('elsewhere/x'), ws.path('out/link.txt'));
    const file = ws.pipeline(
      pipeline('rename-past', 'path: ./in', 'local: { path: ./out, if_exists: rename }'),
    );
    expect(await run(file)).toMatchObject({ ok: 2, failed: 0 });
    expect(ws.read('out/report (1)')).toBe('r');
    expect(ws.read('out/link (1).txt')).toBe('l');
    expect(ws.read('elsewhere/x')).toBe('x');
  });

  it('a temp folder (.sluice-tmp) that is a link: the sink refuses to start, and nothing where it leads is swept', async () => {
    ws = makeWorkspace();
    ws.write('in/a.txt', 'alpha');
    ws.write('precious/999999-old/keep.txt', 'keep');
    mkdirSync(ws.path('out'));
    symlinkSync(ws.path('precious'), ws.path('out/.sluice-tmp'));
    await expect(outSink()).rejects.toMatchObject({
      code: 'SLUICE_E_DESTINATION',
      message: expect.stringMatching(/is a symbolic link/),
    });
    expect(ws.read('precious/999999-old/keep.txt')).toBe('keep');
    expect(readdirSync(ws.path('precious'))).toEqual(['999999-old']);
  });

  it.each(['skip', 'fail'])(
    'if_exists: %s — a link at the destination to a file with the same bytes and mtime is no copy: the source is kept',
    async (ifExists) => {
      ws = makeWorkspace();
      ws.write('in/b.txt', 'bravo');
      ws.write('elsewhere/b.txt', 'bravo');
      const when = new Date('2024-05-01T00:00:00Z');
      utimesSync(ws.path('in/b.txt'), when, when);
      utimesSync(ws.path('elsewhere/b.txt'), when, when);
      mkdirSync(ws.path('out'));
      symlinkSync(ws.path('elsewhere/b.txt'), ws.path('out/b.txt'));
      const file = ws.pipeline(
        pipeline(
          'link-file',
          'path: ./in\nafter_success: delete',
          `local: { path: ./out, if_exists: ${ifExists} }`,
        ),
      );
      const result = await run(file);
      expect(result).toMatchObject({ ok: 0, failed: 1 });
      expect(result.failures[0].code).toBe('SLUICE_E_DESTINATION');
      expect(result.failures[0].error).toContain('exists and is a symbolic link');
      expect(ws.read('in/b.txt')).toBe('bravo');
      expect(ws.read('elsewhere/b.txt')).toBe('bravo');
    },
  );
});

describe('local: move_to onto another file system', () => {
  const shm = '/dev/shm';
  const otherFs = existsSync(shm) && fsId('/dev/shm') !== fsId(process.env.TMPDIR ?? '/tmp');

  it.skipIf(!otherFs)('copies, verifies and deletes instead of failing with EXDEV', async () => {
    ws = makeWorkspace();
    const done = mkdtempSync(join(shm, 'sluice-done-'));
    cleanups.push(() => rmSync(done, { recursive: true, force: true }));
    ws.write('in/a.txt', 'alpha');
    ws.write('in/sub/b.bin', Buffer.alloc(300_000, 7));
    const file = ws.pipeline(pipeline('exdev', `path: ./in\nafter_success: { move_to: ${done} }`));
    const result = await run(file);
    expect(result).toMatchObject({ ok: 2, failed: 0 });
    expect(ws.files('in')).toEqual([]);
    expect(listFiles(done)).toEqual(['a.txt', 'sub/b.bin']);
    expect(sha256(execFileSync('cat', [join(done, 'sub/b.bin')]))).toBe(sha256(Buffer.alloc(300_000, 7)));
    // A second run finds nothing to redo.
    expect(await run(file)).toMatchObject({ ok: 0, failed: 0 });
  });
});

describe('local sink: the name it wrote', () => {
  it('if_exists: rename reserves each candidate and reports the destination written; skip reports the existing size', async () => {
    ws = makeWorkspace();
    ws.write('out/x.csv', 'already here, longer');
    const sink = await localSink.create(
      { path: './out', if_exists: 'rename' } as never,
      makePluginContext({ baseDir: ws.dir }),
    );
    const reserved: string[] = [];
    const commit = await sink.write({
      item: { source: 's', path: 'x.csv' } as Item,
      destination: 'x.csv',
      body: Readable.from([Buffer.from('new')]),
      signal: new AbortController().signal,
      reserve: async (name) => {
        // The bytes must not be visible under a name before it is reserved.
        expect(existsSync(ws.path('out', name))).toBe(name === 'x.csv');
        reserved.push(name);
      },
    });
    expect(reserved).toEqual(['x.csv', 'x (1).csv']);
    expect(commit).toMatchObject({ destination: 'x (1).csv', size: 3 });
    expect(ws.read('out/x (1).csv')).toBe('new');
    // The kernel copy reserves its name the same way (a copy onto a taken name is numbered).
    const copied: string[] = [];
    const copy = await sink.copy?.(
      {
        source: 's',
        path: 'x.csv',
        origin: {
          kind: 'local',
          endpoint: 'localhost',
          // The listing's identity of the file (the kernel copy checks it).
          location: {
            path: ws.path('out/x.csv'),
            ino: String(statSync(ws.path('out/x.csv')).ino),
          },
        },
      } as unknown as Item,
      'x.csv',
      new AbortController().signal,
      async (name) => {
        copied.push(name);
      },
    );
    expect(copied).toEqual(['x.csv', 'x (1).csv', 'x (2).csv']);
    expect(copy).toMatchObject({ destination: 'x (2).csv', size: 'already here, longer'.length });
    expect(ws.read('out/x (2).csv')).toBe('already here, longer');
    await sink.close?.();

    const skip = await outSink({ if_exists: 'skip' });
    const skipped = await skip.write({
      item: { source: 's', path: 'x.csv' } as Item,
      destination: 'x.csv',
      body: Readable.from([Buffer.from('new')]),
      signal: new AbortController().signal,
    });
    expect(skipped).toMatchObject({ skipped: true, size: 'already here, longer'.length });
    expect(skipped.destination).toBeUndefined();
    await skip.close?.();
  });
});

function fsId(path: string): string {
  return execFileSync('stat', ['-f', '-c', '%i', path]).toString().trim();
}
