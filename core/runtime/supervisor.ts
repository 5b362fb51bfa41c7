/**
 * One pipeline file kept running: its trigger loop (passes never overlap; due times that fall
 * inside a running pass are skipped and logged), hot reload (parse + validate the new text;
 * invalid → reported, the running version keeps running; valid → the old version stops
 * intake and drains its in-flight items, then the new version starts), and stop.
 *
 * Reloading never loses or repeats work: the ledger is per pipeline name, items the old
 * version finalized are skipped by the new one, and the new version only starts after the
 * old one's pass has fully returned (no item is in flight in two versions at once).
 */
import { basename } from 'node:path';
import type { PipelineDefinition } from '../config/load.js';
import { errorMessage, SluiceError } from '../errors.js';
import { SqliteLedger } from '../ledger/sqlite.js';
import type { Logger } from '../observe/logger.js';
import type { SluiceMetrics } from '../observe/metrics.js';
import type { PluginRegistry } from '../registry.js';
import { PipelineLock } from './pipeline-lock.js';
import { loadPipelineFile } from './run-file.js';
import { PipelineRunner, type RunSummary } from './runner.js';
import { sleep } from './timing.js';
import { type Schedule, scheduleOf, skipMissed } from '../config/trigger.js';

export type SupervisorState = 'starting' | 'running' | 'waiting' | 'draining' | 'finished' | 'stopped' | 'invalid' | 'failed';

export interface SupervisorOptions {
  log: Logger;
  /** The plugins pipelines may name (the CLI brings the built-in ones). */
  registry: PluginRegistry;
  vars?: Record<string, string>;
  stateDir?: string;
  /** One pass whatever the trigger says (`sluice run --once`). */
  once?: boolean;
  dryRun?: boolean;
  force?: boolean;
  metrics?: SluiceMetrics;
  /** Count bytes read per in-flight item (progress display, /status). */
  trackProgress?: boolean;
  onSummary?: (summary: RunSummary, supervisor: PipelineSupervisor) => void;
  /** Log starts and stops of versions at info (long-running modes) rather than debug. */
  announce?: boolean;
  /**
   * Passes that run elsewhere, injected by the CLI (`--cluster redis://…`: each pass lists and
   * enqueues the items in Redis and waits for the workers to finish them; nothing runs in this
   * process). No pipeline lock is taken then: the state folder is not used, and the cluster's
   * lister election (one lister per pipeline, job id = item identity) keeps runs apart.
   */
  remote?: RemotePasses;
  /**
   * The other pipeline file of this process that declares pipeline `name`, if any (`watch`):
   * a file that would take a name another file runs under is refused, whatever their state folders.
   */
  nameTakenBy?: (name: string, file: string) => string | undefined;
}

/** Counts items of a pass that runs elsewhere, as their outcomes come in. */
export interface PassEvents {
  done(e: { ms: number; bytesIn: number; bytesOut: number }): void;
  failed(e: { source: string; path: string; code: string; error: string }): void;
  skipped(): void;
  retried(): void;
}

/** One pass of `def` run elsewhere (cluster mode); aborting `signal` stops waiting for it. */
export type RemotePasses = (def: PipelineDefinition, pass: { signal: AbortSignal; events: PassEvents }) => Promise<RunSummary>;

export interface ReloadResult {
  at: string;
  result: 'ok' | 'invalid' | 'unchanged';
  hash?: string;
  error?: string;
}

/** Counters of the pass in progress (progress display). */
export interface PassProgress {
  startedAt: number;
  done: number;
  failed: number;
  skipped: number;
  bytesIn: number;
  bytesOut: number;
  /** Items and bytes listed so far by a counting listing (progress only); `counted` once it ended. */
  total: number;
  totalBytes: number;
  counted: boolean;
}

interface Version {
  def: PipelineDefinition;
  schedule: Schedule;
  /** Embedded mode only (in cluster mode the workers run the items). */
  runner?: PipelineRunner;
  ledger?: SqliteLedger;
  /** Aborted to end the version: wakes the wait between passes. */
  stop: AbortController;
  loop: Promise<void>;
}

const MAX_FAILURES = 20;
const RATE_WINDOW_MS = 60_000;

export class PipelineSupervisor {
  readonly file: string;
  private readonly options: SupervisorOptions;
  private version: Version | undefined;
  private stateValue: SupervisorState = 'starting';
  private lastReloadValue: ReloadResult | undefined;
  private lastError: string | undefined;
  private readonly failures: Array<{ at: string; source: string; path: string; code: string; error: string }> = [];
  private readonly recentDone: Array<{ t: number; bytes: number }> = [];
  private totals = { ok: 0, failed: 0, skipped: 0, filtered: 0, retries: 0, bytesIn: 0, bytesOut: 0, passes: 0, passesSkipped: 0 };
  private lastSuccessAt: string | undefined;
  private lastPassValue: RunSummary | undefined;
  private nextPassAt: Date | undefined;
  private passValue: PassProgress | undefined;
  /** Serializes reloads and stop: one version change at a time. */
  private changing: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** Held from the first start to the stop, across reloads that keep the name and state folder. */
  private lock: PipelineLock | undefined;
  /** The pipeline name this file runs under, claimed before its version starts. */
  private claimed: string | undefined;
  private doneResolve!: () => void;
  private doneReject!: (err: unknown) => void;
  /** Settles when the pipeline has nothing left to do (one-shot trigger) or was stopped. */
  readonly done: Promise<void>;

  constructor(file: string, options: SupervisorOptions) {
    this.file = file;
    this.options = options;
    this.done = new Promise<void>((resolve, reject) => {
      this.doneResolve = resolve;
      this.doneReject = reject;
    });
    this.done.catch(() => undefined); // observed by whoever awaits it; never an unhandled rejection
  }

  get name(): string {
    return this.version?.def.name ?? basename(this.file).replace(/\.ya?ml$/, '');
  }

  /** The pipeline name this file runs (or is starting) under; undefined before it first started. */
  get pipelineName(): string | undefined {
    return this.claimed;
  }

  get state(): SupervisorState {
    return this.stateValue;
  }

  get definition(): PipelineDefinition | undefined {
    return this.version?.def;
  }

  get runner(): PipelineRunner | undefined {
    return this.version?.runner;
  }

  get pass(): PassProgress | undefined {
    return this.passValue;
  }

  get lastReload(): ReloadResult | undefined {
    return this.lastReloadValue;
  }

  get inFlight(): number {
    return this.version?.runner?.activeItems ?? 0; // the runner is made once the version's ledger is open
  }

  /**
   * Loads the file and starts it; throws when the file is invalid or the pipeline is locked by
   * another run (`SLUICE_E_LOCKED`): nothing is started.
   */
  async start(def?: PipelineDefinition): Promise<void> {
    const loaded = def ?? (await this.load());
    this.lock = await this.claim(loaded);
    this.launch(loaded);
  }

  /**
   * Claims `def`'s name and takes its lock (the one held already when name and state folder are
   * the same). Throws `SLUICE_E_LOCKED`, leaving the claim as it was. Dry runs write nothing and
   * take no lock; cluster mode has its own lister election.
   */
  private async claim(def: PipelineDefinition): Promise<PipelineLock | undefined> {
    const other = this.options.nameTakenBy?.(def.name, this.file);
    if (other !== undefined) {
      throw new SluiceError('SLUICE_E_LOCKED', `pipeline name "${def.name}" is already declared by ${other}; ${this.file} was not started`, {
        context: { hint: 'each pipeline file needs its own `name:` (it keys the ledger, logs and metrics)' },
      });
    }
    const before = this.claimed;
    this.claimed = def.name;
    if (this.options.dryRun || this.options.remote) return undefined;
    if (this.lock?.covers(def)) return this.lock;
    try {
      return await PipelineLock.acquire(def);
    } catch (err) {
      this.claimed = before;
      throw err;
    }
  }

  /**
   * Re-reads the file. Invalid → reported, the running version keeps running. Valid and
   * different → the old version drains, then the new one starts.
   */
  reload(): Promise<ReloadResult> {
    const next = this.changing.then(() => this.reloadNow());
    this.changing = next.catch(() => undefined);
    return next;
  }

  private async reloadNow(): Promise<ReloadResult> {
    if (this.stopped) return { at: new Date().toISOString(), result: 'unchanged' };
    const at = new Date().toISOString();
    let def: PipelineDefinition;
    try {
      def = await this.load();
    } catch (err) {
      const error = err instanceof SluiceError ? err.toUserString() : errorMessage(err);
      this.lastReloadValue = { at, result: 'invalid', error };
      this.options.metrics?.reload(this.name, 'invalid');
      this.options.log.error({ pipeline: this.name, file: this.file, err: error, running: this.version?.def.hash ?? null }, 'reload rejected: invalid pipeline file; the running version keeps running');
      if (!this.version) this.stateValue = 'invalid';
      return this.lastReloadValue;
    }
    if (this.version && this.version.def.hash === def.hash) return { at, result: 'unchanged', hash: def.hash };
    let lock: PipelineLock | undefined;
    try {
      lock = await this.claim(def);
    } catch (err) {
      const error = err instanceof SluiceError ? err.toUserString() : errorMessage(err);
      this.lastReloadValue = { at, result: 'invalid', error };
      this.options.metrics?.reload(this.name, 'invalid');
      this.options.log.error({ pipeline: def.name, file: this.file, err: error, running: this.version?.def.hash ?? null }, 'pipeline file refused: its pipeline runs elsewhere; the running version keeps running');
      if (!this.version) this.stateValue = 'invalid';
      return this.lastReloadValue;
    }
    const from = this.version?.def.hash;
    if (this.version) await this.retire(this.version);
    if (lock !== this.lock) {
      this.lock?.release();
      this.lock = lock;
    }
    if (this.stopped) {
      this.releaseLock();
      return { at, result: 'unchanged' };
    }
    this.launch(def);
    this.lastReloadValue = { at, result: 'ok', hash: def.hash };
    this.options.metrics?.reload(def.name, 'ok');
    this.options.log.info({ pipeline: def.name, file: this.file, from: from ?? null, to: def.hash }, from ? 'pipeline reloaded' : 'pipeline loaded');
    return this.lastReloadValue;
  }

  /** Stops intake, lets in-flight items finish (drain timeout, then abort), closes. */
  stop(drainTimeoutMs?: number): Promise<void> {
    this.stopped = true;
    const next = this.changing.then(async () => {
      if (this.version) await this.retire(this.version, drainTimeoutMs);
      this.releaseLock();
      this.stateValue = 'stopped';
      this.doneResolve();
    });
    this.changing = next.catch(() => undefined);
    return next;
  }

  private releaseLock(): void {
    this.lock?.release();
    this.lock = undefined;
    this.claimed = undefined;
  }

  /** Aborts in-flight items now; nothing half-written is committed. */
  abortNow(): void {
    this.stopped = true;
    if (!this.version) return;
    this.version.stop.abort();
    this.version.runner?.abortNow();
  }

  private load(): Promise<PipelineDefinition> {
    const { registry, vars, stateDir } = this.options;
    return loadPipelineFile(this.file, { registry, vars, stateDir }).then((def) => {
      scheduleOf(def.trigger); // a bad cron expression is a config error too
      return def;
    });
  }

  private launch(def: PipelineDefinition): void {
    const schedule = this.options.once ? scheduleOf(undefined) : scheduleOf(def.trigger);
    const stop = new AbortController();
    const version = { def, schedule, stop } as Version;
    this.version = version;
    this.stateValue = 'starting';
    version.loop = this.loop(version).catch((err) => {
      this.stateValue = 'failed';
      this.lastError = errorMessage(err);
      this.doneReject(err);
    });
  }

  private async loop(v: Version): Promise<void> {
    const log = this.options.log.child({ pipeline: v.def.name });
    const runPass = this.options.remote ? this.remotePasses(v, this.options.remote) : await this.embeddedPasses(v);
    const announce = this.options.announce || v.schedule.description !== 'once';
    log[announce ? 'info' : 'debug']({ file: this.file, hash: v.def.hash, trigger: v.schedule.description }, 'pipeline started');
    let due = new Date();
    for (;;) {
      if (v.stop.signal.aborted) return;
      this.stateValue = 'running';
      this.nextPassAt = undefined;
      this.passValue = { startedAt: Date.now(), done: 0, failed: 0, skipped: 0, bytesIn: 0, bytesOut: 0, total: 0, totalBytes: 0, counted: false };
      if (this.options.trackProgress && v.runner) void this.countTotals(v.runner, v.def, this.passValue);
      let summary: RunSummary | undefined;
      try {
        summary = await runPass();
      } catch (err) {
        if (v.schedule.nextAfter(due) === undefined) throw err; // one-shot: the caller reports it
        this.lastError = err instanceof SluiceError ? err.toUserString() : errorMessage(err);
        log.error({ err: this.lastError }, 'pass failed; the next one runs at its due time');
      }
      if (summary) this.passFinished(summary);
      if (v.stop.signal.aborted) return;
      const { skipped, next } = skipMissed(v.schedule, due, new Date());
      if (skipped > 0) {
        this.totals.passesSkipped += skipped;
        this.options.metrics?.passSkipped(v.def.name, skipped);
        log.warn({ skipped, trigger: v.schedule.description }, 'the pass ran past its next due time: skipped, passes never overlap');
      }
      if (!next) {
        this.stateValue = 'finished';
        this.doneResolve();
        return;
      }
      this.stateValue = 'waiting';
      this.nextPassAt = next;
      await sleep(Math.max(0, next.getTime() - Date.now()), v.stop.signal).catch(() => undefined);
      due = next;
    }
  }

  /** Embedded mode: the version's own ledger and runner; passes run in this process. */
  private async embeddedPasses(v: Version): Promise<() => Promise<RunSummary>> {
    // A dry run reads what was done before and creates neither the state folder nor the ledger.
    const ledger = await SqliteLedger.open(v.def.stateDir, { readOnly: this.options.dryRun });
    const runner = new PipelineRunner(v.def, {
      ledger,
      log: this.options.log,
      dryRun: this.options.dryRun,
      force: this.options.force,
      trackProgress: this.options.trackProgress,
    });
    v.ledger = ledger;
    v.runner = runner;
    this.observe(runner, v.def.name);
    // Before anything lists: the counting listing and the pass must not both create plugins.
    await runner.start();
    return () => runner.runPass();
  }

  /**
   * Cluster mode: a pass lists into the queue and waits for the workers. Retiring the version
   * (reload, stop) ends the wait; the jobs already queued finish on the workers under this
   * version, and a newer version's listing collapses into them instead of planning them twice.
   */
  private remotePasses(v: Version, remote: RemotePasses): () => Promise<RunSummary> {
    const name = v.def.name;
    const events: PassEvents = {
      done: (e) => this.itemDone(name, e.ms, e.bytesIn, e.bytesOut),
      failed: (e) => this.itemFailed(name, e.source, e.path, e.code, e.error),
      skipped: () => this.itemSkipped(name),
      retried: () => this.itemRetried(name),
    };
    return async () => {
      const summary = await remote(v.def, { signal: v.stop.signal, events });
      // Items the listing found finalized already are skipped without a job.
      const seen = this.passValue?.skipped ?? 0;
      for (let i = seen; i < summary.skipped; i++) this.itemSkipped(v.def.name);
      return summary;
    };
  }

  /**
   * For the progress display only: a second, counting listing gives files/total and an ETA.
   * Not for watching sources, whose listing never ends.
   */
  private async countTotals(runner: PipelineRunner, def: PipelineDefinition, pass: PassProgress): Promise<void> {
    if (def.sources.some((s) => s.config.watch === true)) return;
    try {
      for await (const { item } of runner.list()) {
        pass.total++;
        pass.totalBytes += item.size ?? 0;
      }
      pass.counted = true;
    } catch {
      // the pass itself reports listing errors
    }
  }

  private passFinished(summary: RunSummary): void {
    this.lastPassValue = summary;
    this.totals.passes++;
    this.totals.filtered += summary.filtered;
    this.options.metrics?.itemOutcome(summary.pipeline, 'filtered', summary.filtered);
    this.options.onSummary?.(summary, this);
  }

  private observe(runner: PipelineRunner, pipeline: string): void {
    runner.on('item:done', (e) => this.itemDone(pipeline, e.ms, e.bytesIn, e.bytes));
    runner.on('item:failed', (e) => this.itemFailed(pipeline, e.source, e.path, e.code, e.error));
    runner.on('item:skipped', () => this.itemSkipped(pipeline));
    runner.on('item:retry', () => this.itemRetried(pipeline));
  }

  private itemDone(pipeline: string, ms: number, bytesIn: number, bytes: number): void {
    this.totals.ok++;
    this.totals.bytesIn += bytesIn;
    this.totals.bytesOut += bytes;
    if (this.passValue) {
      this.passValue.done++;
      this.passValue.bytesIn += bytesIn;
      this.passValue.bytesOut += bytes;
    }
    this.lastSuccessAt = new Date().toISOString();
    const now = Date.now();
    this.recentDone.push({ t: now, bytes });
    while (this.recentDone.length > 0 && now - this.recentDone[0].t > RATE_WINDOW_MS) this.recentDone.shift();
    this.options.metrics?.itemDone(pipeline, ms, bytesIn, bytes);
  }

  private itemFailed(pipeline: string, source: string, path: string, code: string, error: string): void {
    this.totals.failed++;
    if (this.passValue) this.passValue.failed++;
    this.failures.unshift({ at: new Date().toISOString(), source, path, code, error });
    this.failures.length = Math.min(this.failures.length, MAX_FAILURES);
    this.options.metrics?.itemOutcome(pipeline, 'failed');
  }

  private itemSkipped(pipeline: string): void {
    this.totals.skipped++;
    if (this.passValue) this.passValue.skipped++;
    this.options.metrics?.itemOutcome(pipeline, 'skipped');
  }

  private itemRetried(pipeline: string): void {
    this.totals.retries++;
    this.options.metrics?.retry(pipeline);
  }

  /** Ends a version: intake stops, its pass returns (drained or aborted), then it is closed. */
  private async retire(v: Version, drainTimeoutMs = v.def.policy.drainTimeoutMs): Promise<void> {
    if (this.version === v) this.stateValue = 'draining';
    const log = this.options.log.child({ pipeline: v.def.name });
    const inFlight = v.runner?.activeItems ?? 0;
    if (inFlight > 0) log.info({ inFlight, hash: v.def.hash }, 'draining: in-flight items finish, no new ones start');
    v.stop.abort();
    v.runner?.stopIntake();
    const timeout = new AbortController(); // cancelled once drained: a pending timer would keep the process alive
    const settled = await Promise.race([
      v.loop.then(() => true),
      sleep(drainTimeoutMs, timeout.signal).then(
        () => false,
        () => true,
      ),
    ]);
    timeout.abort();
    if (!settled) {
      log.warn({ drainTimeoutMs }, 'drain timeout: aborting in-flight items (they are redone later, nothing half-written is kept)');
      v.runner?.abortNow();
      await v.loop;
    }
    await v.runner?.close();
    await v.ledger?.close();
    if (this.version === v) this.version = undefined;
    log[this.options.announce || v.schedule.description !== 'once' ? 'info' : 'debug']({ hash: v.def.hash }, 'pipeline version stopped');
  }

  /** Everything /status and the status page show about this pipeline. */
  status() {
    const now = Date.now();
    const recent = this.recentDone.filter((d) => now - d.t <= RATE_WINDOW_MS);
    const span = recent.length > 0 ? Math.max(1, now - Math.min(recent[0].t, now - 1000)) / 1000 : 1;
    const def = this.version?.def;
    return {
      name: this.name,
      file: this.file,
      state: this.stateValue,
      hash: def?.hash ?? null,
      trigger: this.version?.schedule.description ?? null,
      nextPassAt: this.nextPassAt?.toISOString() ?? null,
      inFlight: (this.version?.runner?.inFlightItems ?? []).map((i) => ({
        source: i.source,
        path: i.path,
        size: i.size ?? null,
        bytesRead: i.bytesRead,
        progress: i.size ? Math.min(1, i.bytesRead / i.size) : null,
        ms: Math.round(i.ms),
      })),
      inFlightCount: this.inFlight,
      totals: { ...this.totals },
      throughput: {
        filesPerMinute: Math.round((recent.length / span) * 60 * 10) / 10,
        bytesPerSecond: Math.round(recent.reduce((n, d) => n + d.bytes, 0) / span),
      },
      lastSuccessAt: this.lastSuccessAt ?? null,
      lastPass: this.lastPassValue
        ? {
            ok: this.lastPassValue.ok,
            failed: this.lastPassValue.failed,
            skipped: this.lastPassValue.skipped,
            durationMs: Math.round(this.lastPassValue.durationMs),
          }
        : null,
      lastError: this.lastError ?? null,
      lastReload: this.lastReloadValue ?? null,
      recentFailures: [...this.failures],
    };
  }
}

export type PipelineStatus = ReturnType<PipelineSupervisor['status']>;
