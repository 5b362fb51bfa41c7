/**
 * The local sink's small-file path (issue 16.4): a kernel copy costs one stat per file — the
 * size and the mtime the file system kept, read together after the mtime is set and before the
 * file is visible — and one mkdir per new folder, however many items race into it. What it
 * reports is still what the file system holds.
 */
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createItem } from '../../core/item.js';
import type { SinkInstance } from '../../core/plugin-api.js';
import { makePluginContext } from '../../test/helpers/context.js';

const calls = vi.hoisted(() => ({ stat: [] as string[], mkdir: [] as string[], dropWrites: 0 }));

// A disk that drops writes while `calls.dropWrites` is set: writeSync says it wrote what it did not.
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const writeSync = ((fd: number, buffer: Buffer, offset?: number, length?: number, position?: number) => {
    if (calls.dropWrites > 0) {
      calls.dropWrites++;
      return length ?? buffer.length - (offset ?? 0);
    }
    return real.writeSync(fd, buffer, offset, length, position);
  }) as typeof real.writeSync;
  return { ...real, writeSync, default: { ...real, writeSync } };
});

vi.mock('./fs-callbacks.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('./fs-callbacks.js')>();
  return {
    ...real,
    stat: (path: string) => {
      calls.stat.push(path);
      return real.stat(path);
    },
  };
});
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...real,
    mkdir: (path: string, options?: Parameters<typeof real.mkdir>[1]) => {
      calls.mkdir.push(path);
      return real.mkdir(path, options);
    },
  };
});

const { localSink } = await import('./sink.js');

const dir = mkdtempSync(join(tmpdir(), 'sluice-sink-calls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MTIME = new Date(1_700_000_000_123);

function sourceFile(name: string, bytes: number) {
  const path = join(dir, 'in', name);
  mkdirSync(join(dir, 'in'), { recursive: true });
  writeFileSync(path, Buffer.alloc(bytes, 'x'));
  utimesSync(path, MTIME, MTIME); // as listed: the kernel copy checks inode, size and mtime
  const { ino } = statSync(path);
  return createItem({
    source: 'in',
    path: name,
    size: bytes,
    mtime: MTIME,
    origin: { kind: 'local', endpoint: 'localhost', location: { path, ino: String(ino) } },
    open: () => Promise.reject(new Error('a kernel copy reads nothing through open()')),
  });
}

async function sink(out: string, cfg: Record<string, unknown> = {}): Promise<SinkInstance> {
  return localSink.create({ path: join(dir, out), ...cfg } as never, makePluginContext());
}

beforeEach(() => {
  calls.dropWrites = 0;
  calls.stat.length = 0;
  calls.mkdir.length = 0;
});

describe('local sink, kernel copy', () => {
  it('reads size and mtime back with one stat of the temp file, before the file is placed', async () => {
    const s = await sink('out-one');
    calls.stat.length = 0;
    const item = sourceFile('a.dat', 4096);
    const commit = await s.copy!(item, 'deep/a.dat', new AbortController().signal);
    const placed = join(dir, 'out-one', 'deep', 'a.dat');
    expect(commit).toMatchObject({ location: placed, size: 4096, mtime: MTIME });
    expect(calls.stat).toHaveLength(1);
    expect(calls.stat[0]).toContain('.sluice-tmp');
    expect(statSync(placed).mtime).toEqual(MTIME);
    await s.close?.();
  });

  it('reports the size the file system holds without preserve_mtime too (one stat, no mtime)', async () => {
    const s = await sink('out-nomtime', { preserve_mtime: false });
    calls.stat.length = 0;
    const commit = await s.copy!(sourceFile('b.dat', 123), 'b.dat', new AbortController().signal);
    expect(commit?.size).toBe(123);
    expect(commit?.mtime).toBeUndefined();
    expect(calls.stat).toHaveLength(1);
    await s.close?.();
  });

  it('reports the size the file system holds, not the count it handed to write (a disk that drops a write)', async () => {
    const s = await sink('out-dropped');
    // As the local source lists it: with its device and real root, so the small-file path may run.
    const item = sourceFile('d.dat', 100);
    const location = item.origin!.location as Record<string, string>;
    location.dev = String(statSync(location.path!).dev);
    location.realRoot = realpathSync(join(dir, 'in'));
    calls.dropWrites = 1;
    const commit = await s.copy!(item, 'd.dat', new AbortController().signal).finally(() => {
      calls.dropWrites -= 1; // now the count of writes dropped
    });
    const dropped = calls.dropWrites;
    calls.dropWrites = 0;
    expect(dropped, 'the small-file path wrote through writeSync').toBeGreaterThan(0);
    expect(statSync(join(dir, 'out-dropped', 'd.dat')).size).toBe(0);
    expect(commit?.size).toBe(0);
    await s.close?.();
  });

  it('makes a new folder once for items racing into it, and every item lands', async () => {
    const s = await sink('out-race');
    calls.mkdir.length = 0;
    const items = Array.from({ length: 24 }, (_, i) => sourceFile(`r${i}.dat`, 10 + i));
    const commits = await Promise.all(
      items.map((item, i) => s.copy!(item, `new/folder/r${i}.dat`, new AbortController().signal)),
    );
    expect(commits.map((c) => c?.size)).toEqual(items.map((item) => item.size));
    expect(calls.mkdir.filter((p) => p.endsWith(join('new', 'folder')))).toHaveLength(1);
    expect(readdirSync(join(dir, 'out-race', 'new', 'folder'))).toHaveLength(24);
    await s.close?.();
  });

  it('asks for a folder again after a failed mkdir', async () => {
    const s = await sink('out-retry');
    // A file where the folder should be: mkdir fails, the copy fails, nothing is placed.
    writeFileSync(join(dir, 'out-retry', 'blocked'), 'not a folder');
    const signal = new AbortController().signal;
    await expect(s.copy!(sourceFile('c.dat', 5), 'blocked/c.dat', signal)).rejects.toMatchObject({
      code: expect.stringMatching(/EEXIST|ENOTDIR/),
    });
    rmSync(join(dir, 'out-retry', 'blocked'));
    const commit = await s.copy!(sourceFile('c.dat', 5), 'blocked/c.dat', signal);
    expect(commit?.size).toBe(5);
    expect(
      readdirSync(join(dir, 'out-retry', '.sluice-tmp')).flatMap((d) =>
        readdirSync(join(dir, 'out-retry', '.sluice-tmp', d)),
      ),
    ).toEqual([]);
    await s.close?.();
  });
});
