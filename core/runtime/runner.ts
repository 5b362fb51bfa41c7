/**
 * The pipeline runtime, as stages around one plugin driver:
 *
 *   listing (listing.ts) → attempts and ledger states (attempt.ts) → the step chain (chain.ts)
 *   → delivery and verification (deliver.ts) → finalisation or failure (finalize.ts)
 *
 * `PipelineRunner` is the face of it: it starts the plugins (driver.ts), runs a pass as a pool
 * of `policy.concurrency` workers pulling from the listing, drains, and lets a cluster worker
 * process items another process listed. A dry run is the same run with counting sinks and a
 * read-only ledger (dry-run.ts).
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import type { PipelineDefinition } from '../config/load.js';
import { isAbortError, SluiceError } from '../errors.js';
import { itemIdentity } from '../item.js';
import type { Ledger } from '../ledger/ledger.js';
import { type Logger, silentLogger } from '../observe/logger.js';
import {
  addFigure,
  mergeSummary,
  newSummary,
  type RunEvents,
  type RunSummary,
} from '../observe/run-summary.js';
import type { ItemIdentity } from '../plugin-api.js';
import { type ProcessOptions, processItem } from './attempt.js';
import { describeItem, type ItemDescription, type ListedItem, reviveItem } from './described.js';
import { PluginDriver } from './driver.js';
import { readOnlyLedger } from './dry-run.js';
import { countFailure, fail } from './finalize.js';
import { checkLedger } from './ledger-check.js';
import { listedKey, listSources } from './listing.js';
import { AUTO_POOL_AFTER_ITEMS, type PoolOptions, poolSize, ThreadPool } from './pool.js';
import {
  type ClaimBook,
  type Job,
  LocalClaims,
  type PassState,
  type ReadingProgress,
  type Stage,
} from './stage.js';
import { RateLimiter, sleep } from './timing.js';

/** How long a pass waits for a fixed number of pool threads to start before it goes on alone. */
const POOL_START_WAIT_MS = 60_000;

/** Resolves when `promise` settles, `ms` have passed or `signal` aborts, whichever is first. */
async function waitAtMost(promise: Promise<unknown>, ms: number, signal: AbortSignal): Promise<void> {
  const timer = new AbortController();
  const stop = () => timer.abort();
  signal.addEventListener('abort', stop, { once: true });
  try {
    await Promise.race([promise.catch(() => undefined), sleep(ms, timer.signal).catch(() => undefined)]);
  } finally {
    timer.abort();
    signal.removeEventListener('abort', stop);
  }
}

export type { PlanEntry, RunEvents, RunSummary } from '../observe/run-summary.js';
export type { ProcessOptions } from './attempt.js';
export type { ItemDescription, ListedItem } from './described.js';

export interface RunOptions {
  /** Run the steps (bytes included) but write nothing, touch no source, record nothing. */
  dryRun?: boolean;
  /** Process items the ledger says are done. */
  force?: boolean;
  log?: Logger;
  ledger: Ledger;
  /** Count the bytes read of each in-flight item (`inFlightItems`: progress, /status). */
  trackProgress?: boolean;
  /**
   * Where a pool thread starts (the CLI's bundled entry): with it, passes run their items on
   * `policy.threads` threads (runtime/pool.ts); without it, on this one.
   */
  pool?: PoolOptions;
  /** The claim book of each pass, by its key (a pool thread's asks the main thread); default: its own. */
  claims?: (passKey: object) => ClaimBook;
}

export class PipelineRunner extends EventEmitter<RunEvents> implements Stage {
  readonly def: PipelineDefinition;
  readonly log: Logger;
  readonly ledger: Ledger;
  readonly driver: PluginDriver;
  readonly dryRun: boolean;
  readonly tempRoot: string;
  readonly reading: Map<Job, ReadingProgress> | undefined;
  private readonly force: boolean;
  private readonly intake = new AbortController();
  private readonly work = new AbortController();
  private readonly passes = new WeakMap<object, PassState>();
  private currentSummary: RunSummary | undefined;
  private inFlight = 0;
  private readonly idleWaiters: Array<() => void> = [];
  private readonly rate: RateLimiter | undefined;
  /** A source watches: one pass lasts as long as the version runs. */
  private readonly watching: boolean;
  private readonly rootLog: Logger;
  private readonly claimBook: ((passKey: object) => ClaimBook) | undefined;
  /** The pass's thread pool, when items run on several threads; see runtime/pool.ts. */
  private pool: ThreadPool | undefined;
  private readonly poolOptions: PoolOptions | undefined;
  /** The plugins are created: an item need not wait a turn for `start()` again. */
  private started = false;

  constructor(def: PipelineDefinition, options: RunOptions) {
    super();
    this.def = def;
    this.dryRun = options.dryRun === true;
    this.force = options.force === true;
    this.ledger = this.dryRun ? readOnlyLedger(options.ledger) : options.ledger;
    this.rootLog = options.log ?? silentLogger;
    this.log = this.rootLog.child({ pipeline: def.name });
    this.claimBook = options.claims;
    this.poolOptions = options.pool;
    this.reading = options.trackProgress ? new Map() : undefined;
    // A dry run writes nothing under the pipeline's folders, not even spool space.
    const tempBase = this.dryRun ? join(tmpdir(), 'sluice-plan') : join(def.stateDir, 'tmp');
    // Pool threads share the pid and may start within the same millisecond: the thread id tells
    // their folders apart.
    const thread = threadId === 0 ? '' : `-t${threadId}`;
    this.tempRoot = join(tempBase, `${process.pid}${thread}-${Date.now().toString(36)}`);
    if (def.policy.ratePerSecond) this.rate = new RateLimiter(def.policy.ratePerSecond);
    this.watching = def.sources.some((s) => s.config.watch === true);
    // Every in-flight stream listens to these: no leak, just many items at once.
    setMaxListeners(0, this.intake.signal, this.work.signal);
    this.driver = new PluginDriver(def, {
      log: this.log,
      dryRun: this.dryRun,
      tempRoot: this.tempRoot,
      signal: this.work.signal,
      // Reports made outside process() (none today); per-item ones go through the attempt.
      report: (figure) => {
        if (this.currentSummary) addFigure(this.currentSummary, figure);
      },
    });
  }

  /** Aborted when in-flight items must stop. */
  get signal(): AbortSignal {
    return this.work.signal;
  }

  /** Items being processed right now. */
  get activeItems(): number {
    return this.inFlight;
  }

  /** With `trackProgress`: each in-flight item and how many of its source bytes were read. */
  get inFlightItems(): Array<{ source: string; path: string; size?: number; bytesRead: number; ms: number }> {
    const now = performance.now();
    const here = [...(this.reading?.values() ?? [])].map((r) => ({
      source: r.source,
      path: r.path,
      size: r.size,
      bytesRead: r.tap?.bytes ?? 0,
      ms: now - r.started,
    }));
    return this.pool ? [...here, ...this.pool.progress] : here;
  }

  /** Creates every plugin instance (memoized: a pass, a cluster worker and /status share it). */
  start(): Promise<void> {
    return this.driver.start().then(() => {
      this.started = true;
    });
  }

  /** Stops listing new items; in-flight items go on. */
  stopIntake(): void {
    this.intake.abort();
  }

  /**
   * Graceful stop: no new items, in-flight ones get `drainTimeoutMs` to finish, then they are
   * aborted (nothing half-written is committed: sinks abort on a destroyed stream).
   */
  async drain(drainTimeoutMs = this.def.policy.drainTimeoutMs): Promise<void> {
    this.stopIntake();
    if (this.inFlight > 0) {
      const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      const timer = new AbortController();
      const timedOut = await Promise.race([
        idle.then(() => false),
        sleep(drainTimeoutMs, timer.signal).then(
          () => true,
          () => false,
        ),
      ]);
      timer.abort(); // a pending timer would keep the process alive after a clean drain
      if (timedOut) this.abortNow();
    }
  }

  /** Aborts in-flight items at once. */
  abortNow(): void {
    this.intake.abort();
    this.work.abort(new SluiceError('SLUICE_E_ABORTED', 'interrupted'));
    this.pool?.abort();
  }

  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = undefined;
    await this.driver.close();
    await this.ledger.flush();
    await rm(this.tempRoot, { recursive: true, force: true });
  }

  /** A zeroed summary for one pass. */
  newSummary(): RunSummary {
    return newSummary(this.def.name, this.dryRun);
  }

  /** One pass: list every source, process what is new, finalize. */
  async runPass(): Promise<RunSummary> {
    await this.start();
    const started = performance.now();
    const summary = this.newSummary();
    this.currentSummary = summary;
    const listing = this.list(summary)[Symbol.asyncIterator]();
    // A listing that fails stops every worker from pulling, but the pass ends only once the
    // items already in flight have finished: returning earlier let the caller close the ledger
    // under them.
    let listingFailed: { error: unknown } | undefined;
    const pooling = this.poolPlan();
    let listedCount = 0;
    const worker = async () => {
      for (;;) {
        if (this.intake.signal.aborted || listingFailed) return;
        let next: IteratorResult<ListedItem>;
        try {
          next = await listing.next();
        } catch (error) {
          if (this.intake.signal.aborted && isAbortError(error)) return;
          listingFailed ??= { error };
          return;
        }
        if (next.done) return;
        if (this.rate) await this.rate.take(this.intake.signal).catch(() => undefined);
        if (pooling && ++listedCount > pooling.after) {
          this.pool ??= new ThreadPool(this.poolHost(), pooling.options, pooling.threads);
          // A number of threads asked for is waited for (not for ever: a thread whose start
          // hangs leaves the items here); `auto` goes on here while they start.
          const started = this.pool.start();
          if (pooling.after === 0) await waitAtMost(started, POOL_START_WAIT_MS, this.intake.signal);
        }
        const pool = this.pool;
        if (
          pool &&
          (pool.available || (await pool.replaced(POOL_START_WAIT_MS))) &&
          (await this.poolTakes(next.value))
        )
          await this.processPooled(next.value, summary);
        else await this.processListed(next.value, summary);
      }
    };
    try {
      const workers = await Promise.allSettled(Array.from({ length: this.def.policy.concurrency }, worker));
      const failed = workers.find((w): w is PromiseRejectedResult => w.status === 'rejected');
      if (listingFailed) throw listingFailed.error;
      if (failed) throw failed.reason;
    } finally {
      // Workers that stopped on intake left the listing suspended: close it so sources release
      // what they hold (a watching source's file watcher would keep the process alive).
      await listing.return?.(undefined).catch(() => undefined);
      this.pool?.endPass(this.passState(summary));
      await this.ledger.flush();
      summary.durationMs = performance.now() - started;
      summary.interrupted = this.intake.signal.aborted;
      this.currentSummary = undefined;
    }
    return summary;
  }

  /**
   * Processes one listed item to the end (steps, sinks, verify, finalize or fail), counting it
   * in `summary`. Distributed workers call this for items another process listed.
   */
  async processListed(
    listed: ListedItem,
    summary: RunSummary,
    options: ProcessOptions = {},
    /** What identifies the pass (its summary by default; a pool thread counts each item apart). */
    passKey: object = summary,
  ): Promise<void> {
    if (!this.started) await this.start();
    this.inFlight++;
    this.currentSummary ??= summary;
    const pass = this.passState(passKey);
    try {
      await processItem(this, this.driver.source(listed.source), listed.item, summary, pass, {
        force: this.force,
        ...options,
      });
    } finally {
      this.release(pass, listed);
      this.inFlight--;
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /**
   * Runs one listed item on a pool thread (counted in that thread's summary of the pass, merged
   * at its end). An item whose thread stopped under it is counted failed in this pass and
   * recorded nothing more: as after a crash, the ledger keeps what it reached and the next pass
   * redoes it (the item that made the thread stop cannot be told from the others it had).
   */
  private async processPooled(listed: ListedItem, summary: RunSummary): Promise<void> {
    this.inFlight++;
    const pass = this.passState(summary);
    try {
      mergeSummary(summary, await (this.pool as ThreadPool).process(listed, pass));
    } catch (err) {
      const error = err instanceof SluiceError ? err : new SluiceError('SLUICE_E_INTERNAL', String(err));
      countFailure(this, this.driver.source(listed.source), listed.item, error, 1, summary);
    } finally {
      this.release(pass, listed);
      this.inFlight--;
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /**
   * Whether this runner's passes use a thread pool, how big, and after how many listed items:
   * not for dry runs (a plan is read in listing order), watching sources (one pass for months,
   * destinations released item by item) or without the CLI's thread entry.
   */
  private poolPlan(): { threads: number; after: number; options: PoolOptions } | undefined {
    if (!this.poolOptions || this.dryRun || this.watching) return undefined;
    const { threads, eager } = poolSize(this.def);
    if (threads <= 1) return undefined;
    return { threads, after: eager ? 0 : AUTO_POOL_AFTER_ITEMS, options: this.poolOptions };
  }

  /**
   * Whether a pool thread may run this item. A thread re-opens it by its path (`openPath`), so
   * not an item that name cannot reach as listed: a name that cannot be addressed, a version
   * pinned by its etag at a source whose `openPath` cannot pin it (`pinsVersions`: S3 and Azure
   * read If-Match on the listed etag; others read whatever is there now), bytes kept elsewhere
   * than its path (`storedAt`: a file left aside).
   * Nor an item the ledger already has done or parked: main answers that at once, where a thread
   * would ask main anyway (a mostly-skipped pass measured 2–3× slower on a pool).
   */
  private async poolTakes(listed: ListedItem): Promise<boolean> {
    const { item } = listed;
    if (item.rejected !== undefined) return false;
    const source = this.driver.source(listed.source).instance;
    if (source.openPath === undefined) return false;
    if (item.etag !== undefined && source.pinsVersions !== true) return false;
    if (item.storedAt !== undefined) return false;
    if (this.force) return true;
    return (await checkLedger(this, itemIdentity(item))).kind === 'process';
  }

  private poolHost() {
    return {
      def: this.def,
      ledger: this.ledger,
      rootLog: this.rootLog,
      force: this.force,
      trackProgress: this.reading !== undefined,
      emit: this.emit.bind(this) as PipelineRunner['emit'],
    };
  }

  /**
   * Fails a listed item without processing it, exactly as a failure after its last retry:
   * counted in `summary`, recorded `failed` in the ledger, sent to `on_error`. For items the
   * cluster gives up on (a job whose workers died while running it again and again).
   */
  async failListed(
    listed: ListedItem,
    err: SluiceError,
    attempts: number,
    summary: RunSummary,
  ): Promise<void> {
    await this.start();
    await fail(this, this.driver.source(listed.source), listed.item, err, attempts, summary);
    await this.ledger.flush();
  }

  /** Rebuilds a listed item from its serialisable description (a queued job). */
  async reviveItem(desc: ItemDescription): Promise<ListedItem> {
    await this.start();
    return reviveItem(this.driver, desc);
  }

  /** The serialisable description of a listed item (what a queued job carries). */
  static describe(listed: ListedItem): ItemDescription {
    return describeItem(listed);
  }

  /** The ledger identity of a listed item (job ids in distributed mode derive from it). */
  static identity(listed: ListedItem): ItemIdentity {
    return itemIdentity(listed.item);
  }

  /** Lists every source with include/exclude, companions and min_age applied, each identity once. */
  async *list(summary: RunSummary = this.newSummary()): AsyncGenerator<ListedItem> {
    await this.start();
    for await (const { source, item } of listSources(
      this,
      summary,
      this.passState(summary),
      this.intake.signal,
    ))
      yield { source: source.name, item };
  }

  /**
   * An item that has ended no longer needs its place in the pass: a listing that repeats it
   * later is answered by the ledger (done, parked), so the pass keeps only what is in flight —
   * a watching source's pass lasts as long as the pipeline runs. Its destinations stay claimed
   * for a pass that ends (one destination, one item per pass); a watching pass releases them,
   * or a file dropped again under its name, or a later file routed there, would collide for good.
   */
  private release(pass: PassState, listed: ListedItem): void {
    pass.listed.delete(listedKey(listed.source, listed.item));
    if (!this.watching) return;
    pass.claims.releaseOwner(`${listed.source}:${listed.item.path}`);
  }

  private passState(key: object): PassState {
    let state = this.passes.get(key);
    if (!state) {
      state = { listed: new Set(), claims: this.claimBook?.(key) ?? new LocalClaims() };
      this.passes.set(key, state);
    }
    return state;
  }
}
