/**
 * Items on a pool of threads (`policy.threads`, runtime/pool.ts), through the CLI: every file
 * delivered once and recorded, the pass's summary the sum of the threads', destinations claimed
 * across threads, a thread that cannot start or that dies mid-item.
 */
import { existsSync, readFileSync, renameSync, statSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { asideName } from '../../core/item.js';
import { runSluiceSync } from '../helpers/sluice-process.js';
import { listFiles, makeWorkspace, sha256 } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-pool-');
afterAll(() => ws.cleanup());

function writeFiles(folder: string, names: string[]): Map<string, string> {
  const hashes = new Map<string, string>();
  for (const name of names) {
    const body = `${folder}/${name}\n`.repeat(50);
    ws.write(`${folder}/${name}`, body);
    hashes.set(name, sha256(body));
  }
  return hashes;
}

function logLines(stdout: string, stderr: string): Array<Record<string, unknown>> {
  return `${stdout}\n${stderr}`
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

interface Summary {
  ok: number;
  failed: number;
  skipped: number;
  filesWritten: number;
  bytesIn: number;
  failures: Array<{ path: string; code: string; error: string }>;
}

function run(pipeline: string, name: string, extra: string[] = []) {
  const summaryFile = ws.path(`${name}.summary.json`);
  const r = runSluiceSync(
    ['run', pipeline, '--log-format', 'json', '--summary-json', summaryFile, ...extra],
    ws.dir,
  );
  const summaries = JSON.parse(readFileSync(summaryFile, 'utf8')) as Summary[] | Summary;
  const summary = Array.isArray(summaries) ? summaries[0] : summaries;
  return { ...r, summary, logs: logLines(r.stdout, r.stderr) };
}

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}.txt`);

/** A step that notes where each item ran and ends its thread (never main) on the files named. */
function writeExitsMany(): void {
  ws.write(
    'exits-many.mjs',
    `import { appendFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
export default { apiVersion: 1, name: 'exits_many', kind: 'step', summary: 'test',
  config: { type: 'object', properties: { names: { type: 'array' }, notes: { type: 'string' } }, additionalProperties: false },
  create(cfg) { return { async process(item) {
    appendFileSync(cfg.notes, (isMainThread ? 'main ' : 'thread ') + item.path + '\\n');
    if (!isMainThread && cfg.names.includes(item.path)) process.exit(7);
    await new Promise((r) => setTimeout(r, 20));
    return item;
  } }; } };
`,
  );
}

describe('a pool of threads', () => {
  it('delivers every file once, records it, and sums the threads’ counts', () => {
    const files = [...names('a/f', 100), ...names('b/f', 100), ...names('c/f', 100)];
    const hashes = writeFiles('in', files);
    ws.pipeline(
      'name: pooled\nidentity: name\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  local: { path: ./out }\npolicy:\n  concurrency: 8\n  threads: 2\n',
      'pooled.yaml',
    );
    const first = run('pooled.yaml', 'pooled-1');
    expect(first.code, first.stderr).toBe(0);
    expect(first.logs.some((l) => l.msg === 'items run on 2 threads')).toBe(true);
    expect(first.summary).toMatchObject({ ok: 300, failed: 0, filesWritten: 300 });
    expect(first.summary.bytesIn).toBe([...files].reduce((n, f) => n + `in/${f}\n`.length * 50, 0));
    const out = listFiles(ws.path('out'));
    expect(out).toHaveLength(300);
    for (const rel of out) expect(sha256(readFileSync(ws.path('out', rel)))).toBe(hashes.get(rel));
    expect(listFiles(ws.path('in'))).toEqual([]);
    // Every item is in the ledger as finalized: the same names dropped again are skipped.
    writeFiles('in', files);
    const second = run('pooled.yaml', 'pooled-2');
    expect(second.code, second.stderr).toBe(0);
    expect(second.summary).toMatchObject({ ok: 0, skipped: 300, failed: 0 });
  }, 120_000);

  it('claims each destination once across threads (the second item fails, its source kept)', () => {
    // x/<n>.txt and y/<n>.txt both land on <n>.txt: 60 collisions, whichever thread runs them.
    writeFiles('clash', [...names('x/', 60), ...names('y/', 60)]);
    ws.pipeline(
      'name: clash\nsource:\n  local: { path: ./clash, after_success: delete }\nsteps:\n  - rename: { to: "{name}" }\nsink:\n  local: { path: ./clash-out, if_exists: overwrite }\npolicy:\n  concurrency: 8\n  threads: 2\n',
      'clash.yaml',
    );
    const r = run('clash.yaml', 'clash');
    expect(r.code).not.toBe(0);
    expect(r.logs.some((l) => l.msg === 'items run on 2 threads')).toBe(true);
    expect(r.summary.ok).toBe(60);
    expect(r.summary.failed).toBe(60);
    expect(new Set(r.summary.failures.map((f) => f.code))).toEqual(new Set(['SLUICE_E_COLLISION']));
    expect(listFiles(ws.path('clash-out'))).toHaveLength(60);
    // The source of each failed item is kept.
    expect(listFiles(ws.path('clash'))).toHaveLength(60);
  }, 120_000);

  it('runs on the main thread when no pool thread can start', () => {
    // A plugin module that refuses to load outside the main thread (its step takes 50 ms an
    // item, so the pass lasts until the threads have tried to start).
    ws.write(
      'main-only.mjs',
      `import { isMainThread } from 'node:worker_threads';
if (!isMainThread) throw new Error('this plugin loads on the main thread only');
export default { apiVersion: 1, name: 'pass_through', kind: 'step', summary: 'test',
  config: { type: 'object', additionalProperties: false },
  create() { return { async process(item) { await new Promise((r) => setTimeout(r, 50)); return item; } }; } };
`,
    );
    writeFiles('solo', names('s', 60));
    ws.pipeline(
      'name: solo\nplugins: ["./main-only.mjs"]\nsource:\n  local: { path: ./solo }\nsteps:\n  - pass_through: {}\nsink:\n  local: { path: ./solo-out }\npolicy:\n  threads: 2\n',
      'solo.yaml',
    );
    const r = run('solo.yaml', 'solo');
    expect(r.code, r.stderr).toBe(0);
    const warning = r.logs.find(
      (l) => l.msg === 'the thread pool could not start; items run on the main thread',
    );
    expect(warning?.err).toMatch(/main thread only/);
    expect(r.summary).toMatchObject({ ok: 60, failed: 0 });
    expect(listFiles(ws.path('solo-out'))).toHaveLength(60);
  }, 120_000);

  it('fails the items of a thread that died, records nothing more, and the next pass delivers them', () => {
    // A step that ends its thread on one file (a plugin crashing the thread it runs in).
    ws.write(
      'exits.mjs',
      `import { isMainThread } from 'node:worker_threads';
export default { apiVersion: 1, name: 'exits_on', kind: 'step', summary: 'test',
  config: { type: 'object', properties: { name: { type: 'string' } }, additionalProperties: false },
  create(cfg) { return { async process(item) {
    if (!isMainThread && item.path === cfg.name) process.exit(7);
    await new Promise((r) => setTimeout(r, 20));
    return item;
  } }; } };
`,
    );
    const hashes = writeFiles('die', names('d', 60));
    const pipeline = (step: string) =>
      `name: die\nplugins: ["./exits.mjs"]\nsource:\n  local: { path: ./die, after_success: delete }\nsteps:\n  - exits_on: { name: ${step} }\nsink:\n  local: { path: ./die-out }\npolicy:\n  concurrency: 4\n  threads: 2\n`;
    ws.pipeline(pipeline('d30.txt'), 'die.yaml');
    const r = run('die.yaml', 'die');
    expect(r.code).not.toBe(0);
    // The items in flight on that thread fail with it; the other thread goes on.
    expect(r.summary.failed).toBeGreaterThanOrEqual(1);
    expect(r.summary.ok + r.summary.failed).toBe(60);
    const d30 = r.summary.failures.find((f) => f.path === 'd30.txt');
    expect(d30).toMatchObject({ code: 'SLUICE_E_INTERNAL' });
    expect(d30?.error).toMatch(/pool thread stopped \(exit code 7\)/);
    for (const f of r.summary.failures) expect(f.code).toBe('SLUICE_E_INTERNAL');
    // What is left at the source failed; an item the thread finished (delivered and tidied) in
    // its last event-loop turn is counted failed too, its answer gone with the thread.
    const kept = listFiles(ws.path('die'));
    const failed = r.summary.failures.map((f) => f.path);
    expect(kept).toContain('d30.txt');
    for (const k of kept) expect(failed).toContain(k);
    // Not parked: the next pass (the step no longer stopping threads) delivers them.
    ws.pipeline(pipeline('none'), 'die.yaml');
    const again = run('die.yaml', 'die-2');
    expect(again.code, again.stderr).toBe(0);
    expect(again.summary).toMatchObject({ ok: kept.length, failed: 0 });
    const out = listFiles(ws.path('die-out'));
    expect(out).toHaveLength(60);
    for (const rel of out) expect(sha256(readFileSync(ws.path('die-out', rel)))).toBe(hashes.get(rel));
  }, 120_000);

  it('replaces a thread that died: items go on running on threads, not on the main thread', () => {
    // Three files each end the thread they run on; the pool has 2 threads. Every item notes
    // where it ran: with dead threads left dead, the third death would leave only main.
    writeExitsMany();
    writeFiles('phoenix', names('p', 60));
    const notes = ws.path('phoenix.notes');
    ws.pipeline(
      `name: phoenix\nplugins: ["./exits-many.mjs"]\nsource:\n  local: { path: ./phoenix }\nsteps:\n  - exits_many: { names: [p10.txt, p25.txt, p40.txt], notes: ${JSON.stringify(notes)} }\nsink:\n  local: { path: ./phoenix-out }\npolicy:\n  concurrency: 4\n  threads: 2\n`,
      'phoenix.yaml',
    );
    const r = run('phoenix.yaml', 'phoenix');
    expect(r.summary.ok + r.summary.failed).toBe(60);
    for (const f of ['p10.txt', 'p25.txt', 'p40.txt'])
      expect(r.summary.failures.find((x) => x.path === f)).toMatchObject({ code: 'SLUICE_E_INTERNAL' });
    expect(r.logs.filter((l) => l.msg === 'a pool thread stopped; a new one takes its place')).toHaveLength(
      3,
    );
    const ran = readFileSync(notes, 'utf8').trim().split('\n');
    expect(ran.filter((l) => l.startsWith('main '))).toEqual([]);
    // Delivered: every ok item; and no temp folder is left: each dead thread's (its sink never
    // closed) was swept by the thread that replaced it, the others closed with their sinks.
    const delivered = listFiles(ws.path('phoenix-out')).filter((f) => !f.startsWith('.sluice-tmp/'));
    expect(delivered.length).toBeGreaterThanOrEqual(r.summary.ok);
    expect(delivered.length).toBeLessThanOrEqual(60);
    expect(existsSync(ws.path('phoenix-out', '.sluice-tmp'))).toBe(false);
  }, 120_000);

  it('stops replacing threads that keep dying (a plugin that kills every thread it runs in)', () => {
    writeExitsMany();
    writeFiles('spin', names('s', 40));
    const notes = ws.path('spin.notes');
    ws.pipeline(
      `name: spin\nplugins: ["./exits-many.mjs"]\nsource:\n  local: { path: ./spin }\nsteps:\n  - exits_many: { names: [${names('s', 40).join(', ')}], notes: ${JSON.stringify(notes)} }\nsink:\n  local: { path: ./spin-out }\npolicy:\n  concurrency: 2\n  threads: 2\n`,
      'spin.yaml',
    );
    const r = run('spin.yaml', 'spin');
    // 2 threads a minute per thread of the pool are replaced, then the main thread runs the rest.
    expect(r.logs.filter((l) => l.msg === 'a pool thread stopped; a new one takes its place')).toHaveLength(
      4,
    );
    expect(r.logs.some((l) => String(l.msg).startsWith('a pool thread stopped and is not replaced'))).toBe(
      true,
    );
    expect(r.summary.ok + r.summary.failed).toBe(40);
    expect(r.summary.ok).toBeGreaterThan(0);
    const delivered = listFiles(ws.path('spin-out')).filter((f) => !f.startsWith('.sluice-tmp/'));
    expect(delivered.length).toBeGreaterThanOrEqual(r.summary.ok);
  }, 120_000);

  it('keeps on the main thread an item whose read is pinned to its listed version (etag)', () => {
    // An object store's listed item reads If-Match on its listed etag; a thread could only re-open
    // it by path, which reads whatever is there now. Here the listed read fails as a replaced
    // object's does, and a read by path returns the replacement: nothing may be delivered.
    ws.write(
      'pinned.mjs',
      `import { Readable } from 'node:stream';
export default { apiVersion: 1, name: 'pinned', kind: 'source', summary: 'test',
  config: { type: 'object', additionalProperties: false },
  create() { return {
    async *list() {
      for (let i = 0; i < 80; i++) {
        const path = 'o' + i + '.txt';
        yield { source: 'pinned', path, size: 3, etag: 'v1', mtime: new Date(0), checksums: {}, meta: {},
          open: async () => { throw new Error(path + ': the object changed since it was listed'); } };
      }
    },
    async openPath() { return Readable.from([Buffer.from('v2\\n')]); },
  }; } };
`,
    );
    ws.pipeline(
      'name: pinned\nplugins: ["./pinned.mjs"]\nsource:\n  pinned: {}\nsink:\n  local: { path: ./pinned-out }\npolicy:\n  concurrency: 4\n  threads: 2\n  retry: { max_attempts: 1 }\n',
      'pinned.yaml',
    );
    const r = run('pinned.yaml', 'pinned');
    expect(r.summary.ok).toBe(0);
    expect(r.summary.failed).toBe(80);
    expect(listFiles(ws.path('pinned-out'))).toEqual([]);
  }, 120_000);

  it('runs an item pinned to its etag on a thread when its source re-opens that version only', () => {
    // A source whose openPath pins the version (`pinsVersions`, as S3 and Azure do): a thread
    // re-opens the item at its listed etag. Main reads `M-v1`, a thread `T-v1`; an unpinned
    // re-open would read the replacement `T-v2`.
    ws.write(
      'pinning.mjs',
      `import { Readable } from 'node:stream';
export default { apiVersion: 1, name: 'pinning', kind: 'source', summary: 'test',
  config: { type: 'object', additionalProperties: false },
  create() { return {
    pinsVersions: true,
    async *list() {
      for (let i = 0; i < 200; i++) {
        yield { source: 'pinning', path: 'p' + i + '.txt', size: 5, etag: 'v1', mtime: new Date(0), checksums: {}, meta: {},
          open: async () => Readable.from([Buffer.from('M-v1\\n')]) };
      }
    },
    async openPath(path, signal, root, version) {
      return Readable.from([Buffer.from(version?.etag === 'v1' ? 'T-v1\\n' : 'T-v2\\n')]);
    },
  }; } };
`,
    );
    ws.pipeline(
      'name: pinning\nplugins: ["./pinning.mjs"]\nsource:\n  pinning: {}\nsink:\n  local: { path: ./pinning-out }\npolicy:\n  concurrency: 4\n  threads: 2\n',
      'pinning.yaml',
    );
    const r = run('pinning.yaml', 'pinning');
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ ok: 200, failed: 0 });
    const read = listFiles(ws.path('pinning-out')).map((f) =>
      readFileSync(ws.path('pinning-out', f), 'utf8'),
    );
    expect(read).toHaveLength(200);
    expect(read).not.toContain('T-v2\n');
    expect(read.filter((b) => b === 'T-v1\n').length).toBeGreaterThan(0);
  }, 120_000);

  it('keeps on the main thread a file a crashed tidy-up left aside (its bytes are not at its path)', () => {
    // Listed as the item it was (`a/f0.txt`), read from its aside name: a thread re-opening it by
    // its path would find nothing there (`verify: sha256`: the bytes are streamed, not kernel-copied).
    writeFiles('strand', names('a/f', 70));
    // Over the whole-file limit (1 MiB), so its bytes come through `open`, not the listed path.
    const big = Buffer.alloc(1.5 * 2 ** 20, 'big aside\n');
    const file = ws.write('strand/a/f0.txt', big);
    const { size, mtime } = statSync(file);
    renameSync(file, ws.path('strand', 'a', asideName({ source: 'local', path: 'a/f0.txt', size, mtime })));
    ws.pipeline(
      'name: strand\nsource:\n  local: { path: ./strand }\nsink:\n  local: { path: ./strand-out, verify: sha256 }\npolicy:\n  concurrency: 4\n  threads: 2\n',
      'strand.yaml',
    );
    const r = run('strand.yaml', 'strand');
    expect(r.code, r.stderr).toBe(0);
    expect(r.summary).toMatchObject({ ok: 70, failed: 0 });
    expect(readFileSync(ws.path('strand-out', 'a', 'f0.txt')).equals(big)).toBe(true);
  }, 120_000);
});
