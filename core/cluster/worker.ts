/**
 * A cluster worker: one BullMQ worker per pipeline, running jobs with the same runtime as an
 * embedded run (steps, sinks, verify, finalize, dead-letter). Retries of an item happen inside
 * its job, by the runtime, per `policy.retry`; BullMQ's own attempts only cover what is not an
 * item failure (a stalled job of a killed worker, the ledger unreachable).
 */
import { type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { PipelineDefinition } from '../config/load.js';
import { errorMessage, SluiceError } from '../errors.js';
import { RedisLedger } from '../ledger/redis.js';
import type { Logger } from '../observe/logger.js';
import type { PluginRegistry } from '../registry.js';
import { loadPipelineFile } from '../runtime/run-file.js';
import { PipelineRunner } from '../runtime/runner.js';
import { fetchPipelineText } from './config-store.js';
import { clusterTiming, connectRedis, ensureReachable, QUEUE_PREFIX, queueName } from './connection.js';
import { JobFence } from './fence.js';
import { type ItemJobData, type ItemOutcome, outcomeOf } from './jobs.js';
import { RunEventReporter } from './run-events.js';
import { redactUrl } from './url.js';

/** BullMQ's errors for a job whose lock is no longer this worker's (renewal, completion, failure). */
const LOCK_LOST = /^(could not renew lock|Missing lock|Lock mismatch) for job /;

/** Pipeline versions kept loaded per pipeline (old ones finish their items, then are closed). */
const MAX_VERSIONS = 3;

export interface ClusterWorkerOptions {
  url: string;
  /** Pipelines this worker serves, as loaded from its files. */
  defs: PipelineDefinition[];
  /** The plugins those pipelines may name (the CLI brings the built-in ones). */
  registry: PluginRegistry;
  vars?: Record<string, string>;
  stateDir?: string;
  log: Logger;
  /** Overrides each pipeline's `policy.concurrency` (items in flight per worker). */
  concurrency?: number;
  /** Aborting it stops taking jobs; active ones finish, then the worker closes. */
  signal: AbortSignal;
}

interface LoadedVersion {
  runner: Promise<PipelineRunner>;
  lastUsed: number;
}

/** The runners of one pipeline, one per version (and per `--force`), loaded on demand. */
class PipelineVersions {
  private readonly loaded = new Map<string, LoadedVersion>();

  constructor(
    private readonly file: PipelineDefinition,
    private readonly redis: Redis,
    private readonly ledger: RedisLedger,
    private readonly options: ClusterWorkerOptions,
    /** Reports the items of control API runs (every runner of the pipeline is followed). */
    readonly reporter: RunEventReporter,
  ) {}

  runner(hash: string, force: boolean, vars?: Record<string, string>): Promise<PipelineRunner> {
    const withVars = vars && Object.keys(vars).length > 0 ? vars : undefined;
    const key = `${hash}${force ? ':force' : ''}${withVars ? `:${JSON.stringify(Object.entries(withVars).sort())}` : ''}`;
    let entry = this.loaded.get(key);
    if (!entry) {
      entry = { runner: this.load(hash, force, withVars), lastUsed: Date.now() };
      entry.runner.catch(() => this.loaded.delete(key));
      this.loaded.set(key, entry);
      void this.evict();
    }
    entry.lastUsed = Date.now();
    return entry.runner;
  }

  /** A run's `vars` go on top of the worker's own, as they did on the lister that listed it. */
  private async load(hash: string, force: boolean, vars?: Record<string, string>): Promise<PipelineRunner> {
    const { name, file } = this.file;
    let def = this.file;
    if (hash !== def.hash || vars) {
      const text = hash === def.hash ? def.text : await fetchPipelineText(this.redis, name, hash);
      if (text === null) {
        throw new SluiceError(
          'SLUICE_E_CONFIG',
          `pipeline ${name} version ${hash} is not published in Redis (expired?); it cannot be run`,
        );
      }
      def = await loadPipelineFile(file, {
        registry: this.options.registry,
        vars: vars ? { ...this.options.vars, ...vars } : this.options.vars,
        stateDir: this.options.stateDir,
        text,
      });
      if (hash !== this.file.hash)
        this.options.log.info(
          { pipeline: name, version: hash },
          'loaded a new pipeline version from the cluster',
        );
    }
    const runner = new PipelineRunner(def, { ledger: this.ledger, log: this.options.log, force });
    this.reporter.watch(runner);
    await runner.start();
    return runner;
  }

  /** Closes the least recently used idle versions beyond MAX_VERSIONS. */
  private async evict(): Promise<void> {
    if (this.loaded.size <= MAX_VERSIONS) return;
    const byAge = [...this.loaded.entries()].sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [key, entry] of byAge.slice(0, this.loaded.size - MAX_VERSIONS)) {
      const runner = await entry.runner.catch(() => undefined);
      if (runner && runner.activeItems > 0) continue;
      this.loaded.delete(key);
      await runner?.close();
    }
  }

  async closeAll(): Promise<void> {
    const all = [...this.loaded.values()];
    this.loaded.clear();
    await Promise.allSettled(all.map(async (e) => (await e.runner).close()));
  }
}

/** Serves the pipelines' queues until `signal` aborts. */
export async function runClusterWorker(options: ClusterWorkerOptions): Promise<void> {
  const { log } = options;
  const timing = clusterTiming();
  const redis = connectRedis(options.url);
  await ensureReachable(redis, options.url);
  const ledger = new RedisLedger(redis, { ttlSeconds: timing.ledgerTtlSeconds });
  const names = new Set<string>();
  for (const def of options.defs) {
    if (names.has(def.name))
      throw new SluiceError('SLUICE_E_USAGE', `two pipeline files are named "${def.name}"`);
    names.add(def.name);
  }
  const versions = new Map(
    options.defs.map((def) => [
      def.name,
      new PipelineVersions(def, redis, ledger, options, new RunEventReporter(redis, def.name, log)),
    ]),
  );
  const workers: Worker[] = [];
  const connections: Redis[] = [redis];
  try {
    for (const def of options.defs) {
      const pipeline = versions.get(def.name)!;
      /** The fences of the jobs this worker runs now, by job id (a job id can be here twice: see below). */
      const fences = new Map<string, Set<JobFence>>();
      const process = async (job: Job<ItemJobData, ItemOutcome>, token?: string): Promise<ItemOutcome> => {
        if (!token || !job.id)
          throw new SluiceError(
            'SLUICE_E_INTERNAL',
            'BullMQ gave the worker a job without an id or lock token',
          );
        const fence = new JobFence(job, token, timing.stallMs);
        const mine = fences.get(job.id) ?? new Set();
        fences.set(job.id, mine.add(fence));
        try {
          const outcome = await processItem(job, fence);
          // Lost after its last fenced step (or while nothing was left to fence): BullMQ refuses
          // to complete a job whose lock is gone anyway; throwing says so in this worker's log.
          fence.signal.throwIfAborted();
          return outcome;
        } catch (err) {
          if (!fence.fenced && !(err instanceof SluiceError && err.code === 'SLUICE_E_FENCED')) throw err;
          log.warn(
            {
              pipeline: def.name,
              item: `${job.data.item.source}:${job.data.item.path}`,
              err: errorMessage(fence.signal.reason ?? err),
            },
            'stopped an item whose job this worker lost; nothing more is written or recorded for it here',
          );
          throw err;
        } finally {
          mine.delete(fence);
          if (mine.size === 0) fences.delete(job.id);
        }
      };
      const processItem = async (
        job: Job<ItemJobData, ItemOutcome>,
        fence: JobFence,
      ): Promise<ItemOutcome> => {
        const runner = await pipeline.runner(job.data.hash, job.data.force === true, job.data.vars);
        const listed = fence.guard(await runner.reviveItem(job.data.item));
        const summary = runner.newSummary();
        const started = performance.now();
        if (job.stalledCounter >= timing.maxStalls) {
          await fence.check();
          // Its workers died maxStalls times while running it (killed, out of memory, a crash
          // in native code): a poison item. It fails like any item, into on_error, once.
          const err = new SluiceError(
            'SLUICE_E_INTERNAL',
            `the worker processing this item died ${job.stalledCounter} times (killed, out of memory or crashed); it is not retried again`,
            { retryable: false },
          );
          log.error(
            { pipeline: def.name, item: `${listed.source}:${listed.item.path}`, stalls: job.stalledCounter },
            'giving up on a poison item',
          );
          await runner.failListed(listed, err, job.stalledCounter, summary);
          return outcomeOf(summary, performance.now() - started);
        }
        const reported = pipeline.reporter.running(job.data.run, job.id!, listed.source, listed.item.path);
        try {
          await runner.processListed(listed, summary, { fence: () => fence.check(), signal: fence.signal });
        } finally {
          reported();
        }
        await ledger.flush();
        const outcome = outcomeOf(summary, performance.now() - started);
        // Finalized by an earlier start of this very job (its worker died before reporting):
        // done in this pass, not "done before".
        if (outcome.outcome === 'skipped' && job.attemptsStarted > 1) outcome.outcome = 'ok';
        return outcome;
      };
      const connection = connectRedis(options.url);
      connections.push(connection);
      const worker = new Worker<ItemJobData, ItemOutcome>(queueName(def.name), process, {
        connection,
        prefix: QUEUE_PREFIX,
        concurrency: options.concurrency ?? def.policy.concurrency,
        lockDuration: timing.stallMs,
        stalledInterval: timing.stallMs,
        // One more than ours, so a poison job always reaches a worker that records it.
        maxStalledCount: timing.maxStalls + 1,
      });
      worker.on('failed', (job, err) => {
        log.error(
          {
            pipeline: def.name,
            item: job ? `${job.data.item.source}:${job.data.item.path}` : undefined,
            err: errorMessage(err),
          },
          'job failed',
        );
      });
      // BullMQ renews locks in the background; a failed renewal means another worker may
      // already hold the job (BullMQ then only logs "could not renew lock"). The item must stop
      // now, not at its next fence: each fence of that job id confirms with its own token (the
      // same job may be running here twice, once before a pause and once taken again after it).
      worker.on('lockRenewalFailed', (jobIds) => {
        for (const id of jobIds)
          for (const fence of fences.get(id) ?? []) void fence.check().catch(() => undefined);
      });
      worker.on('error', (err) => {
        if (LOCK_LOST.test(err.message)) {
          log.warn(
            { pipeline: def.name, err: err.message },
            'this worker lost the lock of a job (paused or cut off past the stall interval); another worker redoes its item',
          );
        } else {
          log.warn({ pipeline: def.name, err: errorMessage(err) }, 'queue connection problem; retrying');
        }
      });
      workers.push(worker);
      log.info(
        {
          pipeline: def.name,
          version: def.hash,
          cluster: redactUrl(options.url),
          concurrency: options.concurrency ?? def.policy.concurrency,
        },
        'worker ready',
      );
    }
    if (!options.signal.aborted)
      await new Promise((resolve) => options.signal.addEventListener('abort', resolve, { once: true }));
    log.info({}, 'stopping: active items finish, no new ones are taken');
  } finally {
    // close() waits for the active jobs; their items finish and are recorded.
    await Promise.allSettled(workers.map((w) => w.close()));
    await Promise.allSettled([...versions.values()].map((v) => v.closeAll()));
    await ledger.close().catch(() => undefined);
    await Promise.allSettled(connections.map((c) => c.quit().catch(() => c.disconnect())));
  }
}
