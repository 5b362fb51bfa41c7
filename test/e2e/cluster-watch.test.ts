/**
 * Cluster mode beyond single passes, against a real redis-server: `sluice watch --cluster`
 * (scheduled lister + hot reload reaching the workers), the `sluice.config.yaml` defaults file,
 * one job per item across pipeline versions (no item planned twice), and a poison item (its
 * worker dies every time) failed into on_error after the stall limit, with compression figures
 * summed from the workers.
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { clusterPlugins, sluiceBin, waitFor } from '../helpers/cluster.js';
import { clusterSuite } from '../helpers/cluster-suite.js';
import { deliveredFiles, listFiles } from '../helpers/workspace.js';

/** Every process gets REDIS_PORT: the first test leaves a sluice.config.yaml that uses it. */
const suite = clusterSuite('sluice-cluster-watch-', {
  persistent: true,
  env: () => ({ REDIS_PORT: String(suite.redis.port) }),
});
const { ws, start } = suite;
const delivered = (dir: string) => deliveredFiles(ws.path(dir));
const put = (dir: string, names: string[]) => {
  for (const n of names) ws.write(`${dir}/${n}`, `content of ${n}\n`.repeat(200));
};

describe('sluice watch --cluster', () => {
  it('lists on the trigger, reloads an edited pipeline for every worker, keeps running through an invalid edit', async () => {
    const version = (out: string) =>
      `name: cw\ntrigger: { every: 1s }\nsource:\n  local: { path: ./cw-in, after_success: delete }\nsink:\n  local: { path: ./${out} }\n`;
    ws.pipeline(version('cw-v1'), 'cw.yaml');
    // The lister finds the cluster in ./sluice.config.yaml; ${REDIS_PORT} comes from the environment.
    ws.write('sluice.config.yaml', 'cluster: redis://127.0.0.1:${REDIS_PORT}\nlog_format: json\n');
    // The worker finds the same file (so it needs REDIS_PORT too); its --cluster flag wins.
    const worker = start(['worker', '--cluster', suite.redis.url, 'cw.yaml', '--log-format', 'json']);
    const watch = start(['watch', 'cw.yaml', '--debounce', '100']);

    put('cw-in', ['a.txt', 'b.txt']);
    await waitFor(() => delivered('cw-v1').length === 2, 60_000, 'a and b in cw-v1');
    await waitFor(() => listFiles(ws.path('cw-in')).length === 0, 60_000, 'the sources deleted');

    ws.pipeline(version('cw-v2'), 'cw.yaml');
    await waitFor(() => watch.output().includes('reload applied'), 60_000, 'the reload');
    put('cw-in', ['c.txt']);
    await waitFor(() => delivered('cw-v2').length === 1, 60_000, 'c in cw-v2');
    expect(worker.output()).toContain('loaded a new pipeline version from the cluster');

    ws.pipeline(`${version('cw-v3')}sink_typo: true\n`, 'cw.yaml');
    await waitFor(
      () => watch.output().includes('reload rejected'),
      60_000,
      'the invalid edit to be reported',
    );
    put('cw-in', ['d.txt']);
    await waitFor(() => delivered('cw-v2').length === 2, 60_000, 'd in cw-v2 (the running version)');

    expect(listFiles(ws.path('cw-v1'))).toEqual(['a.txt', 'b.txt']);
    expect(listFiles(ws.path('cw-v2'))).toEqual(['c.txt', 'd.txt']);
    expect(listFiles(ws.path('cw-v3'))).toEqual([]);
    // The lister kept no local state: the ledger is in Redis (history finds it through the
    // config file, and prints JSON lines as the file's log_format says).
    expect(listFiles(ws.path('.sluice'))).toEqual([]);
    ws.pipeline(version('cw-v2'), 'cw.yaml');
    const history = execFileSync(
      process.execPath,
      [sluiceBin, 'history', 'cw.yaml', '--state', 'finalized'],
      {
        cwd: ws.dir,
        env: { ...process.env, REDIS_PORT: String(suite.redis.port) },
      },
    ).toString();
    const paths = history
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { path: string }).path);
    expect(paths.sort()).toEqual(['a.txt', 'b.txt', 'c.txt', 'd.txt']);

    expect(await watch.stop(), watch.output()).toBe(0);
    expect(await worker.stop(), worker.output()).toBe(0);
    expect(watch.output()).not.toContain('unexpected error');
  }, 240_000);
});

describe('one job per item across versions', () => {
  it('an item queued under v1 and listed again under v2 runs once, under v1', async () => {
    const version = (out: string) =>
      `name: col\nsource:\n  local: { path: ./col-in, after_success: delete }\nsink:\n  local: { path: ./${out} }\n`;
    ws.pipeline(version('col-v1'), 'col.yaml');
    put('col-in', ['x1.txt', 'x2.txt', 'x3.txt']);
    const run1 = start([
      'run',
      '--cluster',
      suite.redis.url,
      'col.yaml',
      '--summary-json',
      'col1.json',
      '--log-format',
      'json',
    ]);
    const probe = new Redis(suite.redis.url, { maxRetriesPerRequest: null });
    try {
      await waitFor(async () => (await probe.llen('sluice:{col}:wait')) === 3, 60_000, 'three queued jobs');
      ws.pipeline(version('col-v2'), 'col.yaml');
      const run2 = start([
        'run',
        '--cluster',
        suite.redis.url,
        'col.yaml',
        '--summary-json',
        'col2.json',
        '--log-format',
        'json',
      ]);
      await waitFor(
        () => run2.output().includes('listed; waiting for the workers'),
        60_000,
        'the v2 pass to list',
      );
      expect(await probe.llen('sluice:{col}:wait')).toBe(3);

      const worker = start(['worker', '--cluster', suite.redis.url, 'col.yaml', '--log-format', 'json']);
      expect(await run1.exited, run1.output()).toBe(0);
      expect(await run2.exited, run2.output()).toBe(0);
      expect(await worker.stop(), worker.output()).toBe(0);
    } finally {
      probe.disconnect();
    }
    expect(listFiles(ws.path('col-v1'))).toEqual(['x1.txt', 'x2.txt', 'x3.txt']);
    expect(listFiles(ws.path('col-v2'))).toEqual([]);
    for (const f of ['col1.json', 'col2.json'])
      expect(JSON.parse(ws.read(f))).toMatchObject({ ok: 3, failed: 0 });
  }, 180_000);
});

describe('a poison item', () => {
  it('is failed into on_error once its workers died the stall limit; the rest finish and compression is summed', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `f${i}.csv`);
    put('p-in', [...names, 'poison.csv']);
    ws.pipeline(
      `name: poison\nplugins: [${clusterPlugins}]\nsource:\n  local: { path: ./p-in, after_success: delete }\nsteps:\n  - crash_on: { match: poison }\n  - compress: { format: gzip }\nsink:\n  local: { path: ./p-out }\non_error:\n  local: { path: ./p-err }\n`,
      'poison.yaml',
    );
    const env = { SLUICE_CLUSTER_MAX_STALLS: '2' };
    const run = start(
      [
        'run',
        '--cluster',
        suite.redis.url,
        'poison.yaml',
        '--summary-json',
        'poison.json',
        '--log-format',
        'json',
      ],
      env,
    );
    // One item at a time, so the crash takes down only the poison item's job; a dead worker is
    // replaced at once, as a supervisor (systemd, Kubernetes) would.
    let deaths = 0;
    let finished = false;
    const workers = (async () => {
      while (!finished) {
        const w = start(
          [
            'worker',
            '--cluster',
            suite.redis.url,
            'poison.yaml',
            '--concurrency',
            '1',
            '--log-format',
            'json',
          ],
          env,
        );
        const code = await Promise.race([w.exited, run.exited.then(() => 'run-ended' as const)]);
        if (code === 'run-ended') {
          await waitFor(() => w.output().includes('worker ready'), 60_000, 'the last worker to be up');
          expect(await w.stop(), w.output()).toBe(0);
          return;
        }
        if (code === null) deaths++;
      }
    })();
    const code = await run.exited;
    finished = true;
    await workers;
    expect(code, run.output()).toBe(1);
    expect(deaths).toBe(2);

    const summary = JSON.parse(ws.read('poison.json')) as {
      ok: number;
      failed: number;
      failures: Array<{ path: string; error: string }>;
      compression: { bytesIn: number; bytesOut: number };
    };
    expect(summary).toMatchObject({ ok: 12, failed: 1 });
    expect(summary.failures[0].path).toBe('poison.csv');
    expect(summary.failures[0].error).toMatch(/died 2 times/);
    // Compression figures come from the workers' steps, summed by the lister.
    const rawBytes = names.reduce((n, name) => n + Buffer.byteLength(`content of ${name}\n`.repeat(200)), 0);
    const gzBytes = names.reduce((n, name) => n + statSync(ws.path('p-out', `${name}.gz`)).size, 0);
    expect(summary.compression).toEqual({ bytesIn: rawBytes, bytesOut: gzBytes });

    expect(listFiles(ws.path('p-out'))).toEqual(names.map((n) => `${n}.gz`).sort());
    expect(listFiles(ws.path('p-in'))).toEqual(['poison.csv']); // a failed item's source is kept
    expect(listFiles(ws.path('p-err'))).toEqual(['local/poison.csv', 'local/poison.csv.error.json']);
    const reason = JSON.parse(ws.read('p-err/local/poison.csv.error.json')) as {
      error: string;
      attempts: number;
    };
    expect(reason.error).toMatch(/died 2 times/);
    const failed = execFileSync(
      process.execPath,
      [sluiceBin, 'history', '--cluster', suite.redis.url, 'poison.yaml', '--state', 'failed'],
      {
        cwd: ws.dir,
        env: { ...process.env, REDIS_PORT: String(suite.redis.port) },
      },
    ).toString();
    // sluice.config.yaml says log_format: json, so history prints JSON lines.
    expect(
      failed
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { path: string; state: string }),
    ).toEqual([expect.objectContaining({ path: 'poison.csv', state: 'failed' })]);
  }, 240_000);
});
