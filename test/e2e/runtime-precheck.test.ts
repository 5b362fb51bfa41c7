/**
 * The destination pre-check (issue 14.4) on the local connector: with `if_exists: skip|fail`,
 * an item whose destination already holds it is finalized without reading the source; the
 * summary counts it as already at destination; anything short of proof is read and compared.
 */
import { readFileSync, statSync, utimesSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatSummary } from '../../core/observe/summary.js';
import { definePlugin } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { localSink, sha256File } from '../../plugins/local/sink.js';
import { localSource } from '../../plugins/local/source.js';
import { countingSource } from '../helpers/counting-source.js';
import { testRegistry } from '../helpers/test-plugins.js';
import { makeWorkspace, sha256, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
afterEach(() => ws?.cleanup());

/** Source paths read in this test (open or readAll). */
const reads: string[] = [];

const countingLocal = countingSource(localSource, 'counting_local', reads);
/** The same, each item listed with the sha256 of its file (as an object store lists an MD5). */
const summedLocal = countingSource(localSource, 'summed_local', reads, (item, cfg, baseDir) => ({
  checksums: {
    sha256: sha256(readFileSync(join(resolve(baseDir, (cfg as { path: string }).path), item.path))),
  },
}));

/** The local sink, whose stat also reports the stored file's sha256 (as S3 reports its MD5). */
const hashingSink = definePlugin({
  ...localSink,
  name: 'hashing_local',
  async create(cfg, ctx) {
    const inner = await localSink.create(cfg, ctx);
    const root = resolve(ctx.baseDir, cfg.path!);
    return {
      ...inner,
      async stat(destination, signal) {
        const stat = await inner.stat!(destination, signal);
        return stat && { ...stat, checksums: { sha256: await sha256File(join(root, destination)) } };
      },
    };
  },
});

const run = (file: string) =>
  runPipelineFile(file, {
    registry: testRegistry().extend([
      { plugin: countingLocal, origin: 'test' },
      { plugin: summedLocal, origin: 'test' },
      { plugin: hashingSink, origin: 'test' },
    ]),
  });

const MTIME = new Date('2022-02-02T02:02:02.222Z');

function put(rel: string, content: string, mtime = MTIME): void {
  ws.write(rel, content);
  utimesSync(ws.path(rel), mtime, mtime);
}

/** Six source files; the first three already at `out` (as an earlier tool left them). */
function seedHalfDelivered(out = 'out'): void {
  for (let i = 0; i < 6; i++) {
    put(`in/f${i}.txt`, `file ${i}\n`.repeat(i + 1));
    if (i < 3) put(`${out}/f${i}.txt`, `file ${i}\n`.repeat(i + 1));
  }
}

function pipeline(sinks: string, source = '{ path: ./in }', plugin = 'counting_local'): string {
  return ws.pipeline(`name: pre\nsource:\n  ${plugin}: ${source}\n${sinks}`);
}

describe('destination pre-check (local → local)', () => {
  it('reads only the files not already at the destination (if_exists: skip)', async () => {
    ws = makeWorkspace();
    reads.length = 0;
    seedHalfDelivered();
    const file = pipeline('sink:\n  local: { path: ./out, if_exists: skip }\n');
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 6, failed: 0, alreadyAtDestination: 3, filesWritten: 3 });
    expect(reads.sort()).toEqual(['f3.txt', 'f4.txt', 'f5.txt']);
    expect(formatSummary(summary)).toContain('6 ok (3 already at destination, not read)');
    expect(ws.files('out')).toHaveLength(6);
  });

  it('reads every file without if_exists skip or fail (overwrite has nothing to pre-check)', async () => {
    ws = makeWorkspace();
    reads.length = 0;
    seedHalfDelivered();
    const summary = await run(pipeline('sink:\n  local: { path: ./out }\n'));
    expect(summary).toMatchObject({ ok: 6, alreadyAtDestination: 0, filesWritten: 6 });
    expect(reads).toHaveLength(6);
  });

  it('reads and compares when the source is to be deleted: size and mtime are not proof', async () => {
    ws = makeWorkspace();
    reads.length = 0;
    put('in/same.txt', 'same bytes');
    put('out/same.txt', 'same bytes');
    // Same length, same mtime, other bytes: trusting size + mtime would delete the only copy.
    put('in/other.txt', 'abcdefghij');
    put('out/other.txt', 'ABCDEFGHIJ');
    const file = pipeline(
      'sink:\n  local: { path: ./out, if_exists: skip }\n',
      '{ path: ./in, after_success: delete }',
    );
    const summary = await run(file);
    expect(reads.sort()).toEqual(['other.txt', 'same.txt']);
    expect(summary).toMatchObject({ ok: 1, failed: 1, alreadyAtDestination: 0 });
    expect(summary.failures[0]).toMatchObject({ path: 'other.txt', code: 'SLUICE_E_EXISTS' });
    expect(ws.files('in')).toEqual(['other.txt']);
    expect(ws.read('out/other.txt')).toBe('ABCDEFGHIJ');
  });

  it('with checksums on both sides: kept sources skip unread; a source tidied afterwards is read and compared (a listed checksum may be metadata); another size fails unread', async () => {
    ws = makeWorkspace();
    reads.length = 0;
    seedHalfDelivered();
    put('out/f4.txt', `${'file 4\n'.repeat(4)}xxxxxx\n`); // same size (35 bytes), other bytes
    put('out/f5.txt', 'another, longer file at the destination\n');
    const file = pipeline(
      'sink:\n  hashing_local: { path: ./out, if_exists: fail }\n',
      '{ path: ./in, after_success: delete }',
      'summed_local',
    );
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 4, failed: 2, alreadyAtDestination: 0 });
    expect(summary.failures.map((f) => [f.path, f.code]).sort()).toEqual([
      ['f4.txt', 'SLUICE_E_EXISTS'],
      ['f5.txt', 'SLUICE_E_EXISTS'],
    ]);
    expect(summary.failures.find((f) => f.path === 'f5.txt')?.error).toContain('nothing was read or written');
    // Deleting a source needs its bytes compared: every one of the same size was read.
    expect(reads.sort()).toEqual(['f0.txt', 'f1.txt', 'f2.txt', 'f3.txt', 'f4.txt']);
    expect(ws.files('in')).toEqual(['f4.txt', 'f5.txt']);

    // Kept sources: the checksums both sides know let the same files skip unread.
    ws.write('in2/g.txt', 'g bytes\n');
    ws.write('out2/g.txt', 'g bytes\n');
    reads.length = 0;
    const kept = ws.pipeline(
      'name: pre-kept\nsource:\n  summed_local: { path: ./in2 }\nsink:\n  hashing_local: { path: ./out2, if_exists: skip }\n',
      'kept.yaml',
    );
    expect(await run(kept)).toMatchObject({ ok: 1, alreadyAtDestination: 1 });
    expect(reads).toEqual([]);
  });

  it('with if_exists: fail and no checksums, reads the same-sized files and fails another size unread', async () => {
    ws = makeWorkspace();
    reads.length = 0;
    seedHalfDelivered();
    put('out/f5.txt', 'another, longer file at the destination\n');
    const summary = await run(pipeline('sink:\n  local: { path: ./out, if_exists: fail }\n'));
    expect(summary).toMatchObject({ ok: 5, failed: 1, alreadyAtDestination: 0 });
    expect(summary.failures[0]).toMatchObject({ path: 'f5.txt', code: 'SLUICE_E_EXISTS' });
    expect(reads.sort()).toEqual(['f0.txt', 'f1.txt', 'f2.txt', 'f3.txt', 'f4.txt']);
    expect(ws.read('out/f5.txt')).toBe('another, longer file at the destination\n');
  });

  it('fans out: each sink is pre-checked and an item is read only when some sink needs it', async () => {
    ws = makeWorkspace();
    reads.length = 0;
    seedHalfDelivered('a');
    for (let i = 0; i < 6; i++) put(`b/f${i}.txt`, `file ${i}\n`.repeat(i + 1));
    const before = statSync(ws.path('b/f4.txt')).ino;
    const file = pipeline(
      'sinks:\n  - local: { path: ./a, if_exists: skip }\n  - local: { path: ./b, if_exists: skip }\n',
    );
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 6, failed: 0, alreadyAtDestination: 3, filesWritten: 3 });
    expect(reads.sort()).toEqual(['f3.txt', 'f4.txt', 'f5.txt']);
    expect(ws.files('a')).toHaveLength(6);
    // The sink that had every file kept them as they were.
    expect(statSync(ws.path('b/f4.txt')).ino).toBe(before);
  });

  it('does not pre-check an item whose bytes a step changed', async () => {
    ws = makeWorkspace();
    reads.length = 0;
    put('in/a.txt', 'lower\n');
    put('out/a.txt', 'lower\n');
    const file = pipeline(
      'steps:\n  - careless_upper: {}\nsink:\n  local: { path: ./out, if_exists: skip }\n',
    );
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 1, alreadyAtDestination: 0 });
    expect(reads).toEqual(['a.txt']);
  });
});
