/**
 * Scale-out under crashes: 1 lister (`run --cluster`) + 3 workers move 2,000 files local →
 * local (after_success: delete) through a real redis-server; one worker is SIGKILLed mid-flight
 * several times and restarted. Every file lands exactly once with the right sha256, no source
 * is deleted before its copy is in the sink, and no job is left stuck.
 */
import { readFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { clusterSuite } from '../helpers/cluster-suite.js';
import { expectNoLoss, localCopies, writeNumberedFiles } from '../helpers/kill-loop.js';
import { listFiles, sha256 } from '../helpers/workspace.js';

const FILES = 2000;
const KILLS = 4;
const suite = clusterSuite('sluice-cluster-kill-');
const { ws, start } = suite;

describe('cluster: worker crashes', () => {
  it(`moves ${FILES} files exactly once while a worker is SIGKILLed ${KILLS} times`, async () => {
    const hashes = writeNumberedFiles(ws, 'in', FILES);
    ws.pipeline(
      'name: cmove\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  local: { path: ./out, verify: sha256 }\npolicy:\n  concurrency: 4\n',
      'move.yaml',
    );
    const startWorker = () => {
      return start(['worker', '--cluster', suite.redis.url, 'move.yaml', '--log-format', 'json', '--quiet']);
    };
    const workers = [startWorker(), startWorker(), startWorker()];

    const checkNoLoss = () => expectNoLoss(hashes, listFiles(ws.path('in')), localCopies(ws.path('out')));

    const run = start([
      'run',
      '--cluster',
      suite.redis.url,
      'move.yaml',
      '--summary-json',
      'summary.json',
      '--log-format',
      'json',
      '--quiet',
    ]);
    let runExit: number | null | undefined;
    void run.exited.then((code) => {
      runExit = code;
    });

    // Kill worker 0 while items are in flight (some moved, most not yet), restart it at once.
    let kills = 0;
    while (runExit === undefined && kills < KILLS) {
      const before = listFiles(ws.path('in')).length;
      if (before < FILES && before > 0) {
        await workers[0].kill();
        kills++;
        workers[0] = startWorker();
        checkNoLoss();
        await new Promise((r) => setTimeout(r, 600 + Math.random() * 400));
      } else {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const code = await run.exited;
    expect(code, run.output()).toBe(0);
    expect(kills).toBeGreaterThanOrEqual(3);

    const summary = JSON.parse(ws.read('summary.json')) as { ok: number; failed: number; skipped: number };
    expect(summary.failed).toBe(0);
    expect(summary.ok).toBe(FILES);

    for (const w of workers) expect(await w.stop()).toBe(0);
    expect(checkNoLoss()).toBe(0);
    const out = listFiles(ws.path('out')).filter((f) => !f.startsWith('.sluice-tmp/'));
    expect(out).toHaveLength(FILES);
    for (const rel of out) expect(sha256(readFileSync(ws.path('out', rel)))).toBe(hashes.get(rel));
    expect(listFiles(ws.path('out', '.sluice-tmp'))).toEqual([]);

    // No stuck jobs: nothing waiting, active, delayed or failed.
    const queue = new Queue('{cmove}', {
      connection: { host: '127.0.0.1', port: suite.redis.port, maxRetriesPerRequest: null },
      prefix: 'sluice',
    });
    try {
      const counts = await queue.getJobCounts(
        'waiting',
        'active',
        'delayed',
        'failed',
        'prioritized',
        'completed',
      );
      expect(counts).toEqual({
        waiting: 0,
        active: 0,
        delayed: 0,
        failed: 0,
        prioritized: 0,
        completed: FILES,
      });
    } finally {
      await queue.close();
    }
  }, 120_000);
});
