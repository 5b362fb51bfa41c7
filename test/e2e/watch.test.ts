/**
 * `sluice watch` as a user runs it (a real child process): hot reload under load keeps every
 * file exactly once, invalid edits leave the running version in place, new and deleted
 * pipeline files start and stop pipelines, and SIGTERM drains and exits 0.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { type SluiceProcess, sleep, startSluice, statusPort, until } from '../helpers/sluice-process.js';
import { deliveredFiles, listFiles, makeWorkspace, sha256, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
let proc: SluiceProcess | undefined;
afterEach(async () => {
  if (proc && proc.child.exitCode === null) {
    proc.kill('SIGKILL');
    await proc.exited;
  }
  proc = undefined;
  ws?.cleanup();
});

const pipelineText = (version: number, concurrency: number) => `name: hot
description: version ${version}
source:
  local: { path: ./in, watch: true, min_age: 150ms, after_success: delete }
sink:
  local: { path: ./out, if_exists: fail }
policy:
  concurrency: ${concurrency}
  drain_timeout: 20s
`;

/** Edits that must be rejected, each a different kind of mistake. */
const INVALID = [
  (v: number) => `${pipelineText(v, 2)}  bogus: [\n`, // YAML syntax
  (v: number) => pipelineText(v, 2).replace('concurrency:', 'concurency:'), // unknown key
  (v: number) => pipelineText(v, 2).replace('watch: true', 'watch: often'), // wrong type in a plugin config
];

const hashOf = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16);

async function metrics(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('sluice watch', () => {
  it('keeps every file exactly once while the pipeline is edited 20 times (valid and invalid) under load', async () => {
    ws = makeWorkspace('sluice-watch-');
    ws.write('in/.keep-dir', '');
    rmSync(ws.path('in/.keep-dir'));
    ws.pipeline(pipelineText(0, 4), 'hot.yaml');
    proc = startSluice(['watch', '.', '--metrics-port', '0', '--debounce', '80'], ws.dir);
    const port = await statusPort(proc);
    await proc.waitForLog((l) => l.msg === 'pipeline started', 15_000, 'the pipeline to start');

    const expected = new Map<string, string>();
    let writing = true;
    const writer = (async () => {
      for (let n = 0; writing; n++) {
        const body = randomBytes(1024 + ((n * 7919) % 30_000));
        const name = `batch${n % 5}/f${String(n).padStart(4, '0')}.bin`;
        ws.write(`in/${name}`, body);
        expected.set(name, sha256(body));
        await sleep(25);
      }
    })();

    let lastValid = pipelineText(0, 4);
    let valid = 0;
    let invalid = 0;
    for (let edit = 1; edit <= 20; edit++) {
      // Every third edit is a mistake; the last one is valid so the final version is known.
      if (edit % 3 === 0 && edit !== 20) {
        writeFileSync(ws.path('hot.yaml'), INVALID[invalid % INVALID.length](edit));
        invalid++;
      } else {
        lastValid = pipelineText(edit, 1 + (edit % 4));
        writeFileSync(ws.path('hot.yaml'), lastValid);
        valid++;
      }
      await sleep(350);
    }
    writing = false;
    await writer;

    await until(
      () => listFiles(ws.path('in')).length,
      (n) => n === 0,
      30_000,
      'the source folder to be emptied',
    );
    await until(
      () => deliveredFiles(ws.path('out')).length,
      (n) => n >= expected.size,
      10_000,
      'every file at the sink',
    );

    // Exactly once: the same names, the same bytes, nothing extra (no temp files, no duplicates).
    const landed = listFiles(ws.path('out'));
    expect(landed).toEqual([...expected.keys()].sort());
    for (const name of landed)
      expect(sha256(readFileSync(ws.path('out', name))), name).toBe(expected.get(name));
    expect(proc.logs.filter((l) => l.msg === 'item failed')).toEqual([]);

    const m = await metrics(port);
    expect(metric(m, 'sluice_items_total', 'pipeline="hot",outcome="ok"')).toBe(expected.size);
    expect(metric(m, 'sluice_items_total', 'pipeline="hot",outcome="failed"')).toBe(0);
    // Each reload is visible in the logs and the metrics, rejected ones naming file:line:col. Edits
    // that arrive while a reload is still draining are read together (the newest text wins), so
    // on a loaded machine fewer reloads than edits may happen; the last one always applies.
    const applied = proc.logs.filter((l) => l.msg === 'pipeline reloaded');
    const rejected = proc.logs.filter((l) => String(l.msg).startsWith('reload rejected'));
    expect(metric(m, 'sluice_reloads_total', 'pipeline="hot",result="ok"')).toBe(applied.length + 1); // + the first load
    expect(metric(m, 'sluice_reloads_total', 'pipeline="hot",result="invalid"')).toBe(rejected.length);
    expect(applied.length).toBeGreaterThanOrEqual(valid / 2);
    expect(applied.length).toBeLessThanOrEqual(valid);
    expect(rejected.length).toBeGreaterThanOrEqual(1);
    expect(rejected.length).toBeLessThanOrEqual(20); // a reload may also catch a file mid-write: rejected, harmless
    expect(String(rejected[0].err)).toMatch(/^hot\.yaml:\d+:\d+: /);

    const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as {
      pipelines: Array<{
        name: string;
        state: string;
        hash: string;
        lastReload: { result: string; hash: string };
      }>;
    };
    expect(status.pipelines).toHaveLength(1);
    expect(status.pipelines[0]).toMatchObject({
      name: 'hot',
      state: 'running',
      hash: hashOf(lastValid),
      lastReload: { result: 'ok', hash: hashOf(lastValid) },
    });

    proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  }, 60_000);

  it('starts a pipeline for a new file, keeps a bad new file out, and drains and stops a deleted one', async () => {
    ws = makeWorkspace('sluice-watch-');
    ws.write('a-in/one.txt', 'one');
    ws.pipeline(
      'name: first\nsource:\n  local: { path: ./a-in, watch: true, min_age: 100ms }\nsink:\n  local: { path: ./a-out }\n',
      'first.yaml',
    );
    proc = startSluice(['watch', '.', '--metrics-port', '0', '--debounce', '50'], ws.dir);
    const port = await statusPort(proc);
    await until(
      () => listFiles(ws.path('a-out')),
      (f) => f.length === 1,
      15_000,
      'first to copy one.txt',
    );

    ws.write('b-in/two.txt', 'two');
    ws.pipeline(
      'name: second\nsource:\n  local: { path: ./b-in }\nsink:\n  local: { path: ./b-out }\n',
      'second.yaml',
    );
    ws.pipeline(
      'name: third\nsource:\n  local: { path: ./c-in, recursive: perhaps }\nsink:\n  local: { path: ./c-out }\n',
      'third.yaml',
    );
    await until(
      () => listFiles(ws.path('b-out')),
      (f) => f.length === 1,
      15_000,
      'the new pipeline to run',
    );
    const bad = await proc.waitForLog(
      (l) => String(l.msg).startsWith('reload rejected') && l.pipeline === 'third',
      10_000,
      'the bad file to be reported',
    );
    expect(String(bad.err)).toMatch(/^third\.yaml:3:37: .*recursive: must be boolean/);

    const status = async () =>
      (
        (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as {
          pipelines: Array<{ name: string; state: string }>;
        }
      ).pipelines;
    const states = (list: Array<{ name: string; state: string }>) =>
      JSON.stringify(list.map((p) => [p.name, p.state]).sort());
    await until(
      status,
      (list) => states(list) === '[["first","running"],["second","finished"],["third","invalid"]]',
      10_000,
      'the three states',
    );

    rmSync(ws.path('first.yaml'));
    await proc.waitForLog(
      (l) => l.msg === 'pipeline version stopped' && l.pipeline === 'first',
      10_000,
      'the deleted pipeline to stop',
    );
    await until(status, (p) => !p.some((x) => x.name === 'first'), 5_000, 'first to leave /status');
    // Its watching source stopped too: a new file there stays put.
    ws.write('a-in/late.txt', 'late');
    await sleep(600);
    expect(listFiles(ws.path('a-out'))).toEqual(['one.txt']);
    expect(metric(await metrics(port), 'sluice_reloads_total', 'pipeline="first",result="removed"')).toBe(1);

    proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  }, 40_000);
});
