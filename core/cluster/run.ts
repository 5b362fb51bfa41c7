/**
 * `sluice run --cluster`: one pass of a pipeline over the cluster. The process waits for the
 * pipeline's lister lock, lists, enqueues every item that is not finalized (job id = pipeline
 * + item identity, so duplicate listings collapse, across versions too), releases the lock, then
 * waits until every job of its pass has finished and sums their outcomes into the summary.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { PipelineDefinition } from '../config/load.js';
import { errorMessage, isAbortError } from '../errors.js';
import { RedisLedger } from '../ledger/redis.js';
import type { Logger } from '../observe/logger.js';
import type { ItemIdentity } from '../plugin-api.js';
import { runPipeline } from '../runtime/run-file.js';
import { type ListedItem, PipelineRunner, type RunSummary } from '../runtime/runner.js';
import { sleep } from '../runtime/timing.js';
import { publishPipeline } from './config-store.js';
import {
  clusterTiming,
  connectRedis,
  ensureReachable,
  jobId,
  pipelineKey,
  QUEUE_PREFIX,
  queueName,
} from './connection.js';
import { addOutcome, type ItemJobData, type ItemOutcome } from './jobs.js';
import { ListerLock } from './lock.js';
import { type RunItemEvent, readRunEvents, runEventsKey } from './run-events.js';
import { redactUrl } from './url.js';

const ENQUEUE_BATCH = 200;

/** Completed jobs stay an hour (duplicate listings in that window collapse); failed ones a week. */
export const JOB_RETENTION = {
  removeOnComplete: { age: 3600 },
  removeOnFail: { age: 7 * 24 * 3600 },
  /** BullMQ attempts cover infrastructure errors only; item retries happen inside the job. */
  attempts: 3,
  backoff: { type: 'exponential', delay: 2000 },
} as const;

export interface ClusterPassOptions {
  url: string;
  log: Logger;
  force?: boolean;
  dryRun?: boolean;
  /**
   * Aborting it stops listing and waiting (jobs already queued still run on the workers). For
   * an API run (`run`) it cancels: the run's jobs still waiting in the queue are removed, and
   * the pass waits for its jobs already running until they finish or `abort` aborts.
   */
  signal?: AbortSignal;
  /** Ends a cancelled run's wait for its running jobs (drain timeout, second signal). */
  abort?: AbortSignal;
  /** The control API run this pass is: its jobs carry the id, their workers report to its stream. */
  run?: string;
  /** The run's variables, given to the workers with each job (they load the pipeline with them). */
  vars?: Record<string, string>;
  /** The listing ended: items and bytes it found (those finalized already included). */
  onListed?: (total: { items: number; bytes: number; skipped: number }) => void;
  /** What a worker reported of an item of this run while it ran (started, retried). */
  onRunEvent?: (event: RunItemEvent) => void;
  /**
   * Called as each job of the pass is seen finished (progress, status page, metrics).
   * `reported`: the job is this run's, so its retries reached `onRunEvent` already.
   */
  onOutcome?: (where: { source: string; path: string }, outcome: ItemOutcome, reported: boolean) => void;
}

interface Tracked {
  source: string;
  path: string;
  identity: ItemIdentity;
  /** Enqueued by this pass (not a job of another pass this listing collapsed into). */
  own: boolean;
}

export async function runClusterPass(
  def: PipelineDefinition,
  options: ClusterPassOptions,
): Promise<RunSummary> {
  const redis = connectRedis(options.url);
  await ensureReachable(redis, options.url);
  const ledger = new RedisLedger(redis, { ttlSeconds: clusterTiming().ledgerTtlSeconds });
  try {
    // A dry run writes nothing and queues nothing: it runs here, against the cluster's ledger.
    if (options.dryRun)
      return await runPipeline(def, {
        dryRun: true,
        force: options.force,
        log: options.log,
        ledger,
        signal: options.signal,
      });
    const queue = new Queue<ItemJobData, ItemOutcome>(queueName(def.name), {
      connection: redis,
      prefix: QUEUE_PREFIX,
    });
    try {
      return await new ClusterPass(def, options, redis, ledger, queue).run();
    } finally {
      await queue.close();
    }
  } finally {
    await ledger.close().catch(() => undefined);
    await redis.quit().catch(() => redis.disconnect());
  }
}

class ClusterPass {
  private readonly log: Logger;
  private readonly tracked = new Map<string, Tracked>();
  private readonly summary: RunSummary;
  private readonly runner: PipelineRunner;
  private readonly timing = clusterTiming();
  private readonly stop: AbortSignal;
  private readonly hardStop: AbortSignal;
  /** The run's event stream, and how far it was read. */
  private readonly events: { key: string; last: string } | undefined;

  constructor(
    private readonly def: PipelineDefinition,
    private readonly options: ClusterPassOptions,
    private readonly redis: Redis,
    private readonly ledger: RedisLedger,
    private readonly queue: Queue<ItemJobData, ItemOutcome>,
  ) {
    this.log = options.log.child({ pipeline: def.name });
    this.runner = new PipelineRunner(def, { ledger, log: options.log, force: options.force });
    this.summary = this.runner.newSummary();
    this.stop = options.signal ?? new AbortController().signal;
    this.hardStop = options.abort ?? new AbortController().signal;
    this.events = options.run ? { key: runEventsKey(def.name, options.run), last: '0-0' } : undefined;
  }

  async run(): Promise<RunSummary> {
    const started = performance.now();
    try {
      await publishPipeline(this.redis, this.def);
      const listed = await this.listAsLeader();
      if (listed) {
        this.log.info(
          {
            jobs: this.tracked.size,
            skipped: this.summary.skipped,
            ...(this.options.run ? { run: this.options.run } : {}),
          },
          'listed; waiting for the workers',
        );
      }
      // A run cancelled while listing still has to take back the jobs it enqueued so far.
      if (listed || this.options.run) await this.waitForJobs();
    } finally {
      if (this.events) await this.redis.del(this.events.key).catch(() => undefined);
      await this.runner.close();
      this.summary.durationMs = performance.now() - started;
      this.summary.interrupted = this.stop.aborted;
    }
    return this.summary;
  }

  /** Lists under the lister lock; when the lock is lost midway, waits for it and lists again. */
  private async listAsLeader(): Promise<boolean> {
    const lock = new ListerLock(this.redis, pipelineKey(this.def.name, 'lister'), this.timing.listerTtlMs);
    while (!this.stop.aborted) {
      const acquired = await lock.acquire(this.stop, (holder) =>
        this.log.info(
          { holder, cluster: redactUrl(this.options.url) },
          'another process is listing this pipeline; waiting for the lister lock',
        ),
      );
      if (!acquired) return false;
      // Counts of a listing cut short by a lost lock are discarded; enqueued jobs are kept.
      const counts = { skipped: 0, filtered: 0, bytes: 0 };
      try {
        const complete = await this.listOnce(lock.signal, counts);
        if (complete) {
          this.summary.skipped += counts.skipped;
          this.summary.filtered += counts.filtered;
          this.options.onListed?.({
            items: this.tracked.size + counts.skipped,
            bytes: counts.bytes,
            skipped: counts.skipped,
          });
          return true;
        }
        this.log.warn({}, 'lost the lister lock while listing; listing again once it is ours');
      } finally {
        await lock.release();
      }
    }
    return false;
  }

  private async listOnce(
    lost: AbortSignal,
    counts: { skipped: number; filtered: number; bytes: number },
  ): Promise<boolean> {
    const listingSummary = this.runner.newSummary();
    let batch: ListedItem[] = [];
    for await (const listed of this.runner.list(listingSummary)) {
      if (lost.aborted || this.stop.aborted) return false;
      counts.bytes += listed.item.size ?? 0;
      batch.push(listed);
      if (batch.length >= ENQUEUE_BATCH) {
        counts.skipped += await this.enqueue(batch);
        batch = [];
      }
    }
    if (lost.aborted || this.stop.aborted) return false;
    counts.skipped += await this.enqueue(batch);
    counts.filtered += listingSummary.filtered;
    return true;
  }

  /** Enqueues the batch's unfinished items; returns how many the ledger has finalized. */
  private async enqueue(batch: ListedItem[]): Promise<number> {
    if (batch.length === 0) return 0;
    const entries = batch.map((listed) => {
      const identity = PipelineRunner.identity(listed);
      return { listed, identity, id: jobId(this.def.name, identity) };
    });
    const [records, jobFields] = await Promise.all([
      Promise.all(entries.map((e) => this.ledger.get(this.def.name, e.identity))),
      Promise.all(entries.map((e) => this.redis.hmget(this.queue.toKey(e.id), 'finishedOn', 'timestamp'))),
    ]);
    let skipped = 0;
    const jobs: Array<{ name: string; data: ItemJobData; opts: Record<string, unknown> }> = [];
    for (const [i, e] of entries.entries()) {
      if (this.tracked.has(e.id)) continue;
      if (!this.options.force && records[i]?.state === 'finalized') {
        skipped++;
        continue;
      }
      const [finishedOn, created] = jobFields[i];
      // A finished job of an earlier pass (a failed item, say) would swallow this listing: drop it.
      if (finishedOn) await this.queue.remove(e.id).catch(() => undefined);
      // Listing runs under the lister lock, so nothing else enqueues between this read and addBulk.
      const own = Boolean(finishedOn) || !created;
      jobs.push({
        name: 'item',
        data: {
          hash: this.def.hash,
          item: PipelineRunner.describe(e.listed),
          ...(this.options.force ? { force: true } : {}),
          ...(this.options.run ? { run: this.options.run } : {}),
          ...(this.options.vars && Object.keys(this.options.vars).length > 0
            ? { vars: this.options.vars }
            : {}),
        },
        opts: { jobId: e.id, ...JOB_RETENTION },
      });
      this.tracked.set(e.id, {
        source: e.listed.source,
        path: e.listed.item.path,
        identity: e.identity,
        own,
      });
    }
    if (jobs.length > 0) await this.queue.addBulk(jobs as never);
    return skipped;
  }

  /**
   * Polls the pass's unfinished jobs until none is left. Stopped: a scheduled pass stops
   * waiting; an API run is cancelled — its waiting jobs are withdrawn, its running ones awaited.
   */
  private async waitForJobs(): Promise<void> {
    const pending = new Map(this.tracked);
    let lastReport = Date.now();
    let withdrawn = false;
    while (pending.size > 0 && !this.hardStop.aborted) {
      if (this.stop.aborted && !this.options.run) break;
      try {
        await this.readEvents();
        await this.collect(pending);
        if (this.stop.aborted && !withdrawn) {
          await this.withdraw(pending);
          withdrawn = true;
        }
      } catch (err) {
        if (isAbortError(err)) break;
        this.log.warn({ err: errorMessage(err) }, 'cannot read job states; retrying');
      }
      if (pending.size === 0) break;
      if (Date.now() - lastReport > 30_000) {
        lastReport = Date.now();
        this.log.info(
          { pending: pending.size, done: this.tracked.size - pending.size },
          'waiting for the workers',
        );
      }
      await sleep(this.timing.pollMs, this.stop.aborted ? this.hardStop : this.stop).catch(() => undefined);
    }
    await this.readEvents().catch(() => undefined);
  }

  /**
   * A cancelled run takes back its jobs still waiting in the queue (BullMQ refuses to remove a
   * job a worker holds: those finish, and are waited for). Jobs of other passes this listing
   * collapsed into are theirs: not removed, no longer waited for.
   */
  private async withdraw(pending: Map<string, Tracked>): Promise<void> {
    let removed = 0;
    const ids = [...pending.keys()];
    for (let start = 0; start < ids.length; start += ENQUEUE_BATCH) {
      const chunk = ids.slice(start, start + ENQUEUE_BATCH);
      const codes = await Promise.all(
        chunk.map((id) => (pending.get(id)!.own ? this.queue.remove(id).catch(() => 0) : -1)),
      );
      const gone = chunk.filter((_, i) => codes[i] !== 0);
      // A job that finished between the last poll and its removal: the ledger knows it was done.
      const records = await Promise.all(
        gone.map((id) => this.ledger.get(this.def.name, pending.get(id)!.identity)),
      );
      for (const [i, id] of gone.entries()) {
        if (codes[chunk.indexOf(id)] === 1) removed++;
        if (records[i]?.state === 'finalized' && codes[chunk.indexOf(id)] === 1)
          this.finished(pending.get(id)!, okOutcome());
        pending.delete(id);
      }
    }
    this.log.info(
      { run: this.options.run, removed, running: pending.size },
      'run cancelled: its waiting jobs were removed from the queue; the ones running finish',
    );
  }

  /** Passes on what the workers reported of this run's items since the last read. */
  private async readEvents(): Promise<void> {
    if (!this.events) return;
    const { events, last } = await readRunEvents(this.redis, this.events.key, this.events.last);
    this.events.last = last;
    for (const e of events) this.options.onRunEvent?.(e);
  }

  private finished(where: Tracked, outcome: ItemOutcome): void {
    addOutcome(this.summary, where, outcome);
    this.options.onOutcome?.(where, outcome, this.options.run !== undefined && where.own);
  }

  private async collect(pending: Map<string, Tracked>): Promise<void> {
    const ids = [...pending.keys()];
    for (let start = 0; start < ids.length; start += 1000) {
      const chunk = ids.slice(start, start + 1000);
      const batch = this.redis.pipeline();
      for (const id of chunk) batch.hmget(this.queue.toKey(id), 'finishedOn', 'returnvalue', 'failedReason');
      const replies = (await batch.exec()) ?? [];
      for (const [i, id] of chunk.entries()) {
        const [err, fields] = replies[i] ?? [new Error('no reply'), null];
        if (err) throw err;
        const [finishedOn, returnvalue, failedReason] = fields as Array<string | null>;
        const where = pending.get(id)!;
        if (finishedOn) {
          const outcome: ItemOutcome | null = returnvalue
            ? (JSON.parse(returnvalue) as ItemOutcome | null)
            : null;
          this.finished(where, outcome ?? failedOutcome(failedReason ?? 'the job failed'));
          pending.delete(id);
        } else if (
          !finishedOn &&
          !returnvalue &&
          !failedReason &&
          !(await this.redis.exists(this.queue.toKey(id)))
        ) {
          // Removed already (retention): the ledger knows how it ended.
          const record = await this.ledger.get(this.def.name, where.identity);
          this.finished(
            where,
            record?.state === 'finalized'
              ? okOutcome()
              : failedOutcome(record?.error ?? 'the job left the queue unfinished'),
          );
          pending.delete(id);
        }
      }
    }
  }
}

function okOutcome(): ItemOutcome {
  return { outcome: 'ok', bytesIn: 0, bytesOut: 0, filesWritten: 0, retries: 0, ms: 0 };
}

function failedOutcome(error: string): ItemOutcome {
  return {
    outcome: 'failed',
    bytesIn: 0,
    bytesOut: 0,
    filesWritten: 0,
    retries: 0,
    ms: 0,
    failure: { code: 'SLUICE_E_INTERNAL', error },
  };
}
