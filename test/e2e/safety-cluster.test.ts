/**
 * A cluster worker acts only while it holds its job (issue 11, #14). A worker paused (SIGSTOP:
 * a long GC, a frozen VM) past the stall interval loses its job to another worker, which
 * delivers the file and deletes the source; when the first one resumes it must neither commit
 * a second copy (`one (1).txt`) nor delete a new file of the same name, nor move the ledger
 * record backwards. Also the fence itself, against a real Redis and real BullMQ jobs.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { type Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { JobFence } from '../../core/cluster/fence.js';
import { RedisLedger } from '../../core/ledger/redis.js';
import type { ListedItem } from '../../core/runtime/runner.js';
import { clusterPlugins, waitFor } from '../helpers/cluster.js';
import { clusterSuite } from '../helpers/cluster-suite.js';
import { listFiles } from '../helpers/workspace.js';

const suite = clusterSuite('sluice-safety-cluster-');
const { ws, start } = suite;

describe('JobFence (real Redis, real BullMQ jobs)', () => {
  const LOCK_MS = 400;
  const closers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  });

  async function setUp(name: string) {
    const connection = new Redis(suite.redis.url, { maxRetriesPerRequest: null });
    closers.push(async () => connection.quit());
    const queue = new Queue(name, { connection, prefix: 'sluice' });
    closers.push(() => queue.close());
    await queue.add('item', { n: 1 }, { jobId: 'j1' });
    // Worker A fetches by hand, so nothing renews its lock: as if its process were paused.
    const a = new Worker(name, null, { connection, prefix: 'sluice', lockDuration: LOCK_MS });
    closers.push(() => a.close());
    const jobA = (await a.getNextJob('token-a')) as Job;
    expect(jobA.id).toBe('j1');
    return { connection, queue, jobA, lockKey: `sluice:${name}:j1:lock` };
  }

  /** A listed item whose stream never ends (a long read in flight). */
  function endlessItem(): { listed: ListedItem; opened: PassThrough[] } {
    const opened: PassThrough[] = [];
    const item = {
      source: 'in',
      path: 'one.txt',
      checksums: {},
      meta: {},
      open: async () => {
        const s = new PassThrough();
        s.write('some bytes');
        opened.push(s);
        return s as Readable;
      },
    };
    return { listed: { source: 'in', item }, opened };
  }

  it('passes while the job is ours (renewing the lock), throws SLUICE_E_FENCED once another worker took it, and aborts reads', async () => {
    const { connection, queue, jobA, lockKey } = await setUp('{fence-a}');
    const fenceA = new JobFence(jobA, 'token-a', LOCK_MS);
    await new Promise((r) => setTimeout(r, LOCK_MS / 2));
    await fenceA.check();
    // One round trip that also renews: the step after a fence has a whole lock duration.
    expect(await connection.pttl(lockKey)).toBeGreaterThan(LOCK_MS * 0.75);

    const { listed, opened } = endlessItem();
    const guarded = fenceA.guard(listed);
    const stream = await guarded.item.open();
    const destroyed = new Promise<Error>((resolve) => stream.once('error', resolve));

    // Worker B, with its stalled checker, takes the job over once A's lock expired.
    let tokenB: string | undefined;
    let jobB: Job | undefined;
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const bConnection = new Redis(suite.redis.url, { maxRetriesPerRequest: null });
    closers.push(async () => bConnection.quit());
    const b = new Worker(
      '{fence-a}',
      async (job, token) => {
        jobB = job;
        tokenB = token;
        await released;
        return 'done by B';
      },
      { connection: bConnection, prefix: 'sluice', lockDuration: LOCK_MS, stalledInterval: 200 },
    );
    closers.push(() => b.close());
    await waitFor(() => tokenB !== undefined, 10_000, 'worker B to take the stalled job');

    await expect(fenceA.check()).rejects.toMatchObject({ code: 'SLUICE_E_FENCED' });
    expect(fenceA.fenced).toBe(true);
    expect(await destroyed).toMatchObject({ code: 'SLUICE_E_FENCED' });
    expect(opened[0].destroyed).toBe(true);
    await expect(guarded.item.open()).rejects.toMatchObject({ code: 'SLUICE_E_FENCED' });
    // The lost check left B's lock alone.
    expect(await connection.get(lockKey)).toBe(tokenB);
    await new JobFence(jobB!, tokenB!, LOCK_MS).check();

    // BullMQ refuses to finish the job for A, whether A reports success or failure.
    await expect(jobA.moveToCompleted('done by A', 'token-a', false)).rejects.toThrow(/lock/i);
    await expect(jobA.moveToFailed(new Error('fenced'), 'token-a')).rejects.toThrow(/lock/i);
    release();
    await waitFor(
      async () => (await queue.getJobState('j1')) === 'completed',
      10_000,
      'B to complete the job',
    );
    const done = await queue.getJob('j1');
    expect(done?.returnvalue).toBe('done by B');
    expect(await queue.getJobCounts('failed', 'delayed', 'active', 'wait')).toEqual({
      failed: 0,
      delayed: 0,
      active: 0,
      wait: 0,
    });
  });

  it('throws SLUICE_E_FENCED when the lock merely expired (the job not taken yet), and never re-takes it', async () => {
    const { connection, jobA, lockKey } = await setUp('{fence-b}');
    const fence = new JobFence(jobA, 'token-a', LOCK_MS);
    await new Promise((r) => setTimeout(r, LOCK_MS + 200));
    expect(await connection.exists(lockKey)).toBe(0);
    await expect(fence.check()).rejects.toMatchObject({ code: 'SLUICE_E_FENCED' });
    expect(await connection.exists(lockKey)).toBe(0);
  });
});

describe('cluster: a worker paused past the stall interval', () => {
  const cases = [
    {
      where: 'in a step',
      name: 'fence-step',
      middle:
        'steps:\n  - hold_on: { match: one, dir: ./markers }\nsink:\n  local: { path: ./out, if_exists: rename }',
    },
    // The bytes are read and the sink is about to make them visible: the fence before the
    // stream started is long past.
    {
      where: 'inside the sink write, after the last byte',
      name: 'fence-sink',
      middle: 'sink:\n  hold_sink: { path: ./out, dir: ./markers, if_exists: rename }',
    },
  ];
  for (const { where, name, middle } of cases) {
    it(`paused ${where}, it stops without side effects when it resumes: one copy, the new file kept, the ledger still finalized`, async () => {
      const path = (...parts: string[]) => ws.path(name, ...parts);
      ws.write(`${name}/markers/hold`, '');
      ws.write(`${name}/in/one.txt`, 'version 1\n');
      ws.pipeline(
        `name: ${name}\nplugins: [${clusterPlugins}]\nsource:\n  local: { path: ./in, after_success: delete }\n${middle}\n`,
        `${name}/pipeline.yaml`,
      );
      const args = (command: string) => [
        command,
        '--cluster',
        suite.redis.url,
        `${name}/pipeline.yaml`,
        '--log-format',
        'json',
      ];
      const worker = () => start(args('worker'));
      const a = worker();
      const run = start([...args('run'), '--summary-json', path('summary.json'), '--quiet']);
      await waitFor(() => existsSync(path(`markers/reached-${a.pid}`)), 20_000, 'worker A to hold the item');

      a.child.kill('SIGSTOP');
      let stopped = true;
      try {
        rmSync(path('markers/hold'));
        const b = worker();
        expect(await run.exited, run.output()).toBe(0);
        expect(JSON.parse(readFileSync(path('summary.json'), 'utf8'))).toMatchObject({ ok: 1, failed: 0 });
        expect(listFiles(path('out'))).toEqual(['one.txt']);
        expect(existsSync(path('in/one.txt'))).toBe(false);

        // A producer drops a new file of the same name (and size); then A wakes up mid-item.
        ws.write(`${name}/in/one.txt`, 'version 2\n');
        a.child.kill('SIGCONT');
        stopped = false;
        const fencedLog = 'stopped an item whose job this worker lost';
        // Without a fence, A goes on to commit and tidy up instead: the files below say what it did.
        await waitFor(() => a.output().includes(fencedLog), 10_000, 'worker A to stop its item').catch(
          () => undefined,
        );
        // Anything A would still do (a commit, a delete, a ledger write) is done by now.
        await new Promise((r) => setTimeout(r, 1000));

        expect(listFiles(path('out')).filter((f) => !f.startsWith('.sluice-tmp/'))).toEqual(['one.txt']);
        expect(readFileSync(path('out/one.txt'), 'utf8')).toBe('version 1\n');
        expect(readFileSync(path('in/one.txt'), 'utf8')).toBe('version 2\n');

        const ledger = RedisLedger.connect(suite.redis.url);
        try {
          const records = await ledger.history(name);
          expect(records).toHaveLength(1);
          expect(records[0]).toMatchObject({ path: 'one.txt', state: 'finalized' });
          expect(records[0].destinations).toHaveLength(1);
          expect(records[0].destinations[0]).toMatch(/out\/one\.txt$/);
        } finally {
          await ledger.close();
        }
        expect(a.output()).toContain(fencedLog);
        expect(a.output()).not.toContain('job failed');
        expect(a.output()).not.toContain('item failed');

        const queue = new Queue(`{${name}}`, {
          connection: { host: '127.0.0.1', port: suite.redis.port, maxRetriesPerRequest: null },
          prefix: 'sluice',
        });
        try {
          expect(await queue.getJobCounts('completed', 'failed', 'delayed', 'active', 'wait')).toEqual({
            completed: 1,
            failed: 0,
            delayed: 0,
            active: 0,
            wait: 0,
          });
        } finally {
          await queue.close();
        }
        expect(await a.stop()).toBe(0);
        expect(await b.stop()).toBe(0);
      } finally {
        if (stopped) a.child.kill('SIGCONT');
      }
    }, 90_000);
  }
});
