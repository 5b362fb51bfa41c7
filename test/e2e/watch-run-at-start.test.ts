/**
 * `trigger.run_at_start` and reloads of scheduled pipelines under `sluice watch` (issue 15 item
 * 8), in real time kept short: with false the first pass waits for its due time; an edit of the
 * description alone starts no pass (the next one comes at its due time); an edit that changes
 * what the pipeline does starts one at once.
 */
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { killSluice, type SluiceProcess, sleep, startSluice } from '../helpers/sluice-process.js';
import { listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
let proc: SluiceProcess | undefined;
afterEach(async () => {
  await killSluice(proc);
  proc = undefined;
  ws?.cleanup();
});

const text = (o: { description: string; every: string; runAtStart?: boolean; out?: string }) => `name: ticks
description: ${o.description}
trigger:
  every: ${o.every}
${o.runAtStart === undefined ? '' : `  run_at_start: ${o.runAtStart}\n`}source:
  local: { path: ./in }
sink:
  local: { path: ./${o.out ?? 'out'} }
`;

const passes = (p: SluiceProcess) => p.logs.filter((l) => l.msg === 'pass finished');
const timeOf = (line: Record<string, unknown>) => new Date(String(line.time)).getTime();

describe('trigger.run_at_start under watch', () => {
  it('false: the first pass waits for the first due time', async () => {
    ws = makeWorkspace('sluice-run-at-start-');
    ws.write('in/a.txt', 'a');
    ws.pipeline(text({ description: 'nightly', every: '2s', runAtStart: false }), 'ticks.yaml');
    proc = startSluice(['watch', '.', '--debounce', '50'], ws.dir);
    const started = timeOf(await proc.waitForLog((l) => l.msg === 'pipeline started'));
    await sleep(1000);
    expect(passes(proc)).toEqual([]);
    expect(listFiles(ws.path('out'))).toEqual([]);
    const first = await proc.waitForLog((l) => l.msg === 'pass finished', 10_000, 'the first pass');
    // Due 2 s after the version was made (a moment before its "pipeline started" line).
    expect(timeOf(first) - started).toBeGreaterThanOrEqual(1500);
    expect(listFiles(ws.path('out'))).toEqual(['a.txt']);
  });

  it('a description-only edit starts no pass; a real change starts one at once', async () => {
    ws = makeWorkspace('sluice-run-at-start-');
    ws.write('in/a.txt', 'a');
    ws.pipeline(text({ description: 'one', every: '3s' }), 'ticks.yaml');
    proc = startSluice(['watch', '.', '--debounce', '50'], ws.dir);
    // run_at_start defaults to true: a pass at once.
    const first = timeOf(await proc.waitForLog((l) => l.msg === 'pass finished', 10_000, 'the first pass'));
    const p = proc;
    const reloads = () => p.logs.filter((l) => l.msg === 'pipeline reloaded').length;

    writeFileSync(ws.path('ticks.yaml'), text({ description: 'two, reworded', every: '3s' }));
    await proc.waitForLog(() => reloads() === 1, 5000, 'the description edit to be reloaded');
    // Until the due time the first version had (first pass + 3 s), nothing runs.
    await sleep(Math.max(0, first + 2500 - Date.now()));
    expect(passes(proc)).toHaveLength(1);
    await proc.waitForLog(() => passes(p).length === 2, 10_000, 'the pass at its due time');
    // 3 s after the first pass started (its end is `first`); a pass started by the reload would
    // have ended some 100 ms after it.
    expect(timeOf(passes(proc)[1]) - first).toBeGreaterThanOrEqual(2500);

    ws.write('in/b.txt', 'b');
    writeFileSync(ws.path('ticks.yaml'), text({ description: 'two, reworded', every: '3s', out: 'out2' }));
    const reloaded = timeOf(await proc.waitForLog(() => reloads() === 2, 5000, 'the real change'));
    await proc.waitForLog(() => passes(p).length === 3, 10_000, 'a pass at once after the change');
    // Well before the next due time (the first pass + 6 s, some 2.8 s after the reload).
    expect(timeOf(passes(proc)[2]) - reloaded).toBeLessThan(2200);
    expect(listFiles(ws.path('out2'))).toEqual(['b.txt']);
  });
});
