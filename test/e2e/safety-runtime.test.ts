/**
 * The delivery rules the runtime enforces whatever the connector (issue: data safety first):
 * a skip is delivered only if the bytes match, a sink that cannot say what it stored fails
 * verification, bytes read are compared with the listed size, a failed verification removes
 * only what this attempt wrote, one destination per pass, archives all or nothing, a failed
 * tidy-up keeps the item committed, a repeated listing is processed once, a rejected name is
 * reported, a fenced worker stops without side effects, a dry run creates nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { itemIdentity } from '../../core/item.js';
import { SqliteLedger } from '../../core/ledger/sqlite.js';
import { type ListedItem, PipelineRunner } from '../../core/runtime/runner.js';
import { loadPipelineFile, runPipelineFile } from '../../core/sdk.js';
import { repeatingStats, testRegistry } from '../helpers/test-plugins.js';
import { listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
afterEach(() => ws?.cleanup());

const registry = testRegistry();
const run = (file: string, opts: Parameters<typeof runPipelineFile>[1] = {}) =>
  runPipelineFile(file, { registry, ...opts });
/** A runner of `file` with its first listed item, as a cluster worker drives one; closed after `fn`. */
async function withFirstItem(
  file: string,
  fn: (runner: PipelineRunner, listed: ListedItem, ledger: SqliteLedger) => Promise<void>,
): Promise<void> {
  const ledger = await SqliteLedger.open(ws.path('state'));
  const runner = new PipelineRunner(await loadPipelineFile(file, { registry }), { ledger });
  try {
    const listing = runner.list()[Symbol.asyncIterator]();
    const listed = (await listing.next()).value as ListedItem;
    await listing.return?.(undefined);
    await fn(runner, listed, ledger);
  } finally {
    await runner.close();
    await ledger.close();
  }
}

const oneAttempt = 'policy:\n  retry: { max_attempts: 1 }\n';

describe('a skip is delivered only when the existing copy holds the same bytes', () => {
  it('keeps the source when if_exists: skip meets other bytes, deletes it when they match', async () => {
    ws = makeWorkspace();
    ws.write('in/report.csv', 'new figures\n');
    ws.write('in/same.csv', 'same\n');
    ws.write('out/report.csv', 'last month\n');
    ws.write('out/same.csv', 'same\n');
    const file = ws.pipeline(
      'name: skip\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  local: { path: ./out, if_exists: skip }\n',
    );
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 1, failed: 1 });
    expect(summary.failures[0]).toMatchObject({ path: 'report.csv', code: 'SLUICE_E_EXISTS' });
    expect(summary.failures[0].error).toMatch(/already holds other bytes.*source is kept/);
    expect(ws.read('in/report.csv')).toBe('new figures\n');
    expect(ws.read('out/report.csv')).toBe('last month\n');
    expect(existsSync(ws.path('in/same.csv'))).toBe(false);
  });

  it('lets a kept source skip whatever is there (nothing is lost)', async () => {
    ws = makeWorkspace();
    ws.write('in/report.csv', 'new figures\n');
    ws.write('out/report.csv', 'last month\n');
    const file = ws.pipeline(
      'name: skip-keep\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out, if_exists: skip }\n',
    );
    expect(await run(file)).toMatchObject({ ok: 1, failed: 0 });
    expect(ws.read('out/report.csv')).toBe('last month\n');
  });
});

describe('verification', () => {
  it('fails a sink that cannot report what it stored, unless verify: none', async () => {
    ws = makeWorkspace();
    ws.write('in/a.txt', 'abc');
    const strict = ws.pipeline(
      `name: mum\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  mum_sink: {}\n${oneAttempt}`,
      'strict.yaml',
    );
    const summary = await run(strict);
    expect(summary).toMatchObject({ ok: 0, failed: 1 });
    expect(summary.failures[0].code).toBe('SLUICE_E_VERIFY');
    expect(summary.failures[0].error).toMatch(/did not report what it stored.*verify: none/);
    expect(ws.read('in/a.txt')).toBe('abc');

    const lax = ws.pipeline(
      'name: mum-lax\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  mum_sink: { verify: none }\n',
      'lax.yaml',
    );
    expect(await run(lax)).toMatchObject({ ok: 1, failed: 0 });
    expect(existsSync(ws.path('in/a.txt'))).toBe(false);
  });

  it('compares the bytes read with the listed size: a file truncated while it is read is not kept', async () => {
    ws = makeWorkspace();
    ws.write('in/small.bin', Buffer.alloc(64 * 1024, 7));
    ws.write('in/big.bin', Buffer.alloc(3 * 1024 * 1024, 9));
    // Small file, no byte step: the whole-file path. Big file through compress: the stream path.
    const small = ws.pipeline(
      `name: trunc-small\nsource:\n  local: { path: ./in, include: ["small.bin"], after_success: delete }\nsteps:\n  - truncate_source: { root: ./in, to_bytes: 1000 }\nsink:\n  local: { path: ./out }\n${oneAttempt}`,
      'small.yaml',
    );
    const big = ws.pipeline(
      `name: trunc-big\nsource:\n  local: { path: ./in, include: ["big.bin"], after_success: delete }\nsteps:\n  - truncate_source: { root: ./in, to_bytes: 100000 }\n  - compress: { format: gzip }\nsink:\n  local: { path: ./out }\n${oneAttempt}`,
      'big.yaml',
    );
    for (const file of [small, big]) {
      const summary = await run(file);
      expect(summary).toMatchObject({ ok: 0, failed: 1 });
      expect(summary.failures[0].code).toBe('SLUICE_E_CHANGED');
      // The kernel copy (small file, no byte step) sees it on the descriptor before copying.
      expect(summary.failures[0].error).toMatch(
        /read \d+ bytes but the source listed \d+|changed since it was listed \(\d+ bytes now, \d+ listed\)/,
      );
    }
    expect(listFiles(ws.path('out'))).toEqual([]);
    expect(statSync(ws.path('in/small.bin')).size).toBe(1000);
    expect(statSync(ws.path('in/big.bin')).size).toBe(100000);
  });

  it('removes only what the failing attempt wrote (the renamed copy, never the file that was there)', async () => {
    ws = makeWorkspace();
    ws.write('in/report.csv', 'new figures\n');
    ws.write('out/report.csv', 'last month\n');
    const file = ws.pipeline(
      `name: lying\nsource:\n  local: { path: ./in }\nsink:\n  lying_local: { path: ./out, if_exists: rename }\n${oneAttempt}`,
    );
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 0, failed: 1 });
    expect(summary.failures[0].code).toBe('SLUICE_E_VERIFY');
    expect(listFiles(ws.path('out'))).toEqual(['report.csv']);
    expect(ws.read('out/report.csv')).toBe('last month\n');
  });
});

describe('one destination, one item per pass', () => {
  const flatten = (extra = '') =>
    `name: flatten\nsource:\n  local: { path: ./in, after_success: delete }\nsteps:\n  - rename: { to: "{name}" }\nsink:\n  local: { path: ./out }\n${extra}`;

  it('fails the second item aiming at a taken destination and keeps its source', async () => {
    ws = makeWorkspace();
    ws.write('in/a/x.csv', 'from a\n');
    ws.write('in/b/x.csv', 'from b\n');
    const file = ws.pipeline(flatten('policy:\n  concurrency: 1\n'));
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 1, failed: 1 });
    expect(summary.failures[0].code).toBe('SLUICE_E_COLLISION');
    expect(summary.failures[0].error).toMatch(
      /"x.csv" is already taken in this pass by "local:(a|b)\/x.csv"/,
    );
    const kept = listFiles(ws.path('in'));
    expect(kept).toHaveLength(1);
    expect(ws.read('out/x.csv')).toBe(kept[0] === 'a/x.csv' ? 'from b\n' : 'from a\n');
  });

  it('shows the collision in the plan', async () => {
    ws = makeWorkspace();
    ws.write('in/a/x.csv', 'from a\n');
    ws.write('in/b/x.csv', 'from b\n');
    const summary = await run(ws.pipeline(flatten('policy:\n  concurrency: 1\n')), { dryRun: true });
    expect(summary.plan.map((p) => p.action).sort()).toEqual(['failed', 'write']);
    expect(summary.plan.find((p) => p.action === 'failed')?.error).toMatch(/already taken/);
    expect(listFiles(ws.path('in'))).toHaveLength(2);
  });

  it('commits none of an archive whose later entry is corrupt', async () => {
    ws = makeWorkspace();
    // Two stored entries; the second's bytes are flipped after writing, so its CRC fails.
    const zip = ws.path('in/drop.zip');
    ws.write('in/.keep', '');
    execFileSync('python3', [
      '-c',
      `import zipfile,sys
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_STORED) as z:
    z.writestr('good.txt', 'good entry ' * 100)
    z.writestr('bad.txt', 'BADBADBAD ' * 100)
data = bytearray(open(sys.argv[1], 'rb').read())
i = data.find(b'BADBADBAD')
data[i:i+9] = b'XXXXXXXXX'
open(sys.argv[1], 'wb').write(bytes(data))`,
      zip,
    ]);
    const file = ws.pipeline(
      `name: zip\nsource:\n  local: { path: ./in, include: ["*.zip"], after_success: delete }\nsteps:\n  - decompress: {}\nsink:\n  local: { path: ./out }\n${oneAttempt}`,
    );
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 0, failed: 1 });
    expect(listFiles(ws.path('out'))).toEqual([]);
    expect(existsSync(zip)).toBe(true);
  });
});

describe('finalisation', () => {
  it('keeps a delivered item committed when its tidy-up fails, and retries only the tidy-up', async () => {
    ws = makeWorkspace();
    ws.write('in/a.txt', 'abc');
    ws.write('done', 'a file where the move_to folder should be');
    const file = ws.pipeline(
      `name: tidy\nsource:\n  local:\n    path: ./in\n    after_success: { move_to: ./done }\nsink:\n  local: { path: ./out }\n${oneAttempt}`,
    );
    const first = await run(file);
    expect(first).toMatchObject({ ok: 0, failed: 1 });
    const ledger = await SqliteLedger.open(ws.path('.sluice'));
    const [record] = await ledger.history('tidy');
    await ledger.close();
    expect(record.state).toBe('committed');
    const delivered = statSync(ws.path('out/a.txt'));

    execFileSync('rm', [ws.path('done')]);
    const second = await run(file);
    expect(second).toMatchObject({ ok: 1, failed: 0, filesWritten: 0 });
    expect(statSync(ws.path('out/a.txt')).ino).toBe(delivered.ino); // not delivered again
    expect(readFileSync(ws.path('done/a.txt'), 'utf8')).toBe('abc');
  });

  it('processes an item the listing repeats once, and reports an entry the source rejected', async () => {
    ws = makeWorkspace();
    repeatingStats.opens = 0;
    const file = ws.pipeline(
      'name: repeats\nsource:\n  repeating_source: { files: 3 }\nsink:\n  local: { path: ./out, if_exists: rename }\n',
    );
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 3, failed: 1 });
    expect(summary.failures[0]).toMatchObject({ code: 'SLUICE_E_NAME', path: 'caf\ufffd.txt' });
    expect(summary.failures[0].error).toMatch(/not valid UTF-8/);
    expect(listFiles(ws.path('out'))).toEqual(['r0.txt', 'r1.txt', 'r2.txt']);
    expect(repeatingStats.opens).toBe(3);
  });

  it('never lets a rejected entry hide a real file of the same display path', async () => {
    ws = makeWorkspace();
    repeatingStats.opens = 0;
    const file = ws.pipeline(
      'name: shadow\nsource:\n  repeating_source: { files: 2, shadow: true }\nsink:\n  local: { path: ./out }\n',
    );
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 2, failed: 2 });
    expect(listFiles(ws.path('out'))).toEqual(['r0.txt', 'r1.txt']);
  });

  it('stops a fenced item without side effects: nothing written, nothing recorded but "seen"', async () => {
    ws = makeWorkspace();
    ws.write('in/a.txt', 'abc');
    const file = ws.pipeline(
      'name: fenced\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  local: { path: ./out }\non_error:\n  local: { path: ./dead }\n',
    );
    await withFirstItem(file, async (runner, listed, ledger) => {
      const summary = runner.newSummary();
      const fence = async () => {
        throw new SluiceError('SLUICE_E_FENCED', 'the job lock was lost');
      };
      await expect(runner.processListed(listed, summary, { fence })).rejects.toMatchObject({
        code: 'SLUICE_E_FENCED',
      });
      await ledger.flush();
      expect((await ledger.get('fenced', itemIdentity(listed.item)))?.state).toBe('seen');
      expect(summary.failed).toBe(0);
    });
    expect(listFiles(ws.path('out'))).toEqual([]);
    expect(listFiles(ws.path('dead'))).toEqual([]);
    expect(ws.read('in/a.txt')).toBe('abc');
  });

  it('writes no sink or dead-letter folder in a dry run', async () => {
    ws = makeWorkspace();
    ws.write('in/a.txt', 'abc');
    const file = ws.pipeline(
      'name: dry\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  local: { path: ./out }\non_error:\n  local: { path: ./dead }\n',
    );
    const summary = await run(file, { dryRun: true });
    expect(summary.plan).toEqual([
      {
        source: 'local',
        path: 'a.txt',
        destinations: ['a.txt'],
        action: 'write',
        bytes: 3,
        steps: [],
        sinks: [{ sink: 'sink.local', location: './out/a.txt' }],
        afterSuccess: 'delete',
      },
    ]);
    expect(existsSync(ws.path('out'))).toBe(false);
    expect(existsSync(ws.path('dead'))).toBe(false);
    expect(ws.read('in/a.txt')).toBe('abc');
  });
});

it('leaves the other sinks of a fan-out clean when one sink fails', async () => {
  ws = makeWorkspace();
  ws.write('in/a.txt', 'abc');
  const file = ws.pipeline(
    `name: fan\nsource:\n  local: { path: ./in }\nsinks:\n  - local: { path: ./out }\n  - lying_local: { path: ./out2 }\n${oneAttempt}`,
  );
  const summary = await run(file);
  expect(summary).toMatchObject({ ok: 0, failed: 1 });
  expect(listFiles(ws.path('out'))).toEqual([]);
  expect(listFiles(ws.path('out2'))).toEqual([]);
});

it('ends a pass whose listing fails only after the items in flight have finished', async () => {
  ws = makeWorkspace();
  const file = ws.pipeline(
    'name: broken\nsource:\n  broken_listing: { files: 3 }\nsink:\n  local: { path: ./out }\npolicy:\n  concurrency: 4\n',
  );
  await expect(run(file)).rejects.toThrow(/listing connection dropped/);
  // Closing the ledger under them used to crash the in-flight items ("database connection is not open").
  expect(listFiles(ws.path('out'))).toEqual(['b0.txt', 'b1.txt', 'b2.txt']);
  const ledger = await SqliteLedger.open(ws.path('.sluice'));
  const states = (await ledger.history('broken')).map((r) => r.state);
  await ledger.close();
  expect(states).toEqual(['finalized', 'finalized', 'finalized']);
});

it('refuses a destination that a template routes into a source folder inside the sink root', async () => {
  ws = makeWorkspace();
  ws.write('data/in/a.csv', 'abc');
  const file = ws.pipeline(
    `name: loop\nsource:\n  local: { path: ./data/in, after_success: delete }\nsteps:\n  - rename: { to: "in/copy-{name}" }\nsink:\n  local: { path: ./data }\n${oneAttempt}`,
  );
  const summary = await run(file);
  expect(summary).toMatchObject({ ok: 0, failed: 1 });
  expect(summary.failures[0]).toMatchObject({ code: 'SLUICE_E_DESTINATION' });
  expect(summary.failures[0].error).toMatch(/lies in "in", where a source lists/);
  expect(listFiles(ws.path('data'))).toEqual(['in/a.csv']);
});

it('stops an item at once when its caller loses it (ProcessOptions.signal), with no side effect', async () => {
  ws = makeWorkspace();
  const file = ws.pipeline(
    'name: lost\nsource:\n  broken_listing: { files: 1, read_ms: 400 }\nsink:\n  local: { path: ./out }\non_error:\n  local: { path: ./dead }\n',
  );
  await withFirstItem(file, async (runner, listed) => {
    const lost = new AbortController();
    setTimeout(() => lost.abort(new SluiceError('SLUICE_E_FENCED', 'the job lock was lost')), 100);
    const summary = runner.newSummary();
    await expect(runner.processListed(listed, summary, { signal: lost.signal })).rejects.toMatchObject({
      code: 'SLUICE_E_FENCED',
    });
    expect(summary.failed).toBe(0);
  });
  expect(listFiles(ws.path('out'))).toEqual([]);
  expect(listFiles(ws.path('dead'))).toEqual([]);
});

it('removes the copies of every sink of a fan-out when the first sink fails its verification', async () => {
  ws = makeWorkspace();
  ws.write('in/a.txt', 'abc');
  // A byte step: both sinks take the one stream (no server-side copy), then verify in turn.
  const file = ws.pipeline(
    `name: fan-first\nsource:\n  local: { path: ./in }\nsteps:\n  - compress: { format: gzip }\nsinks:\n  - lying_local: { path: ./out2 }\n  - local: { path: ./out }\n${oneAttempt}`,
  );
  const summary = await run(file);
  expect(summary).toMatchObject({ ok: 0, failed: 1 });
  // The second sink had committed before the first one's verification failed.
  expect(listFiles(ws.path('out'))).toEqual([]);
  expect(listFiles(ws.path('out2'))).toEqual([]);
});
