/**
 * The pipeline runtime: lists items, runs each through the steps into every sink with
 * end-to-end backpressure, verifies, then finalizes (ledger, after_success). It is the only
 * caller of plugin code and stamps every error with pipeline, step, plugin and item.
 */
import { createHash } from 'node:crypto';
import { EventEmitter, setMaxListeners } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type { PipelineDefinition, PluginRef } from '../config/load.js';
import {
  attributeStreamErrors,
  type ErrorCode,
  type ErrorContext,
  errorMessage,
  isAbortError,
  isRetryableByDefault,
  SluiceError,
  type StreamOrigin,
  streamErrorOrigin,
  wrapPluginError,
} from '../errors.js';
import { compileIncludeExclude, type PathPredicate } from '../glob.js';
import { itemIdentity } from '../item.js';
import type { Ledger } from '../ledger/ledger.js';
import { type Logger, silentLogger } from '../observe/logger.js';
import type {
  Item,
  ItemIdentity,
  PluginContext,
  SinkCommit,
  SinkInstance,
  SourceInstance,
  StepContext,
  StepInstance,
  StepOutput,
  SummaryFigure,
} from '../plugin-api.js';
import { drainInto, HashTap, hashStream, pipeThrough, STREAM_CHUNK } from '../streams.js';
import { parseDuration } from '../units.js';
import { safeDestination } from './destination.js';
import { backoffDelay, RateLimiter, sleep } from './timing.js';

export interface RunOptions {
  /** Run the steps (bytes included) but write nothing, touch no source, record nothing. */
  dryRun?: boolean;
  /** Process items the ledger says are done. */
  force?: boolean;
  log?: Logger;
  ledger: Ledger;
  /** Count the bytes read of each in-flight item (`inFlightItems`: progress, /status). */
  trackProgress?: boolean;
}

export interface PlanEntry {
  source: string;
  path: string;
  /** Sink-relative destinations; empty when the item was filtered out. */
  destinations: string[];
  action: 'write' | 'skip-done' | 'finalize-only' | 'filtered' | 'failed';
  bytes?: number;
  error?: string;
}

export interface RunSummary {
  pipeline: string;
  /** Listed items finalized in this pass. */
  ok: number;
  failed: number;
  /** Listed items skipped because the ledger has them finalized. */
  skipped: number;
  /** Items dropped by a filter step or not yet old enough (`min_age`). */
  filtered: number;
  /** Files committed to sinks (an archive's entries count one each). */
  filesWritten: number;
  bytesIn: number;
  bytesOut: number;
  compression: { bytesIn: number; bytesOut: number };
  retries: number;
  durationMs: number;
  interrupted: boolean;
  dryRun: boolean;
  failures: Array<{ source: string; path: string; code: string; error: string }>;
  slowest: Array<{ path: string; ms: number }>;
  plan: PlanEntry[];
}

/** How a caller (a cluster worker) keeps an item from acting once it no longer owns it. */
export interface ProcessOptions {
  /**
   * Awaited right before every commit to a sink and before every source tidy-up; throws a
   * SluiceError `SLUICE_E_FENCED` when the caller has lost the item (a cluster worker whose job
   * lock expired). The runtime then stops the item without any further side effect and records
   * nothing for it.
   */
  fence?: () => Promise<void>;
}

/** A listed item and the name of the source that listed it. */
export interface ListedItem {
  source: string;
  item: Item;
}

/** What a queued job carries to re-open an item elsewhere: metadata, never bytes. */
export interface ItemDescription {
  source: string;
  path: string;
  size?: number;
  /** epoch ms */
  mtime?: number;
  etag?: string;
  checksums?: Record<string, string>;
  meta?: Record<string, unknown>;
  origin?: Item['origin'];
}

export interface RunEvents {
  'item:start': [{ source: string; path: string; size?: number }];
  'item:done': [{ source: string; path: string; ms: number; bytes: number; bytesIn: number }];
  'item:skipped': [{ source: string; path: string }];
  'item:failed': [{ source: string; path: string; error: string; code: string }];
  'item:retry': [{ source: string; path: string; attempt: number; delayMs: number; error: string }];
}

interface SourceRuntime {
  ref: PluginRef;
  name: string;
  instance: SourceInstance;
  accepts: PathPredicate;
  minAgeMs: number;
  afterSuccess: 'keep' | 'delete' | { move_to: string };
}

interface SinkRuntime {
  ref: PluginRef;
  instance: SinkInstance;
  verify: 'size' | 'sha256' | 'none';
  ifExists: 'overwrite' | 'skip' | 'fail' | 'rename';
}

/**
 * What one pass knows across its items: the identities listed (a listing that repeats an item
 * — offset pagination while the server inserts — processes it once) and which item claimed
 * each destination (two items on one destination: the second fails, keeping its source).
 */
interface PassState {
  listed: Set<string>;
  claimed: Map<string, string>;
}

/** Prefix of the ledger entries that record names `if_exists: rename` reserved before a commit. */
const RESERVED = 'reserved:';

interface StepRuntime {
  ref: PluginRef;
  instance: StepInstance;
  ctx: StepContext;
}

/** Per root item, per attempt. */
interface Job {
  source: SourceRuntime;
  root: Item;
  signal: AbortSignal;
  leaves: Array<{ destination: string; locations: string[]; bytes: number }>;
  filtered: number;
  bytesIn: number;
  /** The open() the step chain started from (the listed item's, or a counting wrapper). */
  chainOpen?: Item['open'];
  /** `sink index \u0000 destination` committed in an earlier attempt of this run: not rewritten. */
  committed: Set<string>;
  /** What this item's attempts wrote (never a skip): removed again if the item fails for good. */
  written: Array<{ sink: SinkRuntime; destination: string }>;
  /** Destinations claimed by this attempt (a second leaf on one of them is a collision). */
  claims: Set<string>;
  pass: PassState;
  /** True when finalizing changes the source (delete / move_to): a skip must then hold the same bytes. */
  touchesSource: boolean;
  /** Ledger entries of the names reserved for rename, this run's and a crashed run's. */
  reserved: Set<string>;
  /** Per sink index: names a crashed earlier run reserved (one of them may hold this item's copy). */
  reservedEarlier: Map<number, string[]>;
  fence: () => Promise<void>;
  /**
   * Figures steps reported during this attempt. Added to the summary only when the item
   * succeeds: a retried attempt re-runs its steps, and counting each attempt inflated the
   * compression ratio and space saved.
   */
  figures: SummaryFigure[];
  /**
   * Source paths of the companions steps declared for this item (`x.csv.sha256`, `x.gpg.sig`):
   * the source's after_success follows the item's own to them.
   */
  companions: Set<string>;
}

const MAX_SLOWEST = 5;
/** Largest file read whole into memory on the small-file fast path. */
const WHOLE_FILE_LIMIT = 1024 * 1024;

export class PipelineRunner extends EventEmitter<RunEvents> {
  readonly def: PipelineDefinition;
  private readonly log: Logger;
  private readonly ledger: Ledger;
  private readonly options: RunOptions;
  private sources: SourceRuntime[] = [];
  private steps: StepRuntime[] = [];
  private sinks: SinkRuntime[] = [];
  private deadLetter: SinkRuntime | undefined;
  private companionChecks: Array<(path: string) => boolean> = [];
  private readonly intake = new AbortController();
  private readonly work = new AbortController();
  private readonly tempRoot: string;
  private starting: Promise<void> | undefined;
  private inFlight = 0;
  private readonly idleWaiters: Array<() => void> = [];
  private rate: RateLimiter | undefined;

  constructor(def: PipelineDefinition, options: RunOptions) {
    super();
    this.def = def;
    this.options = options;
    this.ledger = options.dryRun ? readOnlyLedger(options.ledger) : options.ledger;
    this.log = (options.log ?? silentLogger).child({ pipeline: def.name });
    // A dry run writes nothing under the pipeline's folders, not even spool space.
    const tempBase = options.dryRun ? join(tmpdir(), 'sluice-plan') : join(def.stateDir, 'tmp');
    this.tempRoot = join(tempBase, `${process.pid}-${Date.now().toString(36)}`);
    if (def.policy.ratePerSecond) this.rate = new RateLimiter(def.policy.ratePerSecond);
    // Every in-flight stream listens to these: no leak, just many items at once.
    setMaxListeners(0, this.intake.signal, this.work.signal);
  }

  /** Items being processed right now. */
  get activeItems(): number {
    return this.inFlight;
  }

  /** With `trackProgress`: each in-flight item and how many of its source bytes were read. */
  get inFlightItems(): Array<{ source: string; path: string; size?: number; bytesRead: number; ms: number }> {
    const now = performance.now();
    return [...this.reading.values()].map((r) => ({ source: r.source, path: r.path, size: r.size, bytesRead: r.tap?.bytes ?? 0, ms: now - r.started }));
  }

  private readonly reading = new Map<Job, { source: string; path: string; size?: number; tap?: HashTap; started: number }>();

  private pluginContext(ref: PluginRef): PluginContext {
    return {
      pipeline: this.def.name,
      stepId: ref.stepId,
      log: this.log.child({ step: ref.stepId }),
      tempDir: join(this.tempRoot, ref.stepId.replace(/[^A-Za-z0-9_.-]/g, '_')),
      stateDir: this.def.stateDir,
      baseDir: this.def.baseDir,
      signal: this.work.signal,
    };
  }

  private async create<T>(ref: PluginRef): Promise<T> {
    const ctx = this.pluginContext(ref);
    await mkdir(ctx.tempDir, { recursive: true });
    try {
      return (await ref.plugin.create(ref.config as never, ctx)) as T;
    } catch (err) {
      throw wrapPluginError(err, { pipeline: this.def.name, step: ref.stepId, plugin: ref.name }, 'SLUICE_E_CONFIG');
    }
  }

  /** Creates every plugin instance. */
  start(): Promise<void> {
    // Memoized: concurrent callers (a pass, a distributed worker, /status) share one start.
    this.starting ??= this.createInstances();
    return this.starting;
  }

  private async createInstances(): Promise<void> {
    for (const ref of this.def.sources) {
      const instance = await this.create<SourceInstance>(ref);
      const cfg = ref.config as { include?: string[]; exclude?: string[]; min_age?: string; after_success?: unknown };
      const afterSuccess = normalizeAfterSuccess(cfg.after_success);
      if (afterSuccess === 'delete' && !instance.remove) throw this.unsupported(ref, 'after_success: delete');
      if (typeof afterSuccess === 'object' && !instance.move) throw this.unsupported(ref, 'after_success: move_to');
      this.sources.push({
        ref,
        name: ref.sourceName ?? ref.name,
        instance,
        accepts: compileIncludeExclude(cfg.include, cfg.exclude),
        minAgeMs: cfg.min_age !== undefined ? parseDuration(cfg.min_age) : 0,
        afterSuccess,
      });
    }
    for (const ref of this.def.steps) {
      const instance = await this.create<StepInstance>(ref);
      this.steps.push({ ref, instance, ctx: this.stepContext(ref) });
      if (instance.isCompanion) this.companionChecks.push(instance.isCompanion.bind(instance));
    }
    for (const ref of this.def.sinks) this.sinks.push(await this.sinkRuntime(ref));
    if (this.def.onError && !this.options.dryRun) this.deadLetter = await this.sinkRuntime(this.def.onError);
  }

  private unsupported(ref: PluginRef, what: string): SluiceError {
    return new SluiceError('SLUICE_E_CONFIG', `the ${ref.name} source does not support ${what}`, {
      context: { pipeline: this.def.name, step: ref.stepId, plugin: ref.name },
    });
  }

  /** A dry run writes through a sink that only counts: no sink plugin is created, nothing is made. */
  private async sinkRuntime(ref: PluginRef): Promise<SinkRuntime> {
    const cfg = ref.config as { verify?: SinkRuntime['verify']; if_exists?: SinkRuntime['ifExists'] };
    const instance = this.options.dryRun ? countingSink() : await this.create<SinkInstance>(ref);
    return { ref, instance, verify: cfg.verify ?? 'size', ifExists: cfg.if_exists ?? 'overwrite' };
  }

  private stepContext(ref: PluginRef): StepContext {
    const base = this.pluginContext(ref);
    return {
      ...base,
      openSibling: async (item: Item, name: string, signal?: AbortSignal) => {
        const source = this.sources.find((s) => s.name === item.source);
        if (!source?.instance.openPath) return null;
        return source.instance.openPath(siblingPath(item, name), signal);
      },
      // Reports made outside process() (none today); per-item ones go through the job.
      report: (figure: SummaryFigure) => {
        if (this.currentSummary) this.addFigure(this.currentSummary, figure);
      },
    };
  }

  private addFigure(summary: RunSummary, figure: SummaryFigure): void {
    if (figure.kind === 'compression') {
      summary.compression.bytesIn += figure.bytesIn;
      summary.compression.bytesOut += figure.bytesOut;
    }
  }

  private currentSummary: RunSummary | undefined;

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
  }

  async close(): Promise<void> {
    const all = [
      ...this.sources.map((s) => s.instance),
      ...this.steps.map((s) => s.instance),
      ...this.sinks.map((s) => s.instance),
      ...(this.deadLetter ? [this.deadLetter.instance] : []),
    ];
    await Promise.allSettled(all.map((i) => i.close?.()));
    await this.ledger.flush();
    await rm(this.tempRoot, { recursive: true, force: true });
  }

  /** A zeroed summary for one pass. */
  newSummary(): RunSummary {
    return {
      pipeline: this.def.name,
      ok: 0,
      failed: 0,
      skipped: 0,
      filtered: 0,
      filesWritten: 0,
      bytesIn: 0,
      bytesOut: 0,
      compression: { bytesIn: 0, bytesOut: 0 },
      retries: 0,
      durationMs: 0,
      interrupted: false,
      dryRun: this.options.dryRun === true,
      failures: [],
      slowest: [],
      plan: [],
    };
  }

  /** One pass: list every source, process what is new, finalize. */
  async runPass(): Promise<RunSummary> {
    await this.start();
    const started = performance.now();
    const summary = this.newSummary();
    this.currentSummary = summary;
    const listing = this.list(summary)[Symbol.asyncIterator]();
    const worker = async () => {
      for (;;) {
        if (this.intake.signal.aborted) return;
        let next: IteratorResult<ListedItem>;
        try {
          next = await listing.next();
        } catch (err) {
          if (this.intake.signal.aborted && isAbortError(err)) return;
          throw err;
        }
        if (next.done) return;
        if (this.rate) await this.rate.take(this.intake.signal).catch(() => undefined);
        await this.processListed(next.value, summary);
      }
    };
    try {
      await Promise.all(Array.from({ length: this.def.policy.concurrency }, worker));
    } finally {
      // Workers that stopped on intake left the listing suspended: close it so sources release
      // what they hold (a watching source's file watcher would keep the process alive).
      await listing.return?.(undefined).catch(() => undefined);
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
  async processListed(listed: ListedItem, summary: RunSummary, options: ProcessOptions = {}): Promise<void> {
    await this.start();
    this.inFlight++;
    this.currentSummary ??= summary;
    try {
      await this.processRoot(this.sourceRuntime(listed.source), listed.item, summary, options);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /**
   * Fails a listed item without processing it, exactly as a failure after its last retry:
   * counted in `summary`, recorded `failed` in the ledger, sent to `on_error`. For items the
   * cluster gives up on (a job whose workers died while running it again and again).
   */
  async failListed(listed: ListedItem, err: SluiceError, attempts: number, summary: RunSummary): Promise<void> {
    await this.start();
    const source = this.sourceRuntime(listed.source);
    await this.fail(source, listed.item, err, attempts, summary);
    await this.ledger.flush();
  }

  private sourceRuntime(name: string): SourceRuntime {
    const source = this.sources.find((s) => s.name === name);
    if (!source) throw new SluiceError('SLUICE_E_CONFIG', `pipeline ${this.def.name} has no source named "${name}"`);
    return source;
  }

  /**
   * Rebuilds a listed item from its serialisable description (a queued job): its bytes are
   * re-opened from the source by path, so a retry or another worker reads them afresh.
   */
  async reviveItem(desc: ItemDescription): Promise<ListedItem> {
    await this.start();
    const source = this.sourceRuntime(desc.source);
    if (!source.instance.openPath) {
      throw new SluiceError('SLUICE_E_CONFIG', `the ${source.ref.name} source cannot open files by path, so it cannot be distributed`);
    }
    const openPath = source.instance.openPath.bind(source.instance);
    const item: Item = {
      source: desc.source,
      path: desc.path,
      size: desc.size,
      mtime: desc.mtime === undefined ? undefined : new Date(desc.mtime),
      etag: desc.etag,
      checksums: desc.checksums ?? {},
      meta: desc.meta ?? {},
      origin: desc.origin,
      open: async (signal?: AbortSignal) => {
        const stream = await openPath(desc.path, signal);
        if (!stream) {
          throw new SluiceError('SLUICE_E_SOURCE', `${desc.source}:${desc.path} no longer exists at the source`, { retryable: false });
        }
        return stream;
      },
    };
    return { source: desc.source, item };
  }

  /** The serialisable description of a listed item (what a queued job carries). */
  static describe(listed: ListedItem): ItemDescription {
    const { item } = listed;
    return {
      source: listed.source,
      path: item.path,
      size: item.size,
      mtime: item.mtime?.getTime(),
      etag: item.etag,
      checksums: Object.keys(item.checksums).length ? { ...item.checksums } : undefined,
      meta: Object.keys(item.meta).length ? { ...item.meta } : undefined,
      origin: item.origin,
    };
  }

  /** The ledger identity of a listed item (job ids in distributed mode derive from it). */
  static identity(listed: ListedItem) {
    return itemIdentity(listed.item);
  }

  /** Lists every source with include/exclude, companions and min_age applied. */
  async *list(summary: RunSummary = this.newSummary()): AsyncGenerator<ListedItem> {
    await this.start();
    for await (const { source, item } of this.listAll(summary)) yield { source: source.name, item };
  }

  private async *listAll(summary: RunSummary): AsyncGenerator<{ source: SourceRuntime; item: Item }> {
    const { listed } = this.passState(summary);
    for (const source of this.sources) {
      let listing: AsyncIterable<Item>;
      try {
        listing = source.instance.list(this.intake.signal);
        for await (const item of listing) {
          if (this.intake.signal.aborted) return;
          if (!source.accepts(item.path)) continue;
          if (this.companionChecks.some((isCompanion) => isCompanion(item.path))) continue;
          // Now, not the listing's start: a watching source lists for as long as it runs.
          if (source.minAgeMs > 0 && item.mtime && Date.now() - item.mtime.getTime() < source.minAgeMs) {
            summary.filtered++;
            continue;
          }
          // One identity, once per pass, whatever the listing repeats.
          const key = `${source.name}\u0000${item.path}`;
          if (listed.has(key)) {
            this.log.debug({ item: `${source.name}:${item.path}` }, 'listed again in this pass; processed once');
            continue;
          }
          listed.add(key);
          yield { source, item };
        }
      } catch (err) {
        if (this.intake.signal.aborted && isAbortError(err)) return;
        throw wrapPluginError(err, { pipeline: this.def.name, step: source.ref.stepId, plugin: source.ref.name }, 'SLUICE_E_SOURCE');
      }
    }
  }

  private async processRoot(source: SourceRuntime, item: Item, summary: RunSummary, options: ProcessOptions): Promise<void> {
    if (item.rejected !== undefined) {
      await this.reject(source, item, summary);
      return;
    }
    const id = itemIdentity(item);
    const label = `${source.name}:${item.path}`;
    let finalizeOnly = false;
    /** What an earlier attempt committed, when only its after_success failed. */
    let committedEarlier: Pick<Job, 'leaves' | 'bytesIn' | 'figures' | 'companions'> | undefined;
    let reservedEarlier: string[] = [];
    if (!this.options.force) {
      const record = await this.ledger.get(this.def.name, id);
      if (record?.state === 'finalized') {
        summary.skipped++;
        this.emit('item:skipped', { source: source.name, path: item.path });
        if (this.options.dryRun) summary.plan.push({ source: source.name, path: item.path, destinations: record.destinations, action: 'skip-done' });
        return;
      }
      finalizeOnly = record?.state === 'committed';
      if (record?.state === 'seen') reservedEarlier = record.destinations.filter((d) => d.startsWith(RESERVED));
    }
    const started = performance.now();
    this.emit('item:start', { source: source.name, path: item.path, size: item.size });
    const { maxAttempts } = this.def.policy.retry;
    const committed = new Set<string>();
    const written: Job['written'] = [];
    const reserved = new Set(reservedEarlier);
    const pass = this.passState(summary);
    for (let attempt = 1; ; attempt++) {
      const job: Job = {
        source,
        root: item,
        signal: this.work.signal,
        leaves: [],
        filtered: 0,
        bytesIn: 0,
        committed,
        written,
        claims: new Set(),
        pass,
        touchesSource: source.afterSuccess !== 'keep' && !this.options.dryRun,
        reserved,
        reservedEarlier: parseReserved(reservedEarlier),
        fence: options.fence ?? (async () => undefined),
        figures: [],
        companions: new Set(),
      };
      try {
        if (committedEarlier) {
          job.leaves = committedEarlier.leaves;
          job.bytesIn = committedEarlier.bytesIn;
          job.figures = committedEarlier.figures;
          job.companions = committedEarlier.companions;
        } else if (!finalizeOnly) {
          this.ledger.record(this.def.name, id, { state: 'seen', attempts: attempt, destinations: [...reserved] });
          const chainRoot = this.countedRoot(item, job);
          job.chainOpen = chainRoot.open;
          await this.runChain(chainRoot, 0, job);
          if (job.leaves.length === 0 && job.filtered > 0) {
            summary.filtered++;
            if (this.options.dryRun) summary.plan.push({ source: source.name, path: item.path, destinations: [], action: 'filtered' });
            return;
          }
        }
        if (this.work.signal.aborted) throw this.work.signal.reason;
        if (this.options.dryRun) {
          const bytes = job.leaves.reduce((n, l) => n + l.bytes, 0);
          const destinations = job.leaves.map((l) => l.destination);
          summary.plan.push({ source: source.name, path: item.path, destinations, action: finalizeOnly ? 'finalize-only' : 'write', ...(finalizeOnly ? {} : { bytes }) });
        } else {
          if (!finalizeOnly) {
            const destinations = job.leaves.flatMap((l) => l.locations);
            this.ledger.record(this.def.name, id, { state: 'committed', attempts: attempt, destinations });
            // Every copy is committed: if after_success fails now, a retry redoes only that step.
            committedEarlier = { leaves: job.leaves, bytesIn: job.bytesIn, figures: job.figures, companions: job.companions };
          }
          finalizeOnly = true;
          await this.finalize(source, item, id, attempt, job);
        }
        const bytesOut = job.leaves.reduce((n, l) => n + l.bytes, 0);
        summary.ok++;
        summary.filesWritten += job.leaves.length;
        summary.bytesOut += bytesOut;
        summary.bytesIn += this.hasByteSteps() ? job.bytesIn : bytesOut;
        for (const figure of job.figures) this.addFigure(summary, figure);
        const ms = performance.now() - started;
        this.noteSlowest(summary, item.path, ms);
        this.emit('item:done', { source: source.name, path: item.path, ms, bytes: bytesOut, bytesIn: this.hasByteSteps() ? job.bytesIn : bytesOut });
        return;
      } catch (raw) {
        const err = this.stamp(raw, item, source);
        if (err.code === 'SLUICE_E_FENCED') {
          // Another worker owns the item now: anything more from here (a record, a dead
          // letter, removing what was written) could undo its work.
          this.log.warn({ item: label, err: errorMessage(err) }, 'lost the item to another worker; stopped without side effects');
          throw err;
        }
        if (this.work.signal.aborted) {
          this.log.warn({ item: label }, 'interrupted; the item will be redone next run');
          return;
        }
        const retryable = this.isRetryable(err);
        if (retryable && attempt < maxAttempts) {
          const delay = Math.max(backoffDelay(attempt, this.def.policy.retry), err.retryAfterMs ?? 0);
          summary.retries++;
          this.emit('item:retry', { source: source.name, path: item.path, attempt, delayMs: delay, error: errorMessage(err) });
          this.log.warn({ item: label, attempt, delayMs: Math.round(delay), err: errorMessage(err) }, 'retrying');
          await sleep(delay, this.work.signal).catch(() => undefined);
          continue;
        }
        if (finalizeOnly) {
          // Delivered and recorded `committed`; only the tidy-up failed. The record stays
          // `committed` (no dead letter: the bytes are where they belong), so the next pass
          // retries the tidy-up alone instead of delivering the file again.
          this.countFailure(source, item, err, attempt, summary, 'delivered, but the source could not be tidied up; the next pass retries the tidy-up alone');
          return;
        }
        await this.rollback(job, label);
        await this.fail(source, item, err, attempt, summary);
        return;
      } finally {
        this.reading.delete(job);
      }
    }
  }

  /**
   * The source's after_success on the delivered version, then its companions. A source that
   * finds another version at the path (SLUICE_E_CHANGED) leaves it for the next pass: the
   * delivered version is done.
   */
  private async finalize(source: SourceRuntime, item: Item, id: ItemIdentity, attempt: number, job: Job): Promise<void> {
    const durable = this.ledger.flushBeforeSourceChange === true && source.afterSuccess !== 'keep';
    if (durable) await this.ledger.flush();
    if (source.afterSuccess !== 'keep') await job.fence();
    try {
      await this.afterSuccess(source, item);
    } catch (err) {
      if (!(err instanceof SluiceError && err.code === 'SLUICE_E_CHANGED')) throw err;
      this.log.warn({ item: `${source.name}:${item.path}`, err: errorMessage(err) }, 'the source changed after it was listed; the new version is left for the next pass');
    }
    this.ledger.record(this.def.name, id, { state: 'finalized', attempts: attempt });
    // The source file is gone (or moved): nothing will list it again to correct its record,
    // so `finalized` is written now rather than with the next batch.
    if (durable) await this.ledger.flush();
    await this.tidyCompanions(source, item, job);
  }

  /** A listed entry the source could not represent safely: reported, never opened or tidied. */
  private async reject(source: SourceRuntime, item: Item, summary: RunSummary): Promise<void> {
    const err = new SluiceError('SLUICE_E_NAME', item.rejected ?? 'rejected by the source', {
      retryable: false,
      context: { pipeline: this.def.name, step: source.ref.stepId, plugin: source.ref.name, item: `${source.name}:${item.path}` },
    });
    this.emit('item:start', { source: source.name, path: item.path, size: item.size });
    await this.fail(source, item, err, 1, summary, { deadLetter: false });
  }

  /**
   * Removes what this item's attempts committed, when the item fails for good: an archive whose
   * later entry is corrupt leaves none of its entries (all or nothing), and a source that is
   * kept is not delivered in part.
   */
  private async rollback(job: Job, label: string): Promise<void> {
    for (const { sink, destination } of job.written.splice(0)) {
      try {
        await sink.instance.remove?.(destination);
      } catch (err) {
        this.log.warn({ item: label, destination, err: errorMessage(err) }, 'could not remove a copy of a failed item');
      }
    }
    for (const key of job.claims) job.pass.claimed.delete(key);
  }

  private passState(summary: RunSummary): PassState {
    let state = this.passes.get(summary);
    if (!state) {
      state = { listed: new Set(), claimed: new Map() };
      this.passes.set(summary, state);
    }
    return state;
  }

  private readonly passes = new WeakMap<RunSummary, PassState>();

  private hasByteSteps(): boolean {
    return this.steps.some((s) => s.ref.plugin.kind !== 'step');
  }

  /**
   * The listed item as the step chain starts from it: its read errors named after the source,
   * and the bytes read from the source counted when steps change bytes (else in = out).
   */
  private countedRoot(listed: Item, job: Job): Item {
    const { source } = job;
    const origin: StreamOrigin = {
      context: { pipeline: this.def.name, step: source.ref.stepId, plugin: source.ref.name, item: `${source.name}:${listed.path}` },
      code: 'SLUICE_E_SOURCE',
    };
    const item = { ...listed, open: attributedOpen(listed.open, origin) };
    const progress = this.options.trackProgress ? { source: source.name, path: item.path, size: item.size, started: performance.now() } : undefined;
    if (progress) this.reading.set(job, progress);
    const expected = listed.size === undefined ? undefined : { bytes: listed.size, mismatch: (read: number) => listedSizeMismatch(listed.size!, read, origin) };
    if (!this.hasByteSteps() && !progress && !expected) return item;
    return {
      ...item,
      open: async (signal?: AbortSignal) => {
        const tap = new HashTap(null, expected);
        if (progress) this.reading.set(job, { ...progress, tap });
        tap.on('end', () => {
          job.bytesIn += tap.bytes;
        });
        return pipeThrough(await item.open(signal), tap);
      },
    };
  }

  private noteSlowest(summary: RunSummary, path: string, ms: number): void {
    const list = summary.slowest;
    if (list.length < MAX_SLOWEST || ms > list[list.length - 1].ms) {
      list.push({ path, ms: Math.round(ms) });
      list.sort((a, b) => b.ms - a.ms);
      list.length = Math.min(list.length, MAX_SLOWEST);
    }
  }

  private stamp(raw: unknown, item: Item, source: SourceRuntime): SluiceError {
    if (raw instanceof SluiceError && raw.context.item) return raw;
    return located(raw, { pipeline: this.def.name, item: `${source.name}:${item.path}` });
  }

  private isRetryable(err: SluiceError): boolean {
    if (err.retryable !== undefined) return err.retryable;
    const cause = err.cause;
    const plugins = [
      ...this.sources.map((s) => s.instance),
      ...this.steps.map((s) => s.instance),
      ...this.sinks.map((s) => s.instance),
    ];
    for (const p of plugins) {
      const verdict = p.isRetryable?.(cause);
      if (verdict !== undefined) return verdict;
    }
    return isRetryableByDefault(err);
  }

  private async runChain(item: Item, index: number, job: Job): Promise<void> {
    if (job.signal.aborted) throw job.signal.reason;
    if (index === this.steps.length) {
      await this.commitLeaf(item, job);
      return;
    }
    const step = this.steps[index];
    const context = { pipeline: this.def.name, step: step.ref.stepId, plugin: step.ref.name, item: `${item.source}:${item.path}` };
    const ctx: StepContext = {
      ...step.ctx,
      signal: job.signal,
      report: (figure) => job.figures.push(figure),
      reportCompanion: (of, name) => {
        if (of.source === job.source.name) job.companions.add(siblingPath(of, name));
      },
    };
    let out: StepOutput;
    try {
      out = await step.instance.process(item, ctx);
    } catch (err) {
      throw located(err, context);
    }
    if (out === null) {
      job.filtered++;
      return;
    }
    // Bytes this step made: their stream errors are its own, even when a sink reports them.
    const origin: StreamOrigin = { context, code: 'SLUICE_E_PLUGIN' };
    const attributed = (next: Item): Item => (next.open === item.open ? next : { ...next, open: attributedOpen(next.open, origin) });
    if (Array.isArray(out)) {
      for (const next of out) await this.runChain(attributed(next), index + 1, job);
    } else if (isAsyncIterable(out)) {
      try {
        for await (const next of out) await this.runChain(attributed(next), index + 1, job);
      } catch (err) {
        throw located(err, context);
      }
    } else {
      await this.runChain(attributed(out), index + 1, job);
    }
  }

  /** Writes one final item to every sink, verifies, and records where it landed. */
  private async commitLeaf(item: Item, job: Job): Promise<void> {
    const context = { item: `${item.source}:${item.path}` };
    const destination = safeDestination(item.destination ?? item.path, context);
    this.claim(destination, job, context);
    const pending = this.sinks.map((s, i) => ({ sink: s, index: i, key: `${i}\u0000${destination}` })).filter((p) => !job.committed.has(p.key));
    const locations: string[] = [];
    let bytes = 0;
    const settle = (p: (typeof pending)[number], commit: SinkCommit) => {
      job.committed.add(p.key);
      if (!commit.skipped) job.written.push({ sink: p.sink, destination: commit.destination ?? destination });
      locations.push(commit.location);
    };

    const copied: typeof pending = [];
    // A server-side copy takes the bytes from where the source keeps them, so only for an
    // item whose bytes no step touched: its open() is still the one the chain started from
    // (a plugin that forgot to clear `origin` must not have its transform skipped).
    if (item.origin && item.open === job.chainOpen) {
      for (const p of pending) {
        if (!p.sink.instance.copy) continue;
        await job.fence();
        const copy = await this.guardSink(p.sink, context, () => p.sink.instance.copy!(item, destination, job.signal));
        if (copy) {
          if (!copy.skipped && copy.size !== undefined && item.size !== undefined && copy.size !== item.size) {
            // The copy took the bytes the source holds now: a file that changed since it was listed.
            await p.sink.instance.remove?.(copy.destination ?? destination).catch(() => undefined);
            throw listedSizeMismatch(item.size, copy.size, this.sourceOrigin(job));
          }
          const sent = { bytes: item.size ?? -1, sha256: item.checksums.sha256 };
          const commit = await this.verify(p.sink, p.index, destination, copy, sent, job, context, item);
          settle(p, commit);
          bytes = item.size ?? commit.size ?? 0;
          if (copied.length === 0) job.bytesIn += bytes; // never read through the counting tap
          copied.push(p);
        }
      }
    }
    const toWrite = pending.filter((p) => !copied.includes(p));
    if (toWrite.length > 0 && this.canWriteWhole(item, toWrite, job)) {
      // The listed item, not `item`: a rename step changes the path but not the bytes, and a
      // source reads by the path it listed.
      const data = await job.source.instance.readAll!(job.root, job.signal);
      if (data.length !== item.size) throw listedSizeMismatch(item.size!, data.length, this.sourceOrigin(job));
      const sha256 = this.wantsSha256(toWrite, job) ? createHash('sha256').update(data).digest('hex') : undefined;
      const sent = { bytes: data.length, sha256 };
      for (const p of toWrite) {
        await job.fence();
        const commit = await this.guardSink(p.sink, context, () =>
          p.sink.instance.writeBuffer!({ item, destination, data, size: data.length, sha256: sent.sha256, signal: job.signal, reserve: this.reserver(p.index, job) }),
        );
        settle(p, await this.verify(p.sink, p.index, destination, commit, sent, job, context, item));
      }
      bytes = data.length;
    } else if (toWrite.length > 0 || pending.length === 0) {
      const result = await this.streamToSinks(item, destination, toWrite, job, context);
      for (const [i, p] of toWrite.entries()) settle(p, result.commits[i]);
      bytes = result.bytes;
    }
    job.leaves.push({ destination, locations, bytes });
  }

  /**
   * One destination holds one item per pass: a second item (or a second entry of one archive)
   * aiming at a destination already claimed fails, naming both, and keeps its source.
   */
  private claim(destination: string, job: Job, context: { item: string }): void {
    const owner = `${job.source.name}:${job.root.path}`;
    const holder = job.pass.claimed.get(destination);
    // The same item's earlier attempt may hold it; a second leaf of this attempt may not.
    if (holder === undefined || (holder === owner && !job.claims.has(destination))) {
      job.pass.claimed.set(destination, owner);
      job.claims.add(destination);
      return;
    }
    const other = holder === owner ? 'another entry of the same item' : `"${holder}"`;
    throw new SluiceError('SLUICE_E_COLLISION', `destination "${destination}" is already taken in this pass by ${other}; this item was not written and its source is kept`, {
      retryable: false,
      context: { ...context, hint: 'make destinations unique, e.g. keep the folder ({path}) or add {stem}/{source} to the rename template' },
    });
  }

  /** The `reserve` a sink calls before it makes bytes visible under a name (if_exists: rename). */
  private reserver(index: number, job: Job): ((destination: string) => Promise<void>) | undefined {
    if (this.sinks[index].ifExists !== 'rename' || this.options.dryRun) return undefined;
    return async (destination: string) => {
      job.reserved.add(`${RESERVED}${index}:${destination}`);
      this.ledger.record(this.def.name, itemIdentity(job.root), { state: 'seen', attempts: 1, destinations: [...job.reserved] });
      await this.ledger.flush();
    };
  }

  /**
   * Small files whose bytes no step changed go through `readAll` + `writeBuffer` when both
   * ends support it: per-file stream set-up dominates at thousands of files a second.
   */
  private canWriteWhole(item: Item, targets: Array<{ sink: SinkRuntime }>, job: Job): boolean {
    return (
      item.open === job.chainOpen &&
      !this.hasByteSteps() &&
      item.size !== undefined &&
      item.size <= WHOLE_FILE_LIMIT &&
      job.source.instance.readAll !== undefined &&
      targets.every((t) => t.sink.instance.writeBuffer !== undefined)
    );
  }

  /**
   * sha256 is computed while streaming only when something compares it: a sink verifying by
   * sha256, one whose backend reports a checksum, a skip that must prove it holds the same bytes
   * before the source is touched, or a redo looking for the copy a crashed run committed.
   * Hashing runs at about the speed of a page-cache copy, so hashing unconditionally would
   * halve local throughput for nothing.
   */
  private wantsSha256(targets: Array<{ sink: SinkRuntime; index: number }>, job: Job): boolean {
    return targets.some(
      (t) =>
        t.sink.verify === 'sha256' ||
        t.sink.instance.reportsSha256 === true ||
        (job.touchesSource && (t.sink.ifExists === 'skip' || t.sink.ifExists === 'fail')) ||
        job.reservedEarlier.has(t.index),
    );
  }

  private async streamToSinks(
    item: Item,
    destination: string,
    targets: Array<{ sink: SinkRuntime; index: number; key: string }>,
    job: Job,
    context: { item: string },
  ): Promise<{ bytes: number; commits: SinkCommit[] }> {
    let body = await item.open(job.signal);
    let sha256: string | undefined = item.checksums.sha256;
    let spooled: string | undefined;
    if (!sha256 && targets.some((t) => t.sink.instance.needsSha256)) {
      // A sink needs the hash before writing (metadata): spool once while hashing.
      spooled = join(this.tempRoot, `spool-${Math.random().toString(36).slice(2)}`);
      await mkdir(this.tempRoot, { recursive: true });
      const tap = new HashTap();
      await drainInto(pipeThrough(body, tap), createWriteStream(spooled), job.signal);
      sha256 = tap.digest();
      body = createReadStream(spooled, { highWaterMark: STREAM_CHUNK });
    }
    try {
      const tap = new HashTap(this.wantsSha256(targets, job) ? 'sha256' : null);
      const flowing = pipeThrough(body, tap);
      if (targets.length === 0) {
        // Every sink already has this entry from an earlier attempt: just consume the bytes.
        for await (const _ of flowing) {
          /* drain */
        }
        return { bytes: tap.bytes, commits: [] };
      }
      await job.fence();
      const bodies = targets.length === 1 ? [flowing] : fanOut(flowing, targets.length);
      const writes = targets.map((t, i) =>
        this.guardSink(t.sink, context, () =>
          t.sink.instance.write({ item, destination, body: bodies[i], size: item.size, sha256, signal: job.signal, reserve: this.reserver(t.index, job) }),
        ),
      );
      // One sink failing aborts the others: no sink commits bytes the others did not get.
      for (const w of writes) {
        w.catch((err) => {
          for (const b of bodies) b.destroy(err);
          flowing.destroy(err);
        });
      }
      const settled = await Promise.allSettled(writes);
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed) {
        // What the other sinks committed before one failed would otherwise stay behind.
        for (const [i, r] of settled.entries()) {
          if (r.status === 'fulfilled' && !r.value.skipped) job.written.push({ sink: targets[i].sink, destination: r.value.destination ?? destination });
        }
        throw (failed as PromiseRejectedResult).reason;
      }
      const commits = settled.map((r) => (r as PromiseFulfilledResult<SinkCommit>).value);
      const sent = { bytes: tap.bytes, sha256: tap.digest() };
      for (const [i, t] of targets.entries()) commits[i] = await this.verify(t.sink, t.index, destination, commits[i], sent, job, context, item);
      return { bytes: tap.bytes, commits };
    } finally {
      if (spooled) await unlink(spooled).catch(() => undefined);
    }
  }

  private async guardSink<T>(sink: SinkRuntime, context: { item: string }, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      // A sink fails too when the bytes it reads fail: `located` names the step that made them.
      throw located(err, { pipeline: this.def.name, step: sink.ref.stepId, plugin: sink.ref.name, ...context }, 'SLUICE_E_SINK');
    }
  }

  /**
   * The verification contract: what the backend reports it holds is compared with what was
   * sent. A sink that reports no size fails `verify: size`; a failure removes only what this
   * attempt wrote. A skip counts as delivered when the source is kept, or when the existing
   * object holds the same bytes. Returns the commit to record (a crashed run's copy, when the
   * redo finds one of the names it reserved holding these bytes).
   */
  private async verify(
    sink: SinkRuntime,
    index: number,
    destination: string,
    commit: SinkCommit,
    sent: { bytes: number; sha256?: string },
    job: Job,
    context: { item: string },
    item: Item,
  ): Promise<SinkCommit> {
    const where = { pipeline: this.def.name, step: sink.ref.stepId, plugin: sink.ref.name, ...context };
    const written = commit.destination ?? destination;
    if (commit.skipped) {
      if (job.touchesSource) await this.checkSkip(sink, written, commit, sent, job, where, item);
      return commit;
    }
    const mismatch = async (what: string, options: { retryable?: boolean; hint?: string } = {}) => {
      await sink.instance.remove?.(written).catch(() => undefined);
      return new SluiceError('SLUICE_E_VERIFY', `${commit.location}: ${what}`, { context: { ...where, hint: options.hint }, retryable: options.retryable ?? true });
    };
    if (sink.verify !== 'none') {
      if (commit.size === undefined) {
        throw await mismatch('the sink did not report what it stored, so the copy cannot be verified', {
          retryable: false,
          hint: `set verify: none on ${sink.ref.stepId} to accept copies nobody can check`,
        });
      }
      if (sent.bytes >= 0 && commit.size !== sent.bytes) throw await mismatch(`stored ${commit.size} bytes but ${sent.bytes} were sent`);
      if (commit.sha256 && sent.sha256 && commit.sha256 !== sent.sha256) {
        throw await mismatch(`stored sha256 ${commit.sha256} differs from the sent ${sent.sha256}`);
      }
      if (sink.verify === 'sha256' && sent.sha256 && !commit.sha256) {
        if (!sink.instance.readBack) throw await mismatch('verify: sha256 was asked, but the sink neither reported a sha256 nor can re-read the object', { retryable: false });
        const stored = await this.hashAt(sink, written, job.signal);
        if (stored !== sent.sha256) throw await mismatch(`re-read sha256 ${stored} differs from the sent ${sent.sha256}`);
      }
    }
    return this.reuseReserved(sink, index, written, commit, sent, job);
  }

  /** A skip may stand for the item only if the object already there holds the same bytes. */
  private async checkSkip(sink: SinkRuntime, written: string, commit: SinkCommit, sent: { bytes: number; sha256?: string }, job: Job, where: ErrorContext, item: Item): Promise<void> {
    const differs = () =>
      new SluiceError('SLUICE_E_EXISTS', `${commit.location} already holds other bytes; if_exists: ${sink.ifExists} left it in place, so the source is kept`, {
        retryable: false,
        context: { ...where, hint: 'use if_exists: rename or overwrite, or after_success: keep' },
      });
    if (commit.size !== undefined && sent.bytes >= 0 && commit.size !== sent.bytes) throw differs();
    if (!sink.instance.readBack && !commit.sha256) {
      throw new SluiceError('SLUICE_E_EXISTS', `${commit.location} exists and the sink cannot re-read it to show it holds the same bytes, so the source is kept`, { retryable: false, context: where });
    }
    const expected = sent.sha256 ?? (await hashStream(await item.open(job.signal))).digest;
    const existing = commit.sha256 ?? (await this.hashAt(sink, written, job.signal));
    if (existing !== expected) throw differs();
  }

  /**
   * A redo after a crash between a rename-mode commit and its ledger record: if one of the
   * names the crashed run reserved holds exactly these bytes, that is this item's copy — the
   * twin this attempt just wrote is removed and the earlier copy recorded.
   */
  private async reuseReserved(sink: SinkRuntime, index: number, written: string, commit: SinkCommit, sent: { bytes: number; sha256?: string }, job: Job): Promise<SinkCommit> {
    const earlier = job.reservedEarlier.get(index);
    if (!earlier || !sent.sha256 || !sink.instance.readBack) return commit;
    for (const name of earlier) {
      if (name === written) continue;
      const existing = await this.hashAt(sink, name, job.signal).catch(() => undefined);
      if (existing !== sent.sha256) continue;
      await sink.instance.remove?.(written);
      const location = commit.location.endsWith(written) ? commit.location.slice(0, -written.length) + name : name;
      return { ...commit, location, destination: name };
    }
    return commit;
  }

  private async hashAt(sink: SinkRuntime, destination: string, signal: AbortSignal): Promise<string> {
    const tap = new HashTap();
    await drainInto(pipeThrough(await sink.instance.readBack!(destination, signal), tap), new PassThrough().resume(), signal);
    return tap.digest()!;
  }

  private sourceOrigin(job: Job): StreamOrigin {
    const { source } = job;
    return {
      context: { pipeline: this.def.name, step: source.ref.stepId, plugin: source.ref.name, item: `${source.name}:${job.root.path}` },
      code: 'SLUICE_E_SOURCE',
    };
  }

  private async afterSuccess(source: SourceRuntime, item: Item): Promise<void> {
    const action = source.afterSuccess;
    const context = { pipeline: this.def.name, step: source.ref.stepId, plugin: source.ref.name, item: `${source.name}:${item.path}` };
    try {
      if (action === 'delete') await source.instance.remove!(item);
      else if (typeof action === 'object') await source.instance.move!(item, action.move_to);
    } catch (err) {
      throw wrapPluginError(err, context, 'SLUICE_E_SOURCE');
    }
  }

  /**
   * Applies after_success (delete / move_to) to the companions steps declared for a finalized
   * item, after the item's own. Only paths a step's `isCompanion` matches follow: those are
   * never items of their own, so nothing else finalizes them. A failure is logged, not counted
   * against the item: its bytes are delivered and finalized, and retrying the item would redo
   * an after_success that already happened.
   */
  private async tidyCompanions(source: SourceRuntime, item: Item, job: Job): Promise<void> {
    if (source.afterSuccess === 'keep' || !source.instance.openPath) return;
    const { maxAttempts } = this.def.policy.retry;
    for (const path of job.companions) {
      if (path === item.path || !this.companionChecks.some((isCompanion) => isCompanion(path))) continue;
      const { item: companion } = await this.reviveItem({ source: source.name, path });
      for (let attempt = 1; ; attempt++) {
        try {
          // A declared companion may not exist (a `.sig` that was never dropped). Look first: a
          // move of a missing file is not harmless everywhere (FTP's replacing rename deletes
          // a taken target before it finds the source missing).
          if (await this.existsAtSource(source, path)) {
            await job.fence();
            await this.afterSuccess(source, companion);
          }
          break;
        } catch (raw) {
          const err = wrapPluginError(raw, { pipeline: this.def.name, step: source.ref.stepId, plugin: source.ref.name, item: `${source.name}:${path}` }, 'SLUICE_E_SOURCE');
          if (err.code === 'SLUICE_E_FENCED') throw err;
          if (this.work.signal.aborted || attempt >= maxAttempts || !this.isRetryable(err)) {
            this.log.warn({ item: `${source.name}:${item.path}`, companion: path, err: errorMessage(err) }, 'companion left at the source');
            break;
          }
          await sleep(backoffDelay(attempt, this.def.policy.retry), this.work.signal).catch(() => undefined);
        }
      }
    }
  }

  private async existsAtSource(source: SourceRuntime, path: string): Promise<boolean> {
    const stream = await source.instance.openPath!(path, this.work.signal);
    if (!stream) return false;
    // Only a probe: a stream that opens lazily may fail after this (the file deleted meanwhile);
    // that late error is not a failure, and unheard it would crash the process.
    stream.on('error', () => undefined);
    stream.destroy();
    return true;
  }

  /** Counts an item that failed for good in the summary, the events and the log. */
  private countFailure(source: SourceRuntime, item: Item, err: SluiceError, attempts: number, summary: RunSummary, note?: string): string {
    const message = errorMessage(err);
    summary.failed++;
    summary.failures.push({ source: source.name, path: item.path, code: err.code, error: message });
    this.emit('item:failed', { source: source.name, path: item.path, error: message, code: err.code });
    this.log.error({ item: `${source.name}:${item.path}`, code: err.code, attempts, err: message }, note ?? 'item failed');
    return message;
  }

  private async fail(source: SourceRuntime, item: Item, err: SluiceError, attempts: number, summary: RunSummary, options: { deadLetter?: boolean } = {}): Promise<void> {
    const message = this.countFailure(source, item, err, attempts, summary);
    if (this.options.dryRun) {
      summary.plan.push({ source: source.name, path: item.path, destinations: [], action: 'failed', error: message });
      return;
    }
    this.ledger.record(this.def.name, itemIdentity(item), { state: 'failed', attempts, error: message });
    if (this.deadLetter && options.deadLetter !== false) await this.sendToDeadLetter(source, item, err, attempts);
  }

  /** Puts the original bytes and a `<name>.error.json` reason into the on_error sink. */
  private async sendToDeadLetter(source: SourceRuntime, item: Item, err: SluiceError, attempts: number): Promise<void> {
    const dl = this.deadLetter!;
    const destination = safeDestination(`${source.name}/${item.path}`);
    const reason = {
      pipeline: this.def.name,
      source: source.name,
      path: item.path,
      code: err.code,
      error: errorMessage(err),
      attempts,
      failed_at: new Date().toISOString(),
    };
    const signal = this.work.signal;
    try {
      try {
        const body = await item.open(signal);
        await dl.instance.write({ item, destination, body, size: item.size, signal });
      } catch (copyErr) {
        (reason as Record<string, unknown>).copy_error = errorMessage(copyErr);
      }
      const json = Buffer.from(`${JSON.stringify(reason, null, 2)}\n`);
      await dl.instance.write({ item, destination: `${destination}.error.json`, body: Readable.from([json]), size: json.length, signal });
    } catch (dlErr) {
      this.log.error({ item: `${source.name}:${item.path}`, err: errorMessage(dlErr) }, 'could not write to on_error');
    }
  }
}

/**
 * `keep`, `delete` and `{move_to}` are shared by every source; a source may define its own
 * object form whose `delete` key means "remove it" (the http source: `{delete: {url}}`).
 */
function normalizeAfterSuccess(value: unknown): SourceRuntime['afterSuccess'] {
  if (value === undefined || value === 'keep') return 'keep';
  if (value === 'delete') return 'delete';
  if (typeof value === 'object' && value !== null) {
    if ('move_to' in value) return { move_to: String((value as { move_to: unknown }).move_to) };
    if ('delete' in value) return 'delete';
  }
  throw new SluiceError('SLUICE_E_CONFIG', `unsupported after_success: ${JSON.stringify(value)}`);
}

/** Source path of the file `name` in the folder of `item` (`in/x.csv` + `x.csv.sha256`). */
function siblingPath(item: Pick<Item, 'path'>, name: string): string {
  const dir = item.path.includes('/') ? item.path.slice(0, item.path.lastIndexOf('/') + 1) : '';
  return dir + name;
}

/** An `open` whose stream errors, and whose own failures, are attributed to `origin`. */
function attributedOpen(open: Item['open'], origin: StreamOrigin): Item['open'] {
  return async (signal?: AbortSignal) => {
    let stream: Readable;
    try {
      stream = await open(signal);
    } catch (err) {
      throw located(err, origin.context, origin.code);
    }
    attributeStreamErrors(stream, origin);
    return stream;
  };
}

/**
 * Wraps `err` with where it happened: the step or source whose stream emitted it when a
 * stream did (the sink consuming the bytes only passes it on), else `fallback`.
 */
function located(err: unknown, fallback: ErrorContext, code: ErrorCode = 'SLUICE_E_PLUGIN'): SluiceError {
  const fromStream = err instanceof SluiceError && err.context.step ? undefined : streamErrorOrigin(err);
  if (fromStream) return wrapPluginError(fromStream.error, fromStream.origin.context, fromStream.origin.code);
  return wrapPluginError(err, fallback, code);
}

function fanOut(source: Readable, n: number): PassThrough[] {
  const outs = Array.from({ length: n }, () => new PassThrough({ highWaterMark: STREAM_CHUNK }));
  for (const o of outs) source.pipe(o);
  source.on('error', (err) => {
    for (const o of outs) o.destroy(err);
  });
  return outs;
}

function isAsyncIterable(v: unknown): v is AsyncIterable<Item> {
  return typeof v === 'object' && v !== null && Symbol.asyncIterator in v;
}

/** The error of a source whose bytes differ in length from what it listed. */
function listedSizeMismatch(listed: number, read: number, origin: StreamOrigin): SluiceError {
  return new SluiceError('SLUICE_E_CHANGED', `read ${read} bytes but the source listed ${listed}: the file changed while it was read, so this copy is not kept`, {
    retryable: false,
    context: origin.context,
  });
}

/** `reserved:<sink index>:<destination>` ledger entries, per sink index. */
function parseReserved(entries: readonly string[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const entry of entries) {
    const rest = entry.slice(RESERVED.length);
    const colon = rest.indexOf(':');
    const index = Number(rest.slice(0, colon));
    if (colon < 0 || !Number.isInteger(index)) continue;
    out.set(index, [...(out.get(index) ?? []), rest.slice(colon + 1)]);
  }
  return out;
}

/** The sink of a dry run: reads the bytes to count them, stores nothing. */
function countingSink(): SinkInstance {
  return {
    async write(req) {
      let size = 0;
      for await (const chunk of req.body) size += (chunk as Buffer).length;
      return { location: req.destination, size };
    },
  };
}

/** The ledger a dry run sees: what was done before, and nothing it records. */
function readOnlyLedger(ledger: Ledger): Ledger {
  return {
    get: (pipeline, id) => ledger.get(pipeline, id),
    history: (pipeline, options) => ledger.history(pipeline, options),
    record: () => undefined,
    flush: async () => undefined,
    close: () => ledger.close(),
  };
}
