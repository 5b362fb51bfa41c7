/**
 * Scale-out against a real redis-server: the Redis ledger behind the Ledger interface, lister
 * takeover when the lister is killed, a Redis restart mid-run (data kept), hot reload of a
 * pipeline across workers, and `sluice history --cluster`.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisLedger } from '../../core/ledger/redis.js';
import { clusterPlugins, sluiceBin, waitFor } from '../helpers/cluster.js';
import { clusterSuite } from '../helpers/cluster-suite.js';
import { deliveredFiles, listFiles, sha256 } from '../helpers/workspace.js';

const suite = clusterSuite('sluice-cluster-', { persistent: true });
const { ws, start } = suite;

const worker = (file: string) =>
  start(['worker', '--cluster', suite.redis.url, file, '--log-format', 'json']);
const run = (file: string, summary: string) =>
  start([
    'run',
    '--cluster',
    suite.redis.url,
    file,
    '--summary-json',
    summary,
    '--log-format',
    'json',
    '--quiet',
  ]);
const summaryOf = (file: string) =>
  JSON.parse(ws.read(file)) as { ok: number; failed: number; skipped: number; failures: unknown[] };

function generated(i: number, size: number): string {
  const body = Buffer.alloc(size, i % 251);
  body.write(`generated file ${i}`);
  return sha256(body);
}

describe('Redis ledger', () => {
  it('records, merges destinations, clears errors and lists history like the SQLite ledger', async () => {
    const ledger = RedisLedger.connect(suite.redis.url);
    try {
      const id = { source: 'src', path: 'a/b.txt', version: '10:1000' };
      expect(await ledger.get('led', id)).toBeUndefined();
      ledger.record('led', id, { state: 'seen', attempts: 1 });
      ledger.record('led', id, { state: 'failed', attempts: 1, error: 'boom' });
      expect((await ledger.get('led', id))?.error).toBe('boom');
      ledger.record('led', id, { state: 'committed', attempts: 2, destinations: ['/out/a/b.txt'] });
      ledger.record('led', id, { state: 'finalized', attempts: 2 });
      await ledger.flush();
      const rec = await ledger.get('led', id);
      expect(rec).toMatchObject({
        pipeline: 'led',
        source: 'src',
        path: 'a/b.txt',
        version: '10:1000',
        state: 'finalized',
        attempts: 2,
        destinations: ['/out/a/b.txt'],
      });
      expect(rec?.error).toBeUndefined();
      expect(await ledger.get('led', { ...id, version: '11:1000' })).toBeUndefined();

      const other = { source: 'src', path: 'c.txt', version: '1:1' };
      await new Promise((r) => setTimeout(r, 5));
      ledger.record('led', other, { state: 'failed', attempts: 3, error: 'bad data' });
      const recent = await ledger.history('led', { limit: 10 });
      expect(recent.map((r) => r.path)).toEqual(['c.txt', 'a/b.txt']);
      expect((await ledger.history('led', { state: 'failed' })).map((r) => r.path)).toEqual(['c.txt']);
      expect(await ledger.history('led', { limit: 1 })).toHaveLength(1);
      expect(await ledger.history('nothing-here')).toEqual([]);
    } finally {
      await ledger.close();
    }
  });
});

describe('cluster runs', () => {
  it('a second lister takes over within the lock TTL when the lister is killed mid-listing', async () => {
    const COUNT = 300;
    ws.pipeline(
      `name: takeover\nplugins: [${clusterPlugins}]\nsource:\n  slow_source: { count: ${COUNT}, delay_ms: 20, size: 700 }\nsink:\n  local: { path: ./takeover-out }\npolicy:\n  concurrency: 8\n`,
      'takeover.yaml',
    );
    const w = worker('takeover.yaml');
    const probe = new Redis(suite.redis.url, { maxRetriesPerRequest: null });
    try {
      const lockKey = 'sluice:{takeover}:lister';
      const a = run('takeover.yaml', 'takeover-a.json');
      await waitFor(
        async () => (await probe.get(lockKey))?.includes(`:${a.pid}:`) === true,
        20_000,
        'lister A to hold the lock',
      );
      const b = run('takeover.yaml', 'takeover-b.json');
      // A lists for ~6 s; kill it once it has enqueued some items.
      await waitFor(
        () => deliveredFiles(ws.path('takeover-out')).length > 20,
        20_000,
        'first items at the sink',
      );
      expect(await probe.get(lockKey)).toContain(`:${a.pid}:`);
      await a.kill();
      const killedAt = Date.now();
      await waitFor(
        async () => (await probe.get(lockKey))?.includes(`:${b.pid}:`) === true,
        10_000,
        'lister B to take the lock',
      );
      const takeoverMs = Date.now() - killedAt;
      expect(takeoverMs).toBeLessThan(2000 + 1000); // TTL (2 s in tests) + B's poll period and process slack

      expect(await b.exited, b.output()).toBe(0);
      const s = summaryOf('takeover-b.json');
      expect(s.failed).toBe(0);
      expect(s.ok + s.skipped).toBe(COUNT);
      const out = listFiles(ws.path('takeover-out'));
      expect(out).toHaveLength(COUNT);
      for (const rel of out.slice(0, 50)) {
        const i = Number(/f(\d+)/.exec(rel)![1]);
        expect(sha256(readFileSync(ws.path('takeover-out', rel)))).toBe(generated(i, 700));
      }
      expect(await probe.get(lockKey)).toBeNull();
    } finally {
      probe.disconnect();
      await w.stop();
    }
  }, 90_000);

  it('completes a run across a Redis restart (data kept)', async () => {
    const COUNT = 200;
    ws.pipeline(
      `name: restart\nplugins: [${clusterPlugins}]\nsource:\n  slow_source: { count: ${COUNT}, delay_ms: 0, size: 2000 }\nsink:\n  slow_sink: { path: ./restart-out, latency_ms: 60 }\npolicy:\n  concurrency: 4\n`,
      'restart.yaml',
    );
    const w = worker('restart.yaml');
    const r = run('restart.yaml', 'restart.json');
    await waitFor(
      () => deliveredFiles(ws.path('restart-out')).length > 10,
      20_000,
      'first items at the sink',
    );
    expect(listFiles(ws.path('restart-out')).length).toBeLessThan(COUNT);
    await suite.redis.restart(800);
    expect(await r.exited, r.output()).toBe(0);
    const s = summaryOf('restart.json');
    expect(s.failed).toBe(0);
    expect(s.ok).toBe(COUNT);
    expect(listFiles(ws.path('restart-out'))).toHaveLength(COUNT);
    // The worker survived the restart and is still serving.
    expect(w.child.exitCode).toBeNull();
    expect(await w.stop()).toBe(0);
  }, 90_000);

  it('hot reload: new versions reach running workers; items queued under a version finish under it', async () => {
    const version = (out: string, extra = '') =>
      `name: reload\nsource:\n  local: { path: ./reload-in, after_success: delete }\nsink:\n  local: { path: ./${out} }\n${extra}`;
    const put = (names: string[]) => {
      for (const n of names) ws.write(`reload-in/${n}`, `content of ${n}`);
    };
    ws.pipeline(version('reload-v1'), 'reload.yaml');
    // 1. Worker and lister on v1.
    let w = worker('reload.yaml');
    put(['a.txt', 'b.txt']);
    expect(await run('reload.yaml', 'r1.json').exited).toBe(0);
    expect(listFiles(ws.path('reload-v1'))).toEqual(['a.txt', 'b.txt']);

    // 2. The file changes; the running worker (loaded with v1) gets v2 through Redis.
    ws.pipeline(version('reload-v2'), 'reload.yaml');
    put(['c.txt']);
    expect(await run('reload.yaml', 'r2.json').exited).toBe(0);
    expect(listFiles(ws.path('reload-v2'))).toEqual(['c.txt']);
    expect(w.output()).toContain('loaded a new pipeline version from the cluster');
    expect(await w.stop()).toBe(0);

    // 3. Items queued under v2 while no worker runs; the file then becomes v3 and a worker
    //    starts on v3: the queued items still finish under v2 (their version), not v3.
    put(['d.txt', 'e.txt']);
    const r3 = run('reload.yaml', 'r3.json');
    const probe = new Redis(suite.redis.url, { maxRetriesPerRequest: null });
    try {
      await waitFor(async () => (await probe.llen('sluice:{reload}:wait')) === 2, 20_000, 'two queued jobs');
    } finally {
      probe.disconnect();
    }
    ws.pipeline(version('reload-v3', '# v3\n'), 'reload.yaml');
    w = worker('reload.yaml');
    expect(await r3.exited, r3.output()).toBe(0);
    expect(listFiles(ws.path('reload-v2'))).toEqual(['c.txt', 'd.txt', 'e.txt']);
    expect(listFiles(ws.path('reload-v3'))).toEqual([]);

    // 4. A new pass under v3 lands in v3.
    put(['f.txt']);
    expect(await run('reload.yaml', 'r4.json').exited).toBe(0);
    expect(listFiles(ws.path('reload-v3'))).toEqual(['f.txt']);
    expect(await w.stop()).toBe(0);

    // `sluice history --cluster` reads the Redis ledger.
    const history = execFileSync(
      process.execPath,
      [sluiceBin, 'history', '--cluster', suite.redis.url, 'reload.yaml', '--limit', '3'],
      { cwd: ws.dir },
    ).toString();
    const lines = history.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/finalized\s+local:f\.txt → .*reload-v3\/f\.txt/);
    const failed = execFileSync(
      process.execPath,
      [sluiceBin, 'history', '--cluster', suite.redis.url, 'reload.yaml', '--state', 'failed'],
      { cwd: ws.dir },
    ).toString();
    expect(failed).toContain('no items recorded for reload');
  }, 90_000);
});

// Keep the helper's hash in sync with the fixture plugin's bytes.
it('generated() matches the fixture plugin', async () => {
  const { generatedBody } = (await import(clusterPlugins)) as {
    generatedBody: (i: number, size: number) => Buffer;
  };
  expect(createHash('sha256').update(generatedBody(7, 700)).digest('hex')).toBe(generated(7, 700));
});
