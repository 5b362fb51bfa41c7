/** The runtime end to end on the local connector: ledger, after_success, retry, dead letter, atomicity. */
import { readdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../core/ledger/sqlite.js';
import { runPipelineFile } from '../../core/sdk.js';
import { stickyStats, testRegistry } from '../helpers/test-plugins.js';
import { listFiles, makeWorkspace, sha256, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
afterEach(() => ws?.cleanup());

const run = (file: string, opts: Parameters<typeof runPipelineFile>[1] = {}) =>
  runPipelineFile(file, { registry: testRegistry(), ...opts });

function seed(w: Workspace, n: number, dir = 'in'): Map<string, string> {
  const hashes = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const rel = `${i % 3 === 0 ? 'sub/' : ''}f${i}.txt`;
    const body = `file ${i}\n`.repeat(i + 1);
    w.write(`${dir}/${rel}`, body);
    hashes.set(rel, sha256(body));
  }
  return hashes;
}

describe('local → local', () => {
  it('copies a tree, skips it on the second run, and redoes it with --force', async () => {
    ws = makeWorkspace();
    const hashes = seed(ws, 10);
    const file = ws.pipeline(
      'name: copy\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n',
    );
    const first = await run(file);
    expect(first).toMatchObject({ ok: 10, failed: 0, skipped: 0, filesWritten: 10 });
    expect(listFiles(ws.path('out'))).toEqual([...hashes.keys()].sort());
    for (const [rel, h] of hashes) expect(sha256(readFileSync(ws.path('out', rel)))).toBe(h);

    const second = await run(file);
    expect(second).toMatchObject({ ok: 0, skipped: 10, filesWritten: 0 });

    const forced = await run(file, { force: true });
    expect(forced).toMatchObject({ ok: 10, skipped: 0, filesWritten: 10 });
    expect(readdirSync(ws.path('out'))).not.toContain('.sluice-tmp');
  });

  it('processes a file again when it changes (new size/mtime = new version)', async () => {
    ws = makeWorkspace();
    ws.write('in/a.txt', 'one');
    const file = ws.pipeline(
      'name: versions\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n',
    );
    expect((await run(file)).ok).toBe(1);
    ws.write('in/a.txt', 'two, longer');
    utimesSync(ws.path('in/a.txt'), new Date(), new Date(Date.now() + 5000));
    expect((await run(file)).ok).toBe(1);
    expect(ws.read('out/a.txt')).toBe('two, longer');
  });

  it('deletes or moves sources only after the copy is committed', async () => {
    ws = makeWorkspace();
    seed(ws, 4, 'del');
    seed(ws, 4, 'mv');
    const del = ws.pipeline(
      'name: del\nsource:\n  local: { path: ./del, after_success: delete }\nsink:\n  local: { path: ./out-del }\n',
      'del.yaml',
    );
    const mv = ws.pipeline(
      'name: mv\nsource:\n  local:\n    path: ./mv\n    after_success: { move_to: ./mv/done }\nsink:\n  local: { path: ./out-mv }\n',
      'mv.yaml',
    );
    expect((await run(del)).ok).toBe(4);
    expect(listFiles(ws.path('del'))).toEqual([]);
    expect(listFiles(ws.path('out-del'))).toHaveLength(4);
    expect((await run(mv)).ok).toBe(4);
    expect(listFiles(ws.path('mv'))).toEqual([
      'done/f1.txt',
      'done/f2.txt',
      'done/sub/f0.txt',
      'done/sub/f3.txt',
    ]);
    // The move_to folder inside the source is never listed again.
    expect((await run(mv)).ok).toBe(0);
  });

  it('applies include/exclude and min_age', async () => {
    ws = makeWorkspace();
    ws.write('in/a.csv', 'a');
    ws.write('in/b.tmp', 'b');
    ws.write('in/deep/c.csv', 'c');
    ws.write('in/fresh.csv', 'new');
    utimesSync(ws.path('in/a.csv'), new Date(), new Date(Date.now() - 120_000));
    utimesSync(ws.path('in/deep/c.csv'), new Date(), new Date(Date.now() - 120_000));
    const file = ws.pipeline(
      'name: globs\nsource:\n  local:\n    path: ./in\n    include: ["*.csv"]\n    exclude: ["fresh*"]\n    min_age: 1m\nsink:\n  local: { path: ./out }\n',
    );
    const s = await run(file);
    expect(listFiles(ws.path('out'))).toEqual(['a.csv', 'deep/c.csv']);
    expect(s.ok).toBe(2);
  });

  it('retries retryable failures with backoff and counts them', async () => {
    ws = makeWorkspace();
    seed(ws, 3);
    const file = ws.pipeline(`name: retry
source:
  local: { path: ./in }
steps:
  - flaky: { pattern: "^f1\\\\.txt$", times: 2 }
sink:
  local: { path: ./out }
policy:
  retry: { max_attempts: 3, initial_delay: 10ms, max_delay: 20ms }
`);
    const s = await run(file);
    expect(s).toMatchObject({ ok: 3, failed: 0, retries: 2 });
  });

  it('sends items that fail for good to on_error with a reason file, records them failed, parks them until retried', async () => {
    ws = makeWorkspace();
    seed(ws, 3);
    const file = ws.pipeline(`name: dead
source:
  local: { path: ./in }
steps:
  - flaky: { pattern: "^f2\\\\.txt$", times: 1, retryable: false }
sink:
  local: { path: ./out }
on_error:
  local: { path: ./failed }
`);
    const s = await run(file);
    expect(s).toMatchObject({ ok: 2, failed: 1 });
    expect(s.failures[0]).toMatchObject({ path: 'f2.txt', code: 'SLUICE_E_PLUGIN' });
    expect(s.failures[0].error).toContain('flaky failure 1');
    expect(listFiles(ws.path('failed'))).toEqual(['local/f2.txt', 'local/f2.txt.error.json']);
    const reason = JSON.parse(ws.read('failed/local/f2.txt.error.json'));
    expect(reason).toMatchObject({ pipeline: 'dead', path: 'f2.txt', code: 'SLUICE_E_PLUGIN', attempts: 1 });
    expect(listFiles(ws.path('out'))).not.toContain('f2.txt');

    const ledger = await SqliteLedger.open(ws.path('.sluice'));
    expect((await ledger.history('dead', { state: 'failed' })).map((r) => r.path)).toEqual(['f2.txt']);
    await ledger.close();

    // Once the cause is fixed (here: the failing step removed), the same version stays parked
    // (policy.failed: on_change); a policy that retries takes only the failed item.
    ws.pipeline('name: dead\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n');
    expect(await run(file)).toMatchObject({ ok: 0, skipped: 2, failed: 0, parked: 1 });
    ws.pipeline(
      'name: dead\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\npolicy:\n  failed: retry_every_pass\n',
    );
    const again = await run(file);
    expect(again).toMatchObject({ ok: 1, skipped: 2, failed: 0, parked: 0 });
  });

  it('commits nothing when the byte stream fails at the very end', async () => {
    ws = makeWorkspace();
    ws.write('in/good.txt', 'fine');
    ws.write('in/bad.txt', 'x'.repeat(3_000_000));
    const file = ws.pipeline(`name: atomic
source:
  local: { path: ./in }
steps:
  - break_stream: { pattern: "^bad", after_bytes: 100000000 }
sink:
  local: { path: ./out }
`);
    const s = await run(file);
    expect(s).toMatchObject({ ok: 1, failed: 1 });
    expect(s.failures[0].code).toBe('SLUICE_E_BAD_DATA');
    expect(listFiles(ws.path('out'))).toEqual(['good.txt']);
  });

  it('fans out to several sinks and unpacks 1 → N', async () => {
    ws = makeWorkspace();
    ws.write('in/list.txt', 'alpha\nbeta\ngamma\n');
    const file = ws.pipeline(`name: fan
source:
  local: { path: ./in }
steps:
  - split_lines: {}
sinks:
  - local: { path: ./a }
  - local: { path: ./b }
`);
    const s = await run(file);
    expect(s).toMatchObject({ ok: 1, filesWritten: 3 });
    for (const d of ['a', 'b']) {
      expect(listFiles(ws.path(d))).toEqual(['list.txt.0', 'list.txt.1', 'list.txt.2']);
      expect(ws.read(`${d}/list.txt.1`)).toBe('beta');
    }
  });

  it('writes nothing, touches no source and records nothing in a dry run', async () => {
    ws = makeWorkspace();
    seed(ws, 3);
    const file = ws.pipeline(
      'name: dry\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  local: { path: ./out }\n',
    );
    const s = await run(file, { dryRun: true });
    expect(s.plan.map((p) => p.destinations[0]).sort()).toEqual(['f1.txt', 'f2.txt', 'sub/f0.txt']);
    expect(listFiles(ws.path('out'))).toEqual([]);
    expect(listFiles(ws.path('in'))).toHaveLength(3);
    expect((await run(file)).ok).toBe(3);
  });

  it('loads a third-party plugin named in the pipeline', async () => {
    ws = makeWorkspace();
    ws.write('in/hello.txt', 'hello');
    const pluginPath = new URL('../plugins/shout.mjs', import.meta.url).pathname;
    const file = ws.pipeline(`name: third-party
plugins: ["${pluginPath}"]
source:
  local: { path: ./in }
steps:
  - shout: { suffix: ".LOUD" }
sink:
  local: { path: ./out }
`);
    const s = await runPipelineFile(file);
    expect(s.ok).toBe(1);
    expect(ws.read('out/hello.txt.LOUD')).toBe('HELLO');
  });

  it('honours if_exists on the local sink', async () => {
    ws = makeWorkspace();
    ws.write('in/a.txt', 'new');
    const mk = (mode: string, out: string) =>
      ws.pipeline(
        `name: ie-${mode}\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./${out}, if_exists: ${mode} }\n`,
        `${mode}.yaml`,
      );
    ws.write('skip/a.txt', 'old');
    ws.write('fail/a.txt', 'old');
    ws.write('rename/a.txt', 'old');
    ws.write('same/a.txt', 'new');
    expect((await run(mk('skip', 'skip'))).ok).toBe(1);
    expect(ws.read('skip/a.txt')).toBe('old');
    const failed = await run(mk('fail', 'fail'));
    expect(failed.failures[0]).toMatchObject({ code: 'SLUICE_E_EXISTS' });
    expect(ws.read('fail/a.txt')).toBe('old');
    expect((await run(mk('rename', 'rename'))).ok).toBe(1);
    expect(listFiles(ws.path('rename'))).toEqual(['a (1).txt', 'a.txt']);
    // fail mode accepts an existing file with identical bytes (our own copy from a crashed run).
    const same = ws.pipeline(
      'name: ie-same\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./same, if_exists: fail }\n',
      'same.yaml',
    );
    expect((await run(same)).ok).toBe(1);
  });

  it('never server-side copies an item whose bytes a step changed, even if the plugin kept origin', async () => {
    ws = makeWorkspace();
    ws.write('in/a.txt', 'quiet');
    ws.write('in/big.txt', 'x'.repeat(3_000_000));
    const file = ws.pipeline(
      'name: careless\nsource:\n  local: { path: ./in }\nsteps:\n  - careless_upper: {}\nsink:\n  local: { path: ./out }\n',
    );
    expect((await run(file)).ok).toBe(2);
    expect(ws.read('out/a.txt')).toBe('QUIET');
    expect(ws.read('out/big.txt')).toBe('X'.repeat(3_000_000));
  });

  it('retries only after_success when the copy is already committed', async () => {
    ws = makeWorkspace();
    stickyStats.opens = 0;
    const file = ws.pipeline(`name: sticky
source:
  sticky_source: { files: 3, after_success: delete }
sink:
  local: { path: ./out }
policy:
  retry: { max_attempts: 3, initial_delay: 5ms, max_delay: 10ms }
`);
    const s = await run(file);
    expect(s).toMatchObject({ ok: 3, failed: 0, retries: 3, filesWritten: 3, bytesOut: 15 });
    expect(stickyStats.opens).toBe(3); // each file read once, not again for the retried delete
  });

  it('verifies sha256 by re-reading when asked', async () => {
    ws = makeWorkspace();
    ws.write('in/a.bin', Buffer.alloc(2_000_000, 7));
    const file = ws.pipeline(
      'name: v\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out, verify: sha256 }\n',
    );
    expect((await run(file)).ok).toBe(1);
    expect(statSync(ws.path('out/a.bin')).size).toBe(2_000_000);
  });
});
