/**
 * The local → local kernel copy reads the file the listing saw, never what was put at its path
 * since: a link to a file outside the source folder, another file, a FIFO. And a link dropped
 * into a watched folder is not a file of it. (An attacker who can name files in the source
 * folder must not get another file's bytes delivered.)
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../core/ledger/sqlite.js';
import type { SinkInstance, SourceInstance } from '../../core/plugin-api.js';
import { PipelineRunner } from '../../core/runtime/runner.js';
import { loadPipelineFile } from '../../core/sdk.js';
import { localSink } from '../../plugins/local/sink.js';
import { localSource } from '../../plugins/local/source.js';
import { localDiskDevice, SYNC_MAX_BYTES } from '../../plugins/local/sync-io.js';
import { makePluginContext } from '../helpers/context.js';
import { sleep, until } from '../helpers/sluice-process.js';
import { codeOf, listAll } from '../helpers/source-probe.js';
import { listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
afterEach(() => ws?.cleanup());

const SECRET = 'secret: never to be delivered\n';
/** `SECRET` padded to `size` bytes. */
const secretOf = (size: number) => SECRET.padEnd(size, '.');

async function plugins(): Promise<{ src: SourceInstance; sink: SinkInstance }> {
  const ctx = makePluginContext({ baseDir: ws.dir });
  const src = await localSource.create({ path: './in', recursive: true } as never, ctx);
  const sink = await localSink.create({ path: './out' } as never, ctx);
  return { src, sink };
}

/** Lists `in/` with one file `a.txt` of `size` bytes, then lets `swap` change what is at its path. */
async function listedThenSwapped(swap: () => void, size = SECRET.length) {
  ws = makeWorkspace('sluice-local-copy-');
  ws.write('outside/secret.txt', secretOf(size));
  ws.write('in/a.txt', 'x'.repeat(size)); // the same size: the size check alone passes
  const { src, sink } = await plugins();
  const [item] = await listAll(src);
  expect(item?.path).toBe('a.txt');
  swap();
  const code = await codeOf(sink.copy!(item!, 'a.txt', new AbortController().signal));
  await sink.close?.();
  await src.close?.();
  return code;
}

const delivered = () => listFiles(ws.path('out')).filter((f) => !f.startsWith('.sluice-tmp'));

// Small files between local disks are copied with calls on the calling thread (sync-io.ts),
// larger ones through the thread pool: both paths hold the same line.
describe.each([
  { how: 'calls on this thread', size: SECRET.length },
  { how: 'the thread pool', size: SYNC_MAX_BYTES + 1 },
])('local kernel copy through $how, the listed file only', ({ size }) => {
  it('a file swapped for a link to a file outside the folder is not copied', async () => {
    const code = await listedThenSwapped(() => {
      rmSync(ws.path('in/a.txt'));
      symlinkSync(ws.path('outside/secret.txt'), ws.path('in/a.txt'));
    }, size);
    expect(code).toBe('SLUICE_E_CHANGED');
    expect(delivered()).toEqual([]);
  });

  it('a file replaced by another one of the same size is not copied under the listed identity', async () => {
    const code = await listedThenSwapped(() => {
      writeFileSync(ws.path('in/other.txt'), secretOf(size));
      renameSync(ws.path('in/other.txt'), ws.path('in/a.txt'));
    }, size);
    expect(code).toBe('SLUICE_E_CHANGED');
    expect(delivered()).toEqual([]);
  });

  it('another inode with the listed size and mtime (a mount that renumbers inodes) is streamed, not kernel-copied', async () => {
    ws = makeWorkspace('sluice-local-copy-');
    ws.write('in/a.txt', 'x'.repeat(size));
    const { src, sink } = await plugins();
    const [item] = await listAll(src);
    writeFileSync(ws.path('in/other.txt'), secretOf(size));
    utimesSync(ws.path('in/other.txt'), item!.mtime!, item!.mtime!);
    renameSync(ws.path('in/other.txt'), ws.path('in/a.txt'));
    // null: the runtime streams it instead, through the source's own checks.
    expect(await sink.copy!(item!, 'a.txt', new AbortController().signal)).toBeNull();
    expect(delivered()).toEqual([]);
    await sink.close?.();
    await src.close?.();
  });

  it('a folder swapped for a link to a folder outside is not read through, even to the same file', async () => {
    ws = makeWorkspace('sluice-local-copy-');
    ws.write('in/sub/a.txt', 'l'.repeat(size));
    const { src, sink } = await plugins();
    const [item] = await listAll(src);
    // The same inode, size and mtime, now outside the folder and reached through a link.
    mkdirSync(ws.path('outside'));
    renameSync(ws.path('in/sub'), ws.path('outside/sub'));
    symlinkSync(ws.path('outside/sub'), ws.path('in/sub'));
    const code = await codeOf(sink.copy!(item!, 'sub/a.txt', new AbortController().signal));
    expect(code).toBe('SLUICE_E_CHANGED');
    expect(delivered()).toEqual([]);
    await sink.close?.();
    await src.close?.();
  });

  it('a FIFO put in its place fails the copy at once instead of blocking on it', async () => {
    const code = await listedThenSwapped(() => {
      rmSync(ws.path('in/a.txt'));
      execFileSync('mkfifo', [ws.path('in/a.txt')]);
    }, size);
    expect(code).toBe('SLUICE_E_CHANGED');
    expect(delivered()).toEqual([]);
  }, 10_000);

  it('the listed file itself is still copied by the kernel, bytes and mtime', async () => {
    ws = makeWorkspace('sluice-local-copy-');
    ws.write('in/a.txt', secretOf(size));
    // A mode the umask would narrow: the copy keeps it exactly, on either path.
    chmodSync(ws.path('in/a.txt'), 0o666);
    if (size <= SYNC_MAX_BYTES) {
      // Else this variant would test the thread pool twice.
      expect(await localDiskDevice(ws.path('in')), 'the workspace is on a local disk').toBeDefined();
    }
    const { src, sink } = await plugins();
    const [item] = await listAll(src);
    const commit = await sink.copy!(item!, 'a.txt', new AbortController().signal);
    expect(commit).toMatchObject({ size, mtime: item!.mtime });
    expect(readFileSync(ws.path('out/a.txt'), 'utf8')).toBe(secretOf(size));
    expect(statSync(ws.path('out/a.txt')).mode & 0o7777).toBe(0o666);
    expect(delivered()).toEqual(['a.txt']);
    await sink.close?.();
    await src.close?.();
  });
});

describe('local source, a listed file handed to a child process (openFile)', () => {
  it('refuses a file replaced since the listing, and one reached through a folder swapped for a link', async () => {
    ws = makeWorkspace('sluice-local-openfile-');
    ws.write('in/a.txt', 'x'.repeat(SECRET.length));
    ws.write('in/sub/b.txt', 'listed');
    const { src, sink } = await plugins();
    const [a, b] = await listAll(src);
    writeFileSync(ws.path('in/other.txt'), SECRET);
    renameSync(ws.path('in/other.txt'), ws.path('in/a.txt'));
    expect(await codeOf(src.openFile!(a!))).toBe('SLUICE_E_CHANGED');
    mkdirSync(ws.path('outside'));
    renameSync(ws.path('in/sub'), ws.path('outside/sub'));
    symlinkSync(ws.path('outside/sub'), ws.path('in/sub'));
    expect(await codeOf(src.openFile!(b!))).not.toBeUndefined();
    await sink.close?.();
    await src.close?.();
  });
});

describe('local source, reading a listed file', () => {
  it('a file replaced by another one of the same size is refused by the stream read and readAll', async () => {
    ws = makeWorkspace('sluice-local-read-');
    ws.write('in/a.txt', 'x'.repeat(SECRET.length));
    const { src, sink } = await plugins();
    const [item] = await listAll(src);
    writeFileSync(ws.path('in/other.txt'), SECRET);
    renameSync(ws.path('in/other.txt'), ws.path('in/a.txt'));
    expect(await codeOf(item!.open())).toBe('SLUICE_E_CHANGED');
    expect(await codeOf(src.readAll!(item!))).toBe('SLUICE_E_CHANGED');
    await sink.close?.();
    await src.close?.();
  });

  it('a folder swapped for a link to a folder outside is not read through by the stream read and readAll', async () => {
    ws = makeWorkspace('sluice-local-read-');
    ws.write('in/sub/a.txt', 'listed');
    const { src, sink } = await plugins();
    const [item] = await listAll(src);
    mkdirSync(ws.path('outside'));
    renameSync(ws.path('in/sub'), ws.path('outside/sub'));
    symlinkSync(ws.path('outside/sub'), ws.path('in/sub'));
    expect(await codeOf(item!.open())).toBe('SLUICE_E_NAME');
    expect(await codeOf(src.readAll!(item!))).toBe('SLUICE_E_NAME');
    await sink.close?.();
    await src.close?.();
  });

  it('a FIFO put in its place since the listing does not block the read', async () => {
    ws = makeWorkspace('sluice-local-read-fifo-');
    ws.write('in/a.txt', 'abc');
    const { src, sink } = await plugins();
    const [item] = await listAll(src);
    rmSync(ws.path('in/a.txt'));
    execFileSync('mkfifo', [ws.path('in/a.txt')]);
    let bytes = 0;
    const read = (async () => {
      for await (const chunk of await item!.open()) bytes += (chunk as Buffer).length;
    })();
    // Ends (empty: nobody writes into the FIFO) or fails; either way the listed size is not met.
    await read.catch(() => undefined);
    expect(bytes).not.toBe(3);
    await sink.close?.();
    await src.close?.();
  }, 10_000);
});

/**
 * Watches `in/`, lets `drop` put something there, then drops a real file: only the real file is
 * delivered, and what `drop` put is not an item at all (not a failed one either).
 */
async function watchedOnlyRealFile(name: string, drop: () => void): Promise<void> {
  mkdirSync(ws.path('in'), { recursive: true });
  const file = ws.pipeline(
    `name: ${name}\nsource:\n  local: { path: ./in, watch: true, min_age: 100ms }\nsink:\n  local: { path: ./out }\n`,
  );
  const def = await loadPipelineFile(file);
  const ledger = await SqliteLedger.open(def.stateDir);
  const runner = new PipelineRunner(def, { ledger });
  const pass = runner.runPass();
  try {
    await sleep(300);
    drop();
    await sleep(300);
    ws.write('in/real.txt', 'real');
    await until(
      () => delivered(),
      (f) => f.includes('real.txt'),
      10_000,
      'the real file',
    );
    await sleep(500); // what was dropped had as long as the real file to be taken
    expect(delivered()).toEqual(['real.txt']);
  } finally {
    runner.stopIntake();
    const summary = await pass;
    await runner.close();
    await ledger.close();
    expect(summary).toMatchObject({ ok: 1, failed: 0 });
  }
}

describe('local source, links', () => {
  it('files under a linked folder in a watched folder are not taken', async () => {
    ws = makeWorkspace('sluice-local-copy-watchdir-');
    mkdirSync(ws.path('outside/dir'), { recursive: true });
    mkdirSync(ws.path('in'));
    symlinkSync(ws.path('outside/dir'), ws.path('in/linkdir'));
    await watchedOnlyRealFile('lw-linkdir', () => ws.write('outside/dir/secret.txt', SECRET));
  }, 30_000);

  it('a link dropped into a watched folder is not taken (its target is not delivered)', async () => {
    ws = makeWorkspace('sluice-local-copy-watch-');
    ws.write('outside/secret.txt', SECRET);
    await watchedOnlyRealFile('lw-link', () =>
      symlinkSync(ws.path('outside/secret.txt'), ws.path('in/link.txt')),
    );
    expect(existsSync(ws.path('out/link.txt'))).toBe(false);
  }, 30_000);
});
