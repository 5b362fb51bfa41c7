/**
 * One pipeline file kept running: its trigger loop (passes never overlap; due times that fall
 * inside a running pass are skipped and logged), passes asked for from outside (`requestPass`,
 * the control API: queued in the same loop, so they never overlap a scheduled pass or each
 * other), hot reload (parse + validate the new text;
 * invalid → reported, the running version keeps running; valid → the old version stops
 * intake and drains its in-flight items, then the new version starts), and stop.
 *
 * Reloading never loses or repeats work: the ledger is per pipeline name, items the old
 * version finalized are skipped by the new one, and the new version only starts after the
 * old one's pass has fully returned (no item is in flight in two versions at once).
 */
import { basename } from 'node:path';
import type { PipelineDefinition } from '../config/load.js';
import { type Schedule, scheduleOf, skipMissed } from '../config/trigger.js';
import { errorMessage, SluiceError } from '../errors.js';
import type { SqliteLedger } from '../ledger/sqlite.js';
import type { Logger } from '../observe/logger.js';
import type { SluiceMetrics } from '../observe/metrics.js';
import { type PassProgress, PipelineCounters } from '../observe/pipeline-counters.js';
import type { PluginRegistry } from '../registry.js';
import {
  countTotals,
  embeddedPasses,
  oneOffPass,
  type PassEvents,
  type RemotePasses,
  remotePasses,
  teeEvents,
} from './pass-modes.js';
import { PipelineLock } from './pipeline-lock.js';
import { loadPipelineFile } from './run-file.js';
import type { PipelineRunner, RunSummary } from './runner.js';
import { sleep } from './timing.js';

export type SupervisorState =
  | 'starting'
  | 'running'
  | 'waiting'
  | 'draining'
  | 'finished'
  | 'stopped'
  | 'invalid'
  | 'failed';

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

export type { PassEvents, RemotePasses };

/**
 * A pass asked for outside the schedule (the control API). It runs in the supervisor's loop:
 * after the pass in progress, never beside it, in the order asked; with its own runner (the file
 * loaded with the run's variables, `force`, `dryRun`), the pipeline's lock and ledger.
 */
export interface PassRequest {
  /** The run's `${VAR}` values, on top of the supervisor's (`--var`). */
  vars: Record<string, string>;
  /** The file loaded with them (`loadWith`) when the run was asked for; reloaded if the file changed since. */
  def: PipelineDefinition;
  force?: boolean;
  dryRun?: boolean;
  /** This run's item events (the pipeline's counters get them too). */
  events?: PassEvents;
  /** Aborted to cancel: a queued run never starts, a running one drains like SIGTERM. */
  signal: AbortSignal;
  /** The pass starts: its progress counters (`total` once the counting listing has ended). */
  onStart?(pass: PassProgress, def: PipelineDefinition): void;
}

interface QueuedPass {
  request: PassRequest;
  resolve(summary: RunSummary): void;
  reject(err: unknown): void;
}

export interface ReloadResult {
  at: string;
  result: 'ok' | 'invalid' | 'unchanged';
  hash?: string;
  error?: string;
}

export type { PassProgress };

interface Version {
  def: PipelineDefinition;
  schedule: Schedule;
  /** Embedded mode only (in cluster mode the workers run the items). */
  runner?: PipelineRunner;
  ledger?: SqliteLedger;
  /** Aborted to end the version: wakes the wait between passes. */
  stop: AbortController;
  /** Aborted when in-flight items must stop now (second signal, drain timeout), requested passes' too. */
  hardStop: AbortController;
  loop: Promise<void>;
}

export class PipelineSupervisor {
  readonly file: string;
  private readonly options: SupervisorOptions;
  private version: Version | undefined;
  private stateValue: SupervisorState = 'starting';
  private lastReloadValue: ReloadResult | undefined;
  private lastError: string | undefined;
  private readonly counters: PipelineCounters;
  private nextPassAt: Date | undefined;
  /** Serializes reloads and stop: one version change at a time. */
  private changing: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** Held from the first start to the stop, across reloads that keep the name and state folder. */
  private lock: PipelineLock | undefined;
  /** The pipeline name this file runs under, claimed before its version starts. */
  private claimed: string | undefined;
  /** Passes asked for (`requestPass`), in order; the loop runs them between scheduled passes. */
  private readonly requests: QueuedPass[] = [];
  /** Aborted to wake the loop's wait when a pass is asked for. */
  private wake = new AbortController();
  private doneResolve!: () => void;
  private doneReject!: (err: unknown) => void;
  /** Settles when the pipeline has nothing left to do (one-shot trigger) or was stopped. */
  readonly done: Promise<void>;

  constructor(file: string, options: SupervisorOptions) {
    this.file = file;
    this.options = options;
    this.counters = new PipelineCounters(() => this.name, options.metrics);
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
    return this.counters.pass;
  }

  /** Passes asked for that have not started yet. */
  get queuedPasses(): number {
    return this.requests.length;
  }

  /**
   * The file loaded with `vars` on top of the supervisor's, validated as `sluice validate --var`
   * would (throws `ConfigErrors` naming file:line:col). For a run asked for with variables.
   */
  loadWith(vars: Record<string, string>): Promise<PipelineDefinition> {
    return this.load(vars);
  }

  /**
   * Queues a pass (see PassRequest); resolves with its summary. Rejects with `SLUICE_E_ABORTED`
   * when it is cancelled before it starts or the pipeline stops first, and with the pass's error.
   */
  requestPass(request: PassRequest): Promise<RunSummary> {
    return new Promise<RunSummary>((resolve, reject) => {
      if (this.stopped) {
        reject(
          new SluiceError('SLUICE_E_ABORTED', `pipeline "${this.name}" is stopping; the run did not start`),
        );
        return;
      }
      const queued: QueuedPass = { request, resolve, reject };
      this.requests.push(queued);
      request.signal.addEventListener(
        'abort',
        () => {
          const at = this.requests.indexOf(queued);
          if (at < 0) return; // started already: the pass drains
          this.requests.splice(at, 1);
          reject(new SluiceError('SLUICE_E_ABORTED', 'cancelled before it started'));
        },
        { once: true },
      );
      this.wake.abort();
    });
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
      throw new SluiceError(
        'SLUICE_E_LOCKED',
        `pipeline name "${def.name}" is already declared by ${other}; ${this.file} was not started`,
        {
          context: {
            hint: 'each pipeline file needs its own `name:` (it keys the ledger, logs and metrics)',
          },
        },
      );
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
      return this.refused(
        at,
        err,
        this.name,
        'reload rejected: invalid pipeline file; the running version keeps running',
      );
    }
    if (this.version && this.version.def.hash === def.hash)
      return { at, result: 'unchanged', hash: def.hash };
    let lock: PipelineLock | undefined;
    try {
      lock = await this.claim(def);
    } catch (err) {
      return this.refused(
        at,
        err,
        def.name,
        'pipeline file refused: its pipeline runs elsewhere; the running version keeps running',
      );
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
    this.options.log.info(
      { pipeline: def.name, file: this.file, from: from ?? null, to: def.hash },
      from ? 'pipeline reloaded' : 'pipeline loaded',
    );
    return this.lastReloadValue;
  }

  /** A reload that does not take effect: reported, and the running version keeps running. */
  private refused(at: string, err: unknown, pipeline: string, message: string): ReloadResult {
    const error = err instanceof SluiceError ? err.toUserString() : errorMessage(err);
    this.lastReloadValue = { at, result: 'invalid', error };
    this.options.metrics?.reload(this.name, 'invalid');
    this.options.log.error(
      { pipeline, file: this.file, err: error, running: this.version?.def.hash ?? null },
      message,
    );
    if (!this.version) this.stateValue = 'invalid';
    return this.lastReloadValue;
  }

  /** Stops intake, lets in-flight items finish (drain timeout, then abort), closes. */
  stop(drainTimeoutMs?: number): Promise<void> {
    this.stopped = true;
    for (const q of this.requests.splice(0))
      q.reject(new SluiceError('SLUICE_E_ABORTED', `pipeline "${this.name}" stopped before the run started`));
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
    this.version.hardStop.abort();
    this.version.runner?.abortNow();
  }

  private load(extraVars?: Record<string, string>): Promise<PipelineDefinition> {
    const { registry, stateDir } = this.options;
    const vars = extraVars ? { ...this.options.vars, ...extraVars } : this.options.vars;
    return loadPipelineFile(this.file, { registry, vars, stateDir }).then((def) => {
      scheduleOf(def.trigger); // a bad cron expression is a config error too
      return def;
    });
  }

  private launch(def: PipelineDefinition): void {
    const schedule = this.options.once ? scheduleOf(undefined) : scheduleOf(def.trigger);
    const stop = new AbortController();
    const version = { def, schedule, stop, hardStop: new AbortController() } as Version;
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
    let runPass: () => Promise<RunSummary>;
    if (this.options.remote) {
      runPass = remotePasses(v.def, this.options.remote, v.stop.signal, this.counters);
    } else {
      const embedded = await embeddedPasses(v.def, this.options, this.counters);
      v.ledger = embedded.ledger;
      v.runner = embedded.runner;
      runPass = embedded.runPass;
    }
    const announce = this.options.announce || v.schedule.description !== 'once';
    log[announce ? 'info' : 'debug'](
      { file: this.file, hash: v.def.hash, trigger: v.schedule.description },
      'pipeline started',
    );
    let due: Date | undefined = new Date();
    for (;;) {
      if (v.stop.signal.aborted) return;
      const requested = this.requests.shift();
      if (requested) {
        await this.runRequested(v, requested, log);
        continue;
      }
      if (due === undefined) {
        // Nothing scheduled any more: the pipeline has finished, but passes can still be asked for.
        this.stateValue = 'finished';
        this.nextPassAt = undefined;
        this.doneResolve();
        await this.idle(v);
        continue;
      }
      if (due.getTime() > Date.now()) {
        this.stateValue = 'waiting';
        this.nextPassAt = due;
        await this.idle(v, due);
        continue;
      }
      this.stateValue = 'running';
      this.nextPassAt = undefined;
      const pass = this.counters.passStarted();
      if (this.options.trackProgress && v.runner) void countTotals(v.runner, v.def, pass);
      let summary: RunSummary | undefined;
      try {
        summary = await runPass();
      } catch (err) {
        if (v.schedule.nextAfter(due) === undefined) throw err; // one-shot: the caller reports it
        this.lastError = err instanceof SluiceError ? err.toUserString() : errorMessage(err);
        log.error({ err: this.lastError }, 'pass failed; the next one runs at its due time');
      }
      this.counters.passEnded();
      if (summary) {
        this.counters.passFinished(summary);
        this.options.onSummary?.(summary, this);
      }
      if (v.stop.signal.aborted) return;
      const { skipped, next } = skipMissed(v.schedule, due, new Date());
      if (skipped > 0) {
        this.counters.passesSkipped(skipped);
        log.warn(
          { skipped, trigger: v.schedule.description },
          'the pass ran past its next due time: skipped, passes never overlap',
        );
      }
      due = next;
    }
  }

  /** Waits until `until` (or for good), a requested pass, or the version's end. */
  private async idle(v: Version, until?: Date): Promise<void> {
    if (this.requests.length > 0) return;
    this.wake = new AbortController();
    const signal = AbortSignal.any([v.stop.signal, this.wake.signal]);
    const ms = until ? Math.max(0, until.getTime() - Date.now()) : Number.POSITIVE_INFINITY;
    await sleep(ms, signal).catch(() => undefined);
  }

  /** Runs one requested pass in version `v`'s loop (see PassRequest). */
  private async runRequested(v: Version, queued: QueuedPass, log: Logger): Promise<void> {
    const { request } = queued;
    if (request.signal.aborted) {
      queued.reject(new SluiceError('SLUICE_E_ABORTED', 'cancelled before it started'));
      return;
    }
    this.stateValue = 'running';
    this.nextPassAt = undefined;
    try {
      // Asked for under an older text of the file: it runs the current one, with its variables.
      const def = request.def.hash === v.def.hash ? request.def : await this.load(request.vars);
      const pass = this.counters.passStarted();
      request.onStart?.(pass, def);
      log.info(
        { vars: Object.keys(request.vars), force: request.force === true, dryRun: request.dryRun === true },
        'requested pass started',
      );
      const summary = await oneOffPass(
        def,
        {
          log: this.options.log,
          dryRun: request.dryRun,
          force: request.force,
          trackProgress: this.options.trackProgress,
          remote: this.options.remote,
          locked: this.lock?.covers(def) === true,
        },
        request.events ? teeEvents(this.counters, request.events) : this.counters,
        pass,
        { drain: AbortSignal.any([request.signal, v.stop.signal]), abort: v.hardStop.signal },
      );
      this.counters.passFinished(summary);
      this.options.onSummary?.(summary, this);
      queued.resolve(summary);
    } catch (err) {
      const error = err instanceof SluiceError ? err.toUserString() : errorMessage(err);
      this.counters.passEnded();
      log.error({ err: error }, 'requested pass failed');
      queued.reject(err);
    }
    // The loop sets the state again (waiting, finished, running) as it goes on.
  }

  /** Ends a version: intake stops, its pass returns (drained or aborted), then it is closed. */
  private async retire(v: Version, drainTimeoutMs = v.def.policy.drainTimeoutMs): Promise<void> {
    if (this.version === v) this.stateValue = 'draining';
    const log = this.options.log.child({ pipeline: v.def.name });
    const inFlight = v.runner?.activeItems ?? 0;
    if (inFlight > 0)
      log.info({ inFlight, hash: v.def.hash }, 'draining: in-flight items finish, no new ones start');
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
      log.warn(
        { drainTimeoutMs },
        'drain timeout: aborting in-flight items (they are redone later, nothing half-written is kept)',
      );
      v.hardStop.abort();
      v.runner?.abortNow();
      await v.loop;
    }
    await v.runner?.close();
    await v.ledger?.close();
    if (this.version === v) this.version = undefined;
    log[this.options.announce || v.schedule.description !== 'once' ? 'info' : 'debug'](
      { hash: v.def.hash },
      'pipeline version stopped',
    );
  }

  /** Everything /status and the status page show about this pipeline. */
  status() {
    const def = this.version?.def;
    return {
      name: this.name,
      file: this.file,
      state: this.stateValue,
      hash: def?.hash ?? null,
      trigger: this.version?.schedule.description ?? null,
      nextPassAt: this.nextPassAt?.toISOString() ?? null,
      queuedRuns: this.requests.length,
      inFlight: (this.version?.runner?.inFlightItems ?? []).map((i) => ({
        source: i.source,
        path: i.path,
        size: i.size ?? null,
        bytesRead: i.bytesRead,
        progress: i.size ? Math.min(1, i.bytesRead / i.size) : null,
        ms: Math.round(i.ms),
      })),
      inFlightCount: this.inFlight,
      ...this.counters.snapshot(),
      lastError: this.lastError ?? null,
      lastReload: this.lastReloadValue ?? null,
    };
  }
}

export type PipelineStatus = ReturnType<PipelineSupervisor['status']>;
