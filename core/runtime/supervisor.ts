/**
 * One pipeline file kept running: its name claimed and lock held, its current version (loaded
 * text) running its passes (version.ts: the trigger loop, passes asked for from outside in
 * between, never overlapping), hot reload (parse + validate the new text; invalid → reported,
 * the running version keeps running; valid → the old version stops intake and drains its
 * in-flight items, then the new version starts), stop, and what /status shows.
 *
 * Reloading never loses or repeats work: the ledger is per pipeline name, items the old
 * version finalized are skipped by the new one, and the new version only starts after the
 * old one's pass has fully returned (no item is in flight in two versions at once).
 */
import { basename } from 'node:path';
import { PipelineAlerts } from '../alerts/alerts.js';
import type { PipelineDefinition } from '../config/load.js';
import { firstPassDue, type ReplacedVersion, scheduleOf } from '../config/trigger.js';
import { errorMessage, SluiceError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { SluiceMetrics } from '../observe/metrics.js';
import { type PassProgress, PipelineCounters } from '../observe/pipeline-counters.js';
import type { PluginRegistry } from '../registry.js';
import type { PassEvents, RemotePasses } from './pass-modes.js';
import { PassQueue, type PassRequest } from './pass-queue.js';
import { PipelineLock } from './pipeline-lock.js';
import type { PoolOptions } from './pool.js';
import { StartCheck } from './preflight.js';
import { loadPipelineFile } from './run-file.js';
import type { RunSummary } from './runner.js';
import { sleep } from './timing.js';
import { PipelineVersion, type VersionHost } from './version.js';

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
  /** `--set PATH=VALUE` flags applied to the file at every load. */
  set?: string[];
  /** One pass whatever the trigger says (`sluice run --once`). */
  once?: boolean;
  dryRun?: boolean;
  force?: boolean;
  metrics?: SluiceMetrics;
  /** Count bytes read per in-flight item (progress display, /status). */
  trackProgress?: boolean;
  /** Where pool threads start (the CLI's entry): items of a pass run on `policy.threads` threads. */
  pool?: PoolOptions;
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
  /**
   * The cheap pre-flight check of every connection before a version starts (log in, the root
   * exists); `false` with `--no-check`. Sources only in dry runs and cluster mode (no sink is
   * written from here then).
   */
  preflight?: boolean;
}

export type { PassEvents, PassRequest, RemotePasses };

export interface ReloadResult {
  at: string;
  result: 'ok' | 'invalid' | 'unchanged';
  hash?: string;
  error?: string;
}

export type { PassProgress };

export class PipelineSupervisor {
  readonly file: string;
  private readonly options: SupervisorOptions;
  private version: PipelineVersion | undefined;
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
  private readonly requests = new PassQueue();
  /** What a version of this file sees of it. */
  private readonly versionHost: VersionHost;
  /** The file's alerts, kept across reloads (their rate limit too); none in dry runs. */
  private readonly alerts: PipelineAlerts | undefined;
  /** The pre-flight check before a version starts; a start it refused is tried again later. */
  private readonly startCheck: StartCheck;
  private doneResolve!: () => void;
  private doneReject!: (err: unknown) => void;
  /** Settles when the pipeline has nothing left to do (one-shot trigger) or was stopped. */
  readonly done: Promise<void>;

  constructor(file: string, options: SupervisorOptions) {
    this.file = file;
    this.options = options;
    this.counters = new PipelineCounters(() => this.name, options.metrics);
    this.alerts = options.dryRun ? undefined : new PipelineAlerts({ log: options.log, sleep });
    this.startCheck = new StartCheck(options, () => void this.reload());
    this.versionHost = {
      file,
      options,
      counters: this.counters,
      requests: this.requests,
      setState: (state, nextPassAt) => {
        this.stateValue = state;
        this.nextPassAt = nextPassAt;
      },
      finished: () => this.doneResolve(),
      passFailed: (error) => {
        this.lastError = error;
        this.alerts?.passFailed(error);
      },
      summarized: (summary) => {
        this.options.onSummary?.(summary, this);
        this.alerts?.passEnded(summary);
      },
      load: (vars) => this.load(vars),
      lockCovers: (def) => this.lock?.covers(def) === true,
    };
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

  get ledger(): PipelineVersion['ledger'] | 'cluster' {
    return this.options.remote ? 'cluster' : this.version?.ledger; // cluster: workers' passes, Redis ledger
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
    if (this.stopped) {
      return Promise.reject(
        new SluiceError('SLUICE_E_ABORTED', `pipeline "${this.name}" is stopping; the run did not start`),
      );
    }
    return this.requests.add(request);
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
    try {
      await this.startCheck.run(loaded);
    } catch (err) {
      // No pass could start: alerted as a failed pass, so a scheduled one-shot run is heard of.
      this.alerts?.configure(loaded, false);
      this.alerts?.passFailed(err instanceof SluiceError ? err.toUserString() : errorMessage(err));
      await this.alerts?.flush();
      throw err;
    }
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
    if (this.version && this.version.def.hash === def.hash) {
      // The last reload's state is the file's now: a rejected edit reverted is no longer rejected.
      this.lastReloadValue = { at, result: 'unchanged', hash: def.hash };
      return this.lastReloadValue;
    }
    this.startCheck.cancelRetry();
    try {
      await this.startCheck.run(def);
    } catch (err) {
      const retryAt = this.startCheck.retryLater(def);
      if (!this.version) this.nextPassAt = retryAt;
      return this.refused(
        at,
        err,
        def.name,
        this.version
          ? 'reload rejected: a connection failed its check; the running version keeps running'
          : `pipeline not started: a connection failed its check; tried again at ${retryAt.toISOString()}`,
        'failed',
      );
    }
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
    const replaced = this.version && {
      text: this.version.def.text,
      running: this.stateValue === 'running' || this.stateValue === 'draining',
      due: this.stateValue === 'waiting' ? this.nextPassAt : undefined,
    };
    if (this.version) await this.retire(this.version);
    if (lock !== this.lock) {
      this.lock?.release();
      this.lock = lock;
    }
    if (this.stopped) {
      this.releaseLock();
      return { at, result: 'unchanged' };
    }
    this.launch(def, replaced);
    this.lastReloadValue = { at, result: 'ok', hash: def.hash };
    this.options.metrics?.reload(def.name, 'ok');
    this.options.log.info(
      { pipeline: def.name, file: this.file, from: from ?? null, to: def.hash },
      from ? 'pipeline reloaded' : 'pipeline loaded',
    );
    return this.lastReloadValue;
  }

  /** A reload that does not take effect: reported, and the running version keeps running. */
  private refused(
    at: string,
    err: unknown,
    pipeline: string,
    message: string,
    state: SupervisorState = 'invalid',
  ): ReloadResult {
    const error = err instanceof SluiceError ? err.toUserString() : errorMessage(err);
    this.lastReloadValue = { at, result: 'invalid', error };
    this.options.metrics?.reload(this.name, 'invalid');
    this.options.log.error(
      { pipeline, file: this.file, err: error, running: this.version?.def.hash ?? null },
      message,
    );
    if (!this.version) {
      this.stateValue = state;
      if (state === 'failed') this.lastError = error;
    }
    this.alerts?.reloadRejected(this.file, error);
    return this.lastReloadValue;
  }

  /** Stops intake, lets in-flight items finish (drain timeout, then abort), closes. */
  stop(drainTimeoutMs?: number): Promise<void> {
    this.stopped = true;
    this.startCheck.cancelRetry();
    this.requests.cancelAll(`pipeline "${this.name}" stopped before the run started`);
    const next = this.changing.then(async () => {
      if (this.version) await this.retire(this.version, drainTimeoutMs);
      this.releaseLock();
      await this.alerts?.close();
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
    const { registry, stateDir, set } = this.options;
    const vars = extraVars ? { ...this.options.vars, ...extraVars } : this.options.vars;
    return loadPipelineFile(this.file, { registry, vars, stateDir, set }).then((def) => {
      scheduleOf(def.trigger); // a bad cron expression is a config error too
      return def;
    });
  }

  private launch(def: PipelineDefinition, replaced?: ReplacedVersion): void {
    const schedule = this.options.once ? scheduleOf(undefined) : scheduleOf(def.trigger);
    this.stateValue = 'starting';
    // Deadlines (`expect`) are watched only by a process that stays up.
    this.alerts?.configure(def, this.options.announce === true || schedule.description !== 'once');
    const due = firstPassDue(schedule, def.trigger, def.text, new Date(), replaced);
    const version = new PipelineVersion(def, schedule, this.versionHost, due);
    this.version = version;
    version.loop.catch((err) => {
      this.stateValue = 'failed';
      this.lastError = errorMessage(err);
      this.alerts?.passFailed(this.lastError);
      this.doneReject(err);
    });
  }

  /** Ends a version (drained, or aborted at the drain timeout) and forgets it. */
  private async retire(v: PipelineVersion, drainTimeoutMs?: number): Promise<void> {
    await v.retire(drainTimeoutMs);
    if (this.version === v) this.version = undefined;
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
