/**
 * The pipeline runtime: lists items, runs each through the steps into every sink with
 * end-to-end backpressure, verifies, then finalizes (ledger, after_success). It is the only
 * caller of plugin code and stamps every error with pipeline, step, plugin and item.
 */
import { createHash } from 'node:crypto';
import { EventEmitter, setMaxListeners } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, unlink } from 'node:fs/promises';
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
  PluginContext,
  SinkCommit,
  SinkInstance,
  SourceInstance,
  StepContext,
  StepInstance,
  StepOutput,
  SummaryFigure,
} from '../plugin-api.js';
import { drainInto, HashTap, pipeThrough, STREAM_CHUNK } from '../streams.js';
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
}

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
  plan: PlanEntry | undefined;
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
    this.ledger = options.ledger;
    this.log = (options.log ?? silentLogger).child({ pipeline: def.name });
    this.tempRoot = join(def.stateDir, 'tmp', `${process.pid}-${Date.now().toString(36)}`);
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
    if (this.def.onError) this.deadLetter = await this.sinkRuntime(this.def.onError);
  }

  private unsupported(ref: PluginRef, what: string): SluiceError {
    return new SluiceError('SLUICE_E_CONFIG', `the ${ref.name} source does not support ${what}`, {
      context: { pipeline: this.def.name, step: ref.stepId, plugin: ref.name },
    });
  }

  private async sinkRuntime(ref: PluginRef): Promise<SinkRuntime> {
    const instance = await this.create<SinkInstance>(ref);
    const verify = ((ref.config as { verify?: SinkRuntime['verify'] }).verify ?? 'size') as SinkRuntime['verify'];
    return { ref, instance, verify };
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
  async processListed(listed: ListedItem, summary: RunSummary, _options: ProcessOptions = {}): Promise<void> {
    await this.start();
    this.inFlight++;
    this.currentSummary ??= summary;
    try {
      await this.processRoot(this.sourceRuntime(listed.source), listed.item, summary);
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
    await this.fail(source, listed.item, err, attempts, summary, undefined);
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
          yield { source, item };
        }
      } catch (err) {
        if (this.intake.signal.aborted && isAbortError(err)) return;
        throw wrapPluginError(err, { pipeline: this.def.name, step: source.ref.stepId, plugin: source.ref.name }, 'SLUICE_E_SOURCE');
      }
    }
  }

  private async processRoot(source: SourceRuntime, item: Item, summary: RunSummary): Promise<void> {
    const id = itemIdentity(item);
    const label = `${source.name}:${item.path}`;
    let finalizeOnly = false;
    /** What an earlier attempt committed, when only its after_success failed. */
    let committedEarlier: Pick<Job, 'leaves' | 'bytesIn' | 'figures' | 'companions'> | undefined;
    if (!this.options.force) {
      const record = await this.ledger.get(this.def.name, id);
      if (record?.state === 'finalized') {
        summary.skipped++;
        this.emit('item:skipped', { source: source.name, path: item.path });
        if (this.options.dryRun) summary.plan.push({ source: source.name, path: item.path, destinations: record.destinations, action: 'skip-done' });
        return;
      }
      finalizeOnly = record?.state === 'committed';
    }
    const started = performance.now();
    this.emit('item:start', { source: source.name, path: item.path, size: item.size });
    const { maxAttempts } = this.def.policy.retry;
    const committed = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      const job: Job = {
        source,
        root: item,
        signal: this.work.signal,
        leaves: [],
        filtered: 0,
        bytesIn: 0,
        committed,
        figures: [],
        companions: new Set(),
        plan: this.options.dryRun
          ? { source: source.name, path: item.path, destinations: [], action: finalizeOnly ? 'finalize-only' : 'write' }
          : undefined,
      };
      try {
        if (committedEarlier) {
          job.leaves = committedEarlier.leaves;
          job.bytesIn = committedEarlier.bytesIn;
          job.figures = committedEarlier.figures;
          job.companions = committedEarlier.companions;
        } else if (!finalizeOnly) {
          if (!this.options.dryRun) this.ledger.record(this.def.name, id, { state: 'seen', attempts: attempt });
          const chainRoot = this.countedRoot(item, job);
          job.chainOpen = chainRoot.open;
          await this.runChain(chainRoot, 0, job);
          if (job.leaves.length === 0 && job.filtered > 0) {
            summary.filtered++;
            if (job.plan) summary.plan.push({ ...job.plan, action: 'filtered' });
            return;
          }
        }
        if (this.work.signal.aborted) throw this.work.signal.reason;
        if (job.plan) {
          summary.plan.push(job.plan);
        } else {
          const destinations = job.leaves.flatMap((l) => l.locations);
          if (!finalizeOnly) this.ledger.record(this.def.name, id, { state: 'committed', attempts: attempt, destinations });
          // Every copy is committed: if after_success fails now, a retry redoes only that step.
          if (!finalizeOnly) committedEarlier = { leaves: job.leaves, bytesIn: job.bytesIn, figures: job.figures, companions: job.companions };
          finalizeOnly = true;
          const durable = this.ledger.flushBeforeSourceChange === true && source.afterSuccess !== 'keep';
          if (durable) await this.ledger.flush();
          await this.afterSuccess(source, item);
          this.ledger.record(this.def.name, id, { state: 'finalized', attempts: attempt });
          // The source file is gone (or moved): nothing will list it again to correct its record,
          // so `finalized` is written now rather than with the next batch.
          if (durable) await this.ledger.flush();
          await this.tidyCompanions(source, item, job.companions);
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
        await this.fail(source, item, err, attempt, summary, job.plan);
        return;
      } finally {
        this.reading.delete(job);
      }
    }
  }

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
    if (!this.hasByteSteps() && !progress) return item;
    return {
      ...item,
      open: async (signal?: AbortSignal) => {
        const tap = new HashTap(null);
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
    if (job.plan) {
      const body = await item.open(job.signal);
      let bytes = 0;
      for await (const chunk of body) bytes += (chunk as Buffer).length;
      job.plan.destinations.push(destination);
      job.plan.bytes = (job.plan.bytes ?? 0) + bytes;
      job.leaves.push({ destination, locations: [], bytes });
      return;
    }
    const pending = this.sinks.map((s, i) => ({ sink: s, key: `${i}\u0000${destination}` })).filter((p) => !job.committed.has(p.key));
    const locations: string[] = [];
    let bytes = 0;

    const copied: typeof pending = [];
    // A server-side copy takes the bytes from where the source keeps them, so only for an
    // item whose bytes no step touched: its open() is still the one the chain started from
    // (a plugin that forgot to clear `origin` must not have its transform skipped).
    if (item.origin && item.open === job.chainOpen) {
      for (const p of pending) {
        if (!p.sink.instance.copy) continue;
        const commit = await this.guardSink(p.sink, context, () => p.sink.instance.copy!(item, destination, job.signal));
        if (commit) {
          if (item.size !== undefined) await this.verify(p.sink, destination, commit, { bytes: item.size, sha256: item.checksums.sha256 }, job.signal, context);
          job.committed.add(p.key);
          locations.push(commit.location);
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
      const sha256 = this.wantsSha256(toWrite) ? createHash('sha256').update(data).digest('hex') : undefined;
      const sent = { bytes: data.length, sha256 };
      for (const p of toWrite) {
        const commit = await this.guardSink(p.sink, context, () =>
          p.sink.instance.writeBuffer!({ item, destination, data, size: data.length, sha256: sent.sha256, signal: job.signal }),
        );
        await this.verify(p.sink, destination, commit, sent, job.signal, context);
        job.committed.add(p.key);
        locations.push(commit.location);
      }
      bytes = data.length;
    } else if (toWrite.length > 0 || pending.length === 0) {
      const result = await this.streamToSinks(item, destination, toWrite, job, context);
      for (const [i, p] of toWrite.entries()) {
        job.committed.add(p.key);
        locations.push(result.commits[i].location);
      }
      bytes = result.bytes;
    }
    job.leaves.push({ destination, locations, bytes });
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
   * sha256, or one whose backend reports a checksum. Hashing runs at about the speed of a
   * page-cache copy, so hashing unconditionally would halve local throughput for nothing.
   */
  private wantsSha256(targets: Array<{ sink: SinkRuntime }>): boolean {
    return targets.some((t) => t.sink.verify === 'sha256' || t.sink.instance.reportsSha256 === true);
  }

  private async streamToSinks(
    item: Item,
    destination: string,
    targets: Array<{ sink: SinkRuntime; key: string }>,
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
      const tap = new HashTap(this.wantsSha256(targets) ? 'sha256' : null);
      const flowing = pipeThrough(body, tap);
      if (targets.length === 0) {
        // Every sink already has this entry from an earlier attempt: just consume the bytes.
        for await (const _ of flowing) {
          /* drain */
        }
        return { bytes: tap.bytes, commits: [] };
      }
      const bodies = targets.length === 1 ? [flowing] : fanOut(flowing, targets.length);
      const writes = targets.map((t, i) =>
        this.guardSink(t.sink, context, () =>
          t.sink.instance.write({ item, destination, body: bodies[i], size: item.size, sha256, signal: job.signal }),
        ),
      );
      // One sink failing aborts the others: no sink commits bytes the others did not get.
      for (const w of writes) {
        w.catch((err) => {
          for (const b of bodies) b.destroy(err);
          flowing.destroy(err);
        });
      }
      const commits = await Promise.all(writes);
      const sent = { bytes: tap.bytes, sha256: tap.digest() };
      for (const [i, t] of targets.entries()) await this.verify(t.sink, destination, commits[i], sent, job.signal, context);
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

  private async verify(
    sink: SinkRuntime,
    destination: string,
    commit: SinkCommit,
    sent: { bytes: number; sha256?: string },
    signal: AbortSignal,
    context: { item: string },
  ): Promise<void> {
    if (commit.skipped || sink.verify === 'none') return;
    const where = { pipeline: this.def.name, step: sink.ref.stepId, plugin: sink.ref.name, ...context };
    const mismatch = async (what: string) => {
      await sink.instance.remove?.(destination).catch(() => undefined);
      return new SluiceError('SLUICE_E_VERIFY', `${commit.location}: ${what}`, { context: where, retryable: true });
    };
    if (commit.size !== undefined && commit.size !== sent.bytes) {
      throw await mismatch(`stored ${commit.size} bytes but ${sent.bytes} were sent`);
    }
    if (commit.sha256 && sent.sha256 && commit.sha256 !== sent.sha256) {
      throw await mismatch(`stored sha256 ${commit.sha256} differs from the sent ${sent.sha256}`);
    }
    if (sink.verify === 'sha256' && sent.sha256 && !commit.sha256) {
      if (!sink.instance.readBack) throw await mismatch('verify: sha256 was asked, but the sink neither reported a sha256 nor can re-read the object');
      const tap = new HashTap();
      await drainInto(pipeThrough(await sink.instance.readBack(destination, signal), tap), new PassThrough().resume(), signal);
      if (tap.digest() !== sent.sha256) throw await mismatch(`re-read sha256 ${tap.digest()} differs from the sent ${sent.sha256}`);
    }
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
  private async tidyCompanions(source: SourceRuntime, item: Item, companions: ReadonlySet<string>): Promise<void> {
    if (source.afterSuccess === 'keep' || !source.instance.openPath) return;
    const { maxAttempts } = this.def.policy.retry;
    for (const path of companions) {
      if (path === item.path || !this.companionChecks.some((isCompanion) => isCompanion(path))) continue;
      const { item: companion } = await this.reviveItem({ source: source.name, path });
      for (let attempt = 1; ; attempt++) {
        try {
          // A declared companion may not exist (a `.sig` that was never dropped). Look first: a
          // move of a missing file is not harmless everywhere (FTP's replacing rename deletes
          // a taken target before it finds the source missing).
          if (await this.existsAtSource(source, path)) await this.afterSuccess(source, companion);
          break;
        } catch (raw) {
          const err = wrapPluginError(raw, { pipeline: this.def.name, step: source.ref.stepId, plugin: source.ref.name, item: `${source.name}:${path}` }, 'SLUICE_E_SOURCE');
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

  private async fail(source: SourceRuntime, item: Item, err: SluiceError, attempts: number, summary: RunSummary, plan: PlanEntry | undefined): Promise<void> {
    const message = errorMessage(err);
    summary.failed++;
    summary.failures.push({ source: source.name, path: item.path, code: err.code, error: message });
    this.emit('item:failed', { source: source.name, path: item.path, error: message, code: err.code });
    this.log.error({ item: `${source.name}:${item.path}`, code: err.code, attempts, err: message }, 'item failed');
    if (plan) {
      summary.plan.push({ ...plan, action: 'failed', error: message });
      return;
    }
    this.ledger.record(this.def.name, itemIdentity(item), { state: 'failed', attempts, error: message });
    if (this.deadLetter) await this.sendToDeadLetter(source, item, err, attempts);
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
