/**
 * A nightly job with one tampered file (issue 17): the first pass fails it into on_error, later
 * passes hold it back (parked, counted once, green), a replaced file (new version) is taken,
 * `sluice retry` replays a parked one through the pipeline as it is now.
 */
import { spawnSync } from 'node:child_process';
import { utimesSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { makeWorkspace } from '../helpers/workspace.js';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'sluice.js');
const ws = makeWorkspace('sluice-parking-');
afterAll(() => ws.cleanup());

function sluice(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: ws.dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A gzip file whose CRC no longer matches its bytes: what a partner's broken upload looks like. */
function tampered(text: string): Buffer {
  const gz = gzipSync(Buffer.from(text));
  gz[gz.length - 8] ^= 0xff;
  return gz;
}

const nightly = (name: string, extra = '') =>
  `name: ${name}\nsource:\n  local: { path: ./${name}-in }\nsteps:\n  - decompress: {}\nsink:\n  local: { path: ./${name}-out }\non_error:\n  local: { path: ./${name}-err }\n${extra}`;

describe('failed files are parked', () => {
  it('a tampered file fails once, is parked (green) after, and a replaced one is delivered', () => {
    ws.write('nightly-in/a.csv.gz', gzipSync('a,1\n'));
    ws.write('nightly-in/bad.csv.gz', tampered('b,2\n'));
    const file = ws.pipeline(nightly('nightly'), 'nightly.yaml');

    const first = sluice(['run', file, '--log-format', 'json']);
    expect(first.code).toBe(1);
    expect(ws.files('nightly-out')).toEqual(['a.csv']);
    expect(ws.files('nightly-err')).toEqual(['local/bad.csv.gz', 'local/bad.csv.gz.error.json']);

    // The second night: nothing new, the bad file held back — the run is green, the file counted once.
    ws.write('nightly-in/c.csv.gz', gzipSync('c,3\n'));
    const second = sluice(['run', file, '--summary-json', 'second.json', '--log-format', 'pretty']);
    expect(second.code, second.stderr).toBe(0);
    const summary = JSON.parse(ws.read('second.json')) as Record<string, unknown>;
    expect(summary).toMatchObject({ ok: 1, failed: 0, parked: 1, skipped: 1 });
    expect(summary.parkedItems).toEqual([
      expect.objectContaining({ source: 'local', path: 'bad.csv.gz', error: expect.stringMatching(/./) }),
    ]);
    expect(second.stdout).toMatch(/1 ok, 0 failed, 1 parked/);
    expect(second.stdout).toMatch(/PARKED local:bad\.csv\.gz since \d{4}-\d\d-\d\dT/);
    const plan = sluice(['plan', file]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/^local:bad\.csv\.gz — parked \(failed before: .+\); held back/m);
    expect(plan.stdout).toMatch(/2 done before, 1 parked/);
    const third = sluice(['run', file, '--summary-json', 'third.json']);
    expect(third.code).toBe(0);
    expect(JSON.parse(ws.read('third.json'))).toMatchObject({ ok: 0, failed: 0, parked: 1, skipped: 2 });

    // The partner replaces the file: a new version, taken on the next pass.
    const replaced = ws.write('nightly-in/bad.csv.gz', gzipSync('b,2 fixed\n'));
    utimesSync(replaced, new Date(), new Date(Date.now() + 5000));
    const fourth = sluice(['run', file, '--summary-json', 'fourth.json']);
    expect(fourth.code, fourth.stderr).toBe(0);
    expect(JSON.parse(ws.read('fourth.json'))).toMatchObject({ ok: 1, failed: 0, parked: 0 });
    expect(ws.read('nightly-out/bad.csv')).toBe('b,2 fixed\n');
  });

  it('`sluice retry` replays a parked file through the pipeline as it is now', () => {
    // The cause was the pipeline (no decompress), not the file: fixed by editing the pipeline.
    ws.write('replay-in/x.csv.gz', tampered('x\n'));
    ws.write('replay-in/y.csv.gz', tampered('y\n'));
    const file = ws.pipeline(nightly('replay'), 'replay.yaml');
    expect(sluice(['run', file]).code).toBe(1);
    expect(sluice(['run', file, '--summary-json', 'replay-2.json']).code).toBe(0);
    expect(JSON.parse(ws.read('replay-2.json'))).toMatchObject({ parked: 2 });

    ws.pipeline(
      'name: replay\nsource:\n  local: { path: ./replay-in }\nsink:\n  local: { path: ./replay-out }\n',
      'replay.yaml',
    );
    expect(sluice(['retry', file]).code).toBe(2);
    const unknown = sluice(['retry', file, 'nope.gz']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no parked \(failed\) record of "nope\.gz" in pipeline "replay"/);

    const retried = sluice(['retry', file, 'x.csv.gz', '--summary-json', 'retry.json']);
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stdout).toMatch(/replay: 1 parked item re-opened: local:x\.csv\.gz/);
    expect(JSON.parse(ws.read('retry.json'))).toMatchObject({ ok: 1, failed: 0, parked: 1 });
    expect(ws.files('replay-out')).toEqual(['x.csv.gz']);

    const all = sluice(['retry', file, '--all', '--summary-json', 'retry-all.json']);
    expect(all.code, all.stderr).toBe(0);
    expect(JSON.parse(ws.read('retry-all.json'))).toMatchObject({ ok: 1, parked: 0 });
    expect(ws.files('replay-out')).toEqual(['x.csv.gz', 'y.csv.gz']);
    const history = sluice(['history', file, '--state', 'failed']);
    expect(history.stdout).toMatch(/no items recorded/);
  });

  it('a rejected entry (a name that cannot be addressed) is parked like a failure', async () => {
    ws.write('names-in/ok.txt', 'ok\n');
    ws.write('names-in/bad\nname.txt', 'x\n');
    const file = ws.pipeline(
      'name: names\nsource:\n  local: { path: ./names-in }\nsink:\n  local: { path: ./names-out }\n',
      'names.yaml',
    );
    const first = await runPipelineFile(file);
    expect(first).toMatchObject({ ok: 1, failed: 1, parked: 0 });
    expect(first.failures[0].code).toBe('SLUICE_E_NAME');
    const second = await runPipelineFile(file);
    expect(second).toMatchObject({ ok: 0, failed: 0, parked: 1, skipped: 1 });
  });

  it('policy.failed: retry_every_pass tries again each pass; retry_after once the time has passed', async () => {
    ws.write('every-in/bad.csv.gz', tampered('e\n'));
    const every = ws.pipeline(nightly('every', 'policy:\n  failed: retry_every_pass\n'), 'every.yaml');
    expect(await runPipelineFile(every)).toMatchObject({ failed: 1, parked: 0 });
    expect(await runPipelineFile(every)).toMatchObject({ failed: 1, parked: 0 });

    ws.write('after-in/bad.csv.gz', tampered('a\n'));
    const after = ws.pipeline(nightly('after', 'policy:\n  failed: { retry_after: 1s }\n'), 'after.yaml');
    expect(await runPipelineFile(after)).toMatchObject({ failed: 1, parked: 0 });
    expect(await runPipelineFile(after)).toMatchObject({ failed: 0, parked: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    expect(await runPipelineFile(after)).toMatchObject({ failed: 1, parked: 0 });
    expect(await runPipelineFile(after)).toMatchObject({ failed: 0, parked: 1 });
  });

  it('--force processes a parked file', async () => {
    ws.write('force-in/bad.csv.gz', tampered('f\n'));
    const file = ws.pipeline(nightly('force'), 'force.yaml');
    await runPipelineFile(file);
    expect(await runPipelineFile(file, { force: true })).toMatchObject({ failed: 1, parked: 0 });
  });
});

describe('ledger retention and the audit export', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a pass prunes finalized records past state.retention; a parked one stays', async () => {
    const file = ws.pipeline(
      nightly('keep', 'state:\n  retention: 2d\n').replace(
        './keep-in }',
        './keep-in, after_success: delete }',
      ),
      'keep.yaml',
    );
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.UTC(2026, 0, 1));
    ws.write('keep-in/old.csv.gz', gzipSync('old\n'));
    ws.write('keep-in/bad.csv.gz', tampered('bad\n'));
    expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 1 });
    vi.setSystemTime(Date.UTC(2026, 0, 4));
    ws.write('keep-in/new.csv.gz', gzipSync('new\n'));
    expect(await runPipelineFile(file)).toMatchObject({ ok: 1, parked: 1 });
    vi.useRealTimers();
    const history = sluice(['history', file, '--format', 'json']);
    expect(history.code, history.stderr).toBe(0);
    const records = history.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((r) => `${r.path} ${r.state}`).sort()).toEqual([
      'bad.csv.gz failed',
      'new.csv.gz finalized',
    ]);
  });

  it('sluice history --format json|csv: source version, destinations, checksums, every record', () => {
    ws.write('audit-in/a.csv', 'a\n');
    ws.write('audit-in/=cmd.csv', 'b\n');
    const file = ws.pipeline(
      'name: audit\nidentity: content\nsource:\n  local: { path: ./audit-in }\nsink:\n  local: { path: ./audit-out }\n',
      'audit.yaml',
    );
    expect(sluice(['run', file]).code).toBe(0);
    const json = sluice(['history', file, '--format', 'json']);
    expect(json.code, json.stderr).toBe(0);
    const records = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records).toHaveLength(2);
    const a = records.find((r) => r.path === 'a.csv')!;
    expect(a).toMatchObject({
      pipeline: 'audit',
      state: 'finalized',
      source: 'local',
      version: expect.stringMatching(/^2:\d+$/),
      attempts: 1,
      destinations: [ws.path('audit-out', 'a.csv')],
      // sha256 of "a\n"
      sha256: '87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7',
      error: null,
    });
    const csv = sluice(['history', file, '--format', 'csv']);
    expect(csv.code).toBe(0);
    const lines = csv.stdout.trim().split('\n');
    expect(lines[0]).toBe('updated_at,state,source,path,version,attempts,destinations,sha256,error');
    expect(lines).toHaveLength(3);
    expect(lines.find((l) => l.includes('a.csv'))).toMatch(
      /^\d{4}-\d\d-\d\dT[^,]+,finalized,local,a\.csv,2:\d+,1,[^,]*a\.csv,87428fc5\w+,$/,
    );
    // A name a spreadsheet would run as a formula is quoted and neutralised.
    expect(lines.find((l) => l.includes('cmd.csv'))).toContain(`"'=cmd.csv"`);
    expect(sluice(['history', file, '--format', 'xml']).code).toBe(2);
    expect(
      sluice(['history', file, '--format', 'csv', '--limit', '1']).stdout.trim().split('\n'),
    ).toHaveLength(2);
  });
});
