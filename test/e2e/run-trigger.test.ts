/**
 * `sluice run` kept running by its trigger (real child processes): every/cron passes, no
 * overlap, --once, SIGTERM drains and exits 0, a second signal aborts (130) with nothing
 * half-committed, log files with rotation and an errors-only file, /metrics and /healthz.
 */
import { existsSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import {
  runSluiceInTerminal,
  type SluiceProcess,
  startSluice,
  statusPort,
  until,
} from '../helpers/sluice-process.js';
import { listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';

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

/** A byte step that holds each chunk back `ms`: keeps an item in flight long enough to signal. */
const SLOW_PLUGIN = `import { Transform } from 'node:stream';
export default {
  name: 'slow',
  kind: 'transform',
  summary: 'test plugin: delays every chunk',
  config: { type: 'object', properties: { ms: { type: 'number', description: 'delay per chunk' } }, additionalProperties: false },
  examples: [],
  create(cfg) {
    return {
      process(item) {
        return {
          ...item,
          open: async (signal) => {
            const source = await item.open(signal);
            const delay = new Transform({ transform(chunk, _enc, cb) { setTimeout(() => cb(null, chunk), cfg.ms); } });
            source.on('error', (err) => delay.destroy(err));
            return source.pipe(delay);
          },
        };
      },
    };
  },
};
`;

const passes = (p: SluiceProcess) => p.logs.filter((l) => l.msg === 'pass finished');

describe('sluice run with a trigger', () => {
  it('runs a pass every interval, picks up new files, and exits 0 on SIGTERM', async () => {
    ws = makeWorkspace('sluice-trigger-');
    ws.write('in/a.txt', 'a');
    ws.pipeline(
      'name: every\ntrigger: { every: 300ms }\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n',
      'every.yaml',
    );
    proc = startSluice(['run', 'every.yaml'], ws.dir);
    await until(
      () => listFiles(ws.path('out')),
      (f) => f.length === 1,
      10_000,
      'the first pass',
    );
    ws.write('in/b.txt', 'b');
    await until(
      () => listFiles(ws.path('out')),
      (f) => f.length === 2,
      10_000,
      'a later pass to take the new file',
    );
    await until(
      () => passes(proc!).length,
      (n) => n >= 3,
      10_000,
      'three passes',
    );
    const started = proc.logs.find((l) => l.msg === 'pipeline started');
    expect(started).toMatchObject({ pipeline: 'every', trigger: 'every 300ms' });
    proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  }, 30_000);

  it('runs by cron in a timezone, and --once runs a single pass whatever the trigger', async () => {
    ws = makeWorkspace('sluice-trigger-');
    ws.write('in/a.txt', 'a');
    ws.pipeline(
      'name: cron\ntrigger: { cron: "* * * * * *", timezone: Europe/Paris }\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n',
      'cron.yaml',
    );
    proc = startSluice(['run', 'cron.yaml'], ws.dir);
    await until(
      () => passes(proc!).length,
      (n) => n >= 2,
      10_000,
      'two cron passes a second apart',
    );
    expect(proc.logs.find((l) => l.msg === 'pipeline started')).toMatchObject({
      trigger: 'cron * * * * * * (Europe/Paris)',
    });
    proc.kill('SIGINT');
    expect(await proc.exited).toBe(0);

    const once = startSluice(['run', 'cron.yaml', '--once'], ws.dir);
    expect(await once.exited).toBe(0);
    expect(passes(once)).toHaveLength(1);
  }, 30_000);

  it('never overlaps passes: a due time inside a running pass is skipped and logged', async () => {
    ws = makeWorkspace('sluice-trigger-');
    for (let i = 0; i < 4; i++) ws.write(`in/f${i}.txt`, `file ${i}`);
    // 4 files at 4 per second take about a second; the trigger is due every 200ms.
    ws.pipeline(
      'name: slowpass\ntrigger: { every: 200ms }\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\npolicy:\n  concurrency: 1\n  rate_limit: { per_second: 4 }\n',
      'slowpass.yaml',
    );
    proc = startSluice(['run', 'slowpass.yaml', '--metrics-port', '0'], ws.dir);
    const port = await statusPort(proc);
    const skipped = await proc.waitForLog(
      (l) => String(l.msg).includes('skipped, passes never overlap'),
      15_000,
      'a skipped pass',
    );
    expect(skipped.skipped).toBeGreaterThanOrEqual(2);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_passes_skipped_total\{pipeline="slowpass"\} [1-9]/m);
    expect(await (await fetch(`http://127.0.0.1:${port}/healthz`)).text()).toBe('ok\n');
    proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  }, 30_000);
});

describe('signals', () => {
  function slowPipeline(w: Workspace): void {
    w.write('slow.mjs', SLOW_PLUGIN);
    w.write('in/big.bin', Buffer.alloc(200_000, 7));
    w.pipeline(
      'name: slow\nplugins: ["./slow.mjs"]\nsource:\n  local: { path: ./in, after_success: delete }\nsteps:\n  - slow: { ms: 2500 }\nsink:\n  local: { path: ./out }\n',
      'slow.yaml',
    );
  }

  async function inFlight(port: number): Promise<number> {
    const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as {
      pipelines: Array<{ inFlightCount: number }>;
    };
    return status.pipelines[0]?.inFlightCount ?? 0;
  }

  it('SIGTERM stops intake, lets the in-flight file finish, and exits 0', async () => {
    ws = makeWorkspace('sluice-signal-');
    slowPipeline(ws);
    proc = startSluice(['run', 'slow.yaml', '--metrics-port', '0'], ws.dir);
    const port = await statusPort(proc);
    await until(
      () => inFlight(port).catch(() => 0),
      (n) => n === 1,
      10_000,
      'the file to be in flight',
    );
    proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    expect(listFiles(ws.path('out'))).toEqual(['big.bin']);
    expect(readFileSync(ws.path('out/big.bin'))).toEqual(Buffer.alloc(200_000, 7));
    expect(listFiles(ws.path('in'))).toEqual([]);
  }, 30_000);

  it('a second signal aborts at once (exit 130): nothing half-committed, the source untouched', async () => {
    ws = makeWorkspace('sluice-signal-');
    slowPipeline(ws);
    proc = startSluice(['run', 'slow.yaml', '--metrics-port', '0'], ws.dir);
    const port = await statusPort(proc);
    await until(
      () => inFlight(port).catch(() => 0),
      (n) => n === 1,
      10_000,
      'the file to be in flight',
    );
    const t0 = Date.now();
    proc.kill('SIGTERM');
    await proc.waitForLog((l) => String(l.msg).startsWith('stopping'), 5_000, 'the first signal to be taken');
    proc.kill('SIGINT');
    expect(await proc.exited).toBe(130);
    expect(Date.now() - t0).toBeLessThan(2_000); // did not wait for the 2.5 s item
    expect(listFiles(ws.path('out'))).toEqual([]); // no file, no temp file left behind
    expect(listFiles(ws.path('in'))).toEqual(['big.bin']);
  }, 30_000);
});

describe('log files', () => {
  it('writes JSON logs with rotation and an errors-only file', async () => {
    ws = makeWorkspace('sluice-logs-');
    for (let i = 0; i < 30; i++) ws.write(`in/ok${i}.txt.gz`, gzipSync(`line ${i}\n`));
    ws.write('in/broken.txt.gz', 'this is not gzip');
    ws.pipeline(
      'name: logs\nsource:\n  local: { path: ./in }\nsteps:\n  - decompress: {}\nsink:\n  local: { path: ./out }\n',
      'logs.yaml',
    );
    const run = startSluice(
      [
        'run',
        'logs.yaml',
        '--log-file',
        'sluice.log',
        '--error-log',
        'errors.log',
        '--log-rotate',
        '600B',
        '--log-keep',
        '2',
      ],
      ws.dir,
    );
    expect(await run.exited).toBe(1); // one file failed
    expect(listFiles(ws.path('out'))).toHaveLength(30);

    const errors = readFileSync(ws.path('errors.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    for (const e of errors) expect(e.level).toBeGreaterThanOrEqual(50);
    expect(errors.some((e) => e.msg === 'item failed' && String(e.item).includes('broken.txt.gz'))).toBe(
      true,
    );

    // The summary line alone is longer than 600 B, so the main log rotated; only 2 old files kept.
    expect(existsSync(ws.path('sluice.log.1'))).toBe(true);
    expect(existsSync(ws.path('sluice.log.3'))).toBe(false);
    const current = readFileSync(ws.path('sluice.log'), 'utf8').trim().split('\n');
    for (const line of current) expect(() => JSON.parse(line)).not.toThrow();
    expect(run.stderr()).toContain('"msg":"item failed"'); // stderr still gets everything
  }, 30_000);

  it('rejects a bad --log-rotate with a usage error', async () => {
    ws = makeWorkspace('sluice-logs-');
    ws.pipeline('name: x\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n', 'x.yaml');
    const run = startSluice(['run', 'x.yaml', '--log-file', 'l.log', '--log-rotate', 'weekly'], ws.dir);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain('--log-rotate takes a size (10MiB) or "daily", got "weekly"');
  });
});

describe('progress on a TTY', () => {
  it('draws a live progress line per pipeline (through a real pseudo-terminal)', () => {
    ws = makeWorkspace('sluice-tty-');
    for (let i = 0; i < 12; i++) ws.write(`in/f${i}.bin`, Buffer.alloc(100_000, i));
    ws.pipeline(
      'name: tty\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\npolicy:\n  rate_limit: { per_second: 20 }\n',
      'tty.yaml',
    );
    // A pseudo-terminal, as a user's shell gives one.
    const r = runSluiceInTerminal(['run', 'tty.yaml'], ws.dir, { rows: 40, cols: 160 });
    expect(r.status).toBe(0);
    const screen = r.screen;
    expect(screen).toMatch(
      /tty \[[█░]{20}\] \d+\/12 files {2}[\d.]+ (KiB|MiB) {2}[\d.]+ (KiB|MiB)\/s {2}[\d.]+ files\/s ETA [\d.]+m?s/,
    );
    expect(screen).toMatch(/tty \[█{20}\] 12\/12 files .* done/);
    expect(screen).toContain('tty: 12 ok, 0 failed');
    expect(screen).not.toContain('"level"'); // human output on a TTY, not JSON
    expect(r.raw).not.toMatch(/\x1b\[(1|3[0-7])m/); // NO_COLOR: no colours, only cursor control
  }, 30_000);
});
