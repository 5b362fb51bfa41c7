/**
 * Issue 15 items 2 and 8, the parts left: `--log-level debug` gives one line per step per file
 * with its time in ms (a byte step timed until its bytes have passed), and `--set` is accepted
 * by `history` and `worker`, which load pipelines too (a run with `--set name=…` keeps its
 * records under that name; a bad value is refused naming the flag).
 */
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { runSluiceSync } from '../helpers/sluice-process.js';
import { makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-debug-set-');
afterAll(() => ws.cleanup());

const sluice = (args: string[]) => runSluiceSync(args, ws.dir);

const PIPELINE = `name: timed
source:
  local: { path: ./in }
steps:
  - decompress: {}
  - rename: { to: "day/{name}" }
sink:
  local: { path: ./out }
`;

describe('--log-level debug', () => {
  it("logs each step's time for each file", () => {
    ws.write('in/a.csv.gz', gzipSync('a\n'));
    ws.write('in/b.csv.gz', gzipSync('b\n'));
    ws.pipeline(PIPELINE, 'timed.yaml');
    const r = sluice(['run', 'timed.yaml', '--log-level', 'debug', '--log-format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; step?: string; item?: string; ms?: number; msg: string })
      .filter((l) => l.step !== undefined && l.msg.startsWith('step '));
    const seen = lines.map((l) => `${l.item} ${l.step}`).sort();
    expect(seen).toEqual([
      'local:a.csv steps[1].rename',
      'local:a.csv.gz steps[0].decompress',
      'local:b.csv steps[1].rename',
      'local:b.csv.gz steps[0].decompress',
    ]);
    for (const l of lines) {
      expect(l.level).toBe(20);
      expect(Number.isInteger(l.ms)).toBe(true);
      expect(l.msg).toBe(`step ${l.step} took ${l.ms}ms`);
    }
    // At info: none of them.
    ws.write('in/c.csv.gz', gzipSync('c\n'));
    expect(sluice(['run', 'timed.yaml', '--log-format', 'json']).stderr).not.toContain('"msg":"step ');
  });
});

describe('--set on history and worker', () => {
  it('history reads the records of the pipeline as --set makes it', () => {
    ws.write('set-in/a.txt', 'a');
    ws.pipeline(
      'name: plain\nsource:\n  local: { path: ./set-in }\nsink:\n  local: { path: ./set-out }\n',
      'plain.yaml',
    );
    expect(sluice(['run', 'plain.yaml', '--set', 'name=renamed', '--log-format', 'json']).code).toBe(0);
    const renamed = sluice(['history', 'plain.yaml', '--set', 'name=renamed']);
    expect(renamed.code, renamed.stderr).toBe(0);
    expect(renamed.stdout).toMatch(/finalized {2}local:a\.txt → /);
    expect(sluice(['history', 'plain.yaml']).stdout).toMatch(/^no items recorded for plain in /);
  });

  it('worker takes --set and refuses a bad value naming the flag, before it connects anywhere', () => {
    ws.pipeline(PIPELINE, 'timed.yaml');
    const r = sluice([
      'worker',
      'timed.yaml',
      '--cluster',
      'redis://127.0.0.1:1',
      '--set',
      'policy.concurrency=zero',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'timed.yaml (--set policy.concurrency=zero): /policy/concurrency: must be integer',
    );
  });
});
