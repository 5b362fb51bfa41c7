/**
 * `sluice plan` and `run --dry-run` tell what each file would do (issue 15 item 7): the filter
 * that leaves an item and its values (include, exclude, min_age, a filter step), each sink with
 * the destination's location, the steps, and the source's tidy-up — as text and as JSON. The
 * real binary on local folders; nothing is written or touched.
 */
import { spawnSync } from 'node:child_process';
import { utimesSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlanEntry } from '../../core/observe/run-summary.js';
import { SLUICE_BIN } from '../helpers/sluice-process.js';
import { listFiles, makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-plan-tells-');
afterAll(() => ws.cleanup());

function sluice(args: string[]) {
  const r = spawnSync(process.execPath, [SLUICE_BIN, ...args], {
    cwd: ws.dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const PIPELINE = `name: tells
source:
  local:
    path: ./in
    include: ["*.csv", "*.tmp", "*.txt"]
    exclude: ["*.tmp"]
    min_age: 1h
    after_success: { move_to: done }
steps:
  - filter: { min_size: 10 }
  - rename: { to: "{date:%Y}/{name}" }
sinks:
  - local: { path: ./out }
  - local: { path: ./copy }
`;

beforeAll(() => {
  const old = new Date(Date.now() - 3 * 3600_000);
  for (const [name, body] of [
    ['big.csv', 'a big enough line\n'],
    ['tiny.csv', 'x\n'],
    ['skip.tmp', 'an upload in progress\n'],
    ['other.dat', 'not included at all\n'],
    ['fresh.txt', 'written a minute ago\n'],
  ]) {
    const file = ws.write(`in/${name}`, body);
    if (name !== 'fresh.txt') utimesSync(file, old, old);
  }
  ws.pipeline(PIPELINE, 'tells.yaml');
});

describe('sluice plan', () => {
  it('says which filter left each item, with its values; each sink with its location; the tidy-up', () => {
    const r = sluice(['plan', 'tells.yaml']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const year = new Date(Date.now() - 3 * 3600_000).getFullYear();
    expect(r.stdout).toContain(
      [
        `local:big.csv → ${year}/big.csv`,
        '  steps: steps[0].filter, steps[1].rename',
        `  to: sinks[0].local ./out/${year}/big.csv`,
        `  to: sinks[1].local ./copy/${year}/big.csv`,
        '  then: source moved to done',
      ].join('\n'),
    );
    expect(r.stdout).toContain('local:tiny.csv — filtered out: steps[0].filter {min_size: 10, action: drop}');
    expect(r.stdout).toContain('local:skip.tmp — filtered out: exclude: [*.tmp]');
    expect(r.stdout).toContain(
      'local:other.dat — filtered out: include: [*.csv, *.tmp, *.txt] (not matched)',
    );
    expect(r.stdout).toMatch(/local:fresh\.txt — filtered out: min_age: 1h \(modified [\d.]+m?s ago\)/);
    expect(r.stdout).toContain(
      '1 item(s) to process (1 file(s) would be written, 18 B), 0 done before, 0 parked, 4 filtered, 0 would fail',
    );
    expect(listFiles(ws.path('out'))).toEqual([]);
    expect(listFiles(ws.path('in'))).toHaveLength(5);
  });

  it('--json gives the same as data', () => {
    const r = sluice(['plan', 'tells.yaml', '--json']);
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout) as {
      pipeline: string;
      items: PlanEntry[];
      totals: Record<string, number>;
    };
    expect(plan.pipeline).toBe('tells');
    const byPath = new Map(plan.items.map((e) => [e.path, e]));
    expect(byPath.get('big.csv')).toMatchObject({
      action: 'write',
      steps: ['steps[0].filter', 'steps[1].rename'],
      sinks: [
        { sink: 'sinks[0].local', location: expect.stringMatching(/^\.\/out\/\d{4}\/big\.csv$/) },
        { sink: 'sinks[1].local', location: expect.stringMatching(/^\.\/copy\/\d{4}\/big\.csv$/) },
      ],
      afterSuccess: { move_to: 'done' },
    });
    expect(byPath.get('tiny.csv')).toMatchObject({
      action: 'filtered',
      reason: 'steps[0].filter {min_size: 10, action: drop}',
    });
    expect(byPath.get('skip.tmp')).toMatchObject({ action: 'filtered', reason: 'exclude: [*.tmp]' });
    expect(byPath.get('other.dat')?.reason).toMatch(/^include: /);
    expect(byPath.get('fresh.txt')?.reason).toMatch(/^min_age: 1h/);
    expect(plan.totals).toMatchObject({ process: 1, files: 1, filtered: 4, wouldFail: 0 });
  });

  it('names delete and keep as the tidy-up, and what is left after a run', () => {
    ws.write('del-in/a.csv', 'a');
    ws.pipeline(
      'name: del\nsource:\n  local: { path: ./del-in, after_success: delete }\nsink:\n  local: { path: ./del-out }\n',
      'del.yaml',
    );
    expect(sluice(['plan', 'del.yaml']).stdout).toContain('  then: source deleted');
    ws.pipeline(
      'name: keep\nsource:\n  local: { path: ./del-in }\nsink:\n  local: { path: ./del-out }\n',
      'keep.yaml',
    );
    expect(sluice(['plan', 'keep.yaml']).stdout).toContain('  then: source kept');
  });
});

describe('run --dry-run', () => {
  it('lists what each file would do and says "would be written", never "written"', () => {
    const r = sluice(['run', 'tells.yaml', '--dry-run', '--log-format', 'pretty']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/local:big\.csv → \d{4}\/big\.csv\n {2}steps: .*\n {2}to: sinks\[0\]\.local/);
    expect(r.stdout).toContain('local:tiny.csv — filtered out: steps[0].filter {min_size: 10, action: drop}');
    expect(r.stdout).toMatch(/tells \(dry run\): 1 ok, .* — 1 file would be written/);
    expect(r.stdout).not.toMatch(/files? written/);
    expect(r.stderr).toMatch(/would write big\.csv → \.\/out\/\d{4}\/big\.csv, \.\/copy\/\d{4}\/big\.csv/);
    expect(listFiles(ws.path('out'))).toEqual([]);
    expect(listFiles(ws.path('in'))).toHaveLength(5);
  });

  it('puts the plan in the JSON summary of a dry run', () => {
    const r = sluice(['run', 'tells.yaml', '--dry-run', '--log-format', 'json']);
    const finished = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; summary?: { plan?: PlanEntry[] } })
      .find((l) => l.msg === 'pass finished');
    expect(finished?.summary?.plan?.find((e) => e.path === 'skip.tmp')?.reason).toBe('exclude: [*.tmp]');
  });
});
