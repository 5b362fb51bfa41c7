/**
 * One version of a pipeline file (its text as loaded): the loop of its passes over time —
 * scheduled ones by its trigger, never overlapping (due times that fall inside a running pass
 * are skipped and logged), and the ones asked for from outside in between — and its retirement
 * (stop intake, drain, close) when the file changes or the pipeline stops.
 */
import type { PipelineDefinition } from '../config/load.js';
import { type Schedule, skipMissed } from '../config/trigger.js';
import { errorMessage, SluiceError } from '../errors.js';
import type { SqliteLedger } from '../ledger/sqlite.js';
import type { Logger } from '../observe/logger.js';
import type { PassProgress, PipelineCounters } from '../observe/pipeline-counters.js';
import type { PassReport, RunSummary } from '../observe/run-summary.js';
import {
  countTotals,
  embeddedPasses,
  oneOffPass,
  type RemotePasses,
  remotePasses,
  teeEvents,
} from './pass-modes.js';
import type { PassQueue, QueuedPass } from './pass-queue.js';
import type { PoolOptions } from './pool.js';
import { failedPassSummary, writePassReport } from './report.js';
import type { PipelineRunner } from './runner.js';
import { sleep } from './timing.js';

export type VersionState = 'running' | 'waiting' | 'draining' | 'finished';

/** What a version needs of the pipeline it belongs to (the supervisor). */
export interface VersionHost {
  readonly file: string;
  readonly options: {
    log: Logger;
    dryRun?: boolean;
    force?: boolean;
    trackProgress?: boolean;
    pool?: PoolOptions;
    announce?: boolean;
    remote?: RemotePasses;
  };
  readonly counters: PipelineCounters;
  readonly requests: PassQueue;
  setState(state: VersionState, nextPassAt?: Date): void;
  /** Nothing scheduled any more (passes can still be asked for). */
  finished(): void;
  passFailed(error: string): void;
  summarized(summary: RunSummary): void;
  /** The file loaded with a run's variables on top of the pipeline's. */
  load(vars: Record<string, string>): Promise<PipelineDefinition>;
  /** Whether the pipeline already holds the lock `def` needs. */
  lockCovers(def: PipelineDefinition): boolean;
}

export class PipelineVersion {
  /** Embedded mode only (in cluster mode the workers run the items). */
  runner?: PipelineRunner;
  ledger?: SqliteLedger;
  /** Aborted to end the version: wakes the wait between passes. */
  readonly stop = new AbortController();
  /** Aborted when in-flight items must stop now (second signal, drain timeout), requested passes' too. */
  readonly hardStop = new AbortController();
  /** Settles when the loop has returned; rejects with what stopped a one-shot version. */
  readonly loop: Promise<void>;

  constructor(
    readonly def: PipelineDefinition,
    readonly schedule: Schedule,
    private readonly host: VersionHost,
    /** When its first pass is due (trigger.ts: firstPassDue); undefined: none scheduled. */
    private readonly firstDue: Date | undefined = new Date(),
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const log = this.host.options.log.child({ pipeline: this.def.name });
    let runPass: () => Promise<RunSummary>;
    if (this.host.options.remote) {
      runPass = remotePasses(this.def, this.host.options.remote, this.stop.signal, this.host.counters);
    } else {
      const embedded = await embeddedPasses(this.def, this.host.options, this.host.counters);
      this.ledger = embedded.ledger;
      this.runner = embedded.runner;
      runPass = embedded.runPass;
    }
    const announce = this.host.options.announce || this.schedule.description !== 'once';
    log[announce ? 'info' : 'debug'](
      { file: this.host.file, hash: this.def.hash, trigger: this.schedule.description },
      'pipeline started',
    );
    let due: Date | undefined = this.firstDue;
    for (;;) {
      if (this.stop.signal.aborted) return;
      const requested = this.host.requests.next();
      if (requested) {
        await this.runRequested(requested, log);
        continue;
      }
      if (due === undefined) {
        // Nothing scheduled any more: the pipeline has finished, but passes can still be asked for.
        this.host.setState('finished');
        this.host.finished();
        await this.host.requests.wait(this.stop.signal);
        continue;
      }
      if (due.getTime() > Date.now()) {
        this.host.setState('waiting', due);
        await this.host.requests.wait(this.stop.signal, due);
        continue;
      }
      this.host.setState('running');
      const pass = this.host.counters.passStarted();
      if (this.host.options.trackProgress && this.runner) void countTotals(this.runner, this.def, pass);
      let summary: RunSummary | undefined;
      try {
        summary = await runPass();
      } catch (err) {
        const report = await this.report(this.def, pass, undefined, err);
        if (this.schedule.nextAfter(due) === undefined) throw err; // one-shot: the caller reports it
        const error = err instanceof SluiceError ? err.toUserString() : errorMessage(err);
        this.host.passFailed(error);
        log.error({ err: error }, 'pass failed; the next one runs at its due time');
        this.reportFailed(report);
      }
      const report = summary && (await this.report(this.def, pass, summary));
      this.host.counters.passEnded();
      if (summary) {
        this.host.counters.passFinished(summary);
        this.host.summarized(summary);
        this.reportFailed(report);
      }
      if (this.stop.signal.aborted) return;
      const { skipped, next } = skipMissed(this.schedule, due, new Date());
      if (skipped > 0) {
        this.host.counters.passesSkipped(skipped);
        log.warn(
          { skipped, trigger: this.schedule.description },
          'the pass ran past its next due time: skipped, passes never overlap',
        );
      }
      due = next;
    }
  }

  /** Runs one requested pass in version `v`'s loop (see PassRequest). */
  private async runRequested(queued: QueuedPass, log: Logger): Promise<void> {
    const { request } = queued;
    if (request.signal.aborted) {
      queued.reject(new SluiceError('SLUICE_E_ABORTED', 'cancelled before it started'));
      return;
    }
    this.host.setState('running');
    let started: { def: PipelineDefinition; pass: PassProgress } | undefined;
    try {
      // Asked for under an older text of the file: it runs the current one, with its variables.
      const def = request.def.hash === this.def.hash ? request.def : await this.host.load(request.vars);
      const pass = this.host.counters.passStarted();
      started = { def, pass };
      request.onStart?.(pass, def);
      log.info(
        { vars: Object.keys(request.vars), force: request.force === true, dryRun: request.dryRun === true },
        'requested pass started',
      );
      const summary = await oneOffPass(
        def,
        {
          log: this.host.options.log,
          dryRun: request.dryRun,
          force: request.force,
          trackProgress: this.host.options.trackProgress,
          pool: this.host.options.pool,
          remote: this.host.options.remote,
          locked: this.host.lockCovers(def),
          runId: request.runId,
          vars: request.vars,
        },
        request.events ? teeEvents(this.host.counters, request.events) : this.host.counters,
        pass,
        { drain: AbortSignal.any([request.signal, this.stop.signal]), abort: this.hardStop.signal },
      );
      const report = await this.report(def, pass, summary, undefined, request.dryRun);
      this.host.counters.passFinished(summary);
      this.host.summarized(summary);
      this.reportFailed(report);
      queued.resolve(summary);
    } catch (err) {
      const error = err instanceof SluiceError ? err.toUserString() : errorMessage(err);
      const report =
        started && (await this.report(started.def, started.pass, undefined, err, request.dryRun));
      this.host.counters.passEnded();
      log.error({ err: error }, 'requested pass failed');
      this.reportFailed(report);
      queued.reject(err);
    }
    // The loop sets the state again (waiting, finished, running) as it goes on.
  }

  /**
   * The pass's report (`report:`), once the pass has returned: its summary, or for a pass that
   * failed as a whole the counts it reached and the error. Written before the pass is announced
   * as ended, so `summary.report` says where it went.
   */
  private async report(
    def: PipelineDefinition,
    pass: PassProgress,
    summary: RunSummary | undefined,
    error?: unknown,
    dryRun = this.host.options.dryRun === true,
  ): Promise<PassReport | undefined> {
    if (!def.report) return undefined;
    return writePassReport(def, summary ?? failedPassSummary(def, dryRun, pass), {
      log: this.host.options.log,
      startedAt: new Date(pass.startedAt),
      error,
    });
  }

  /** A report that could not be written is alerted like a failed pass (after the pass's own alerts). */
  private reportFailed(report: PassReport | undefined): void {
    if (report && 'error' in report)
      this.host.passFailed(
        `the pass report was not written${report.destination ? ` to ${report.destination}` : ''} (what the pass delivered stays delivered): ${report.error}`,
      );
  }

  /** Ends a version: intake stops, its pass returns (drained or aborted), then it is closed. */
  async retire(drainTimeoutMs = this.def.policy.drainTimeoutMs): Promise<void> {
    this.host.setState('draining');
    const log = this.host.options.log.child({ pipeline: this.def.name });
    const inFlight = this.runner?.activeItems ?? 0;
    if (inFlight > 0)
      log.info({ inFlight, hash: this.def.hash }, 'draining: in-flight items finish, no new ones start');
    this.stop.abort();
    this.runner?.stopIntake();
    const timeout = new AbortController(); // cancelled once drained: a pending timer would keep the process alive
    const settled = await Promise.race([
      // A loop that failed has ended too (its error is the supervisor's to report, not the drain's).
      this.loop.then(
        () => true,
        () => true,
      ),
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
      this.hardStop.abort();
      this.runner?.abortNow();
      await this.loop.catch(() => undefined);
    }
    await this.runner?.close();
    await this.ledger?.close();
    log[this.host.options.announce || this.schedule.description !== 'once' ? 'info' : 'debug'](
      { hash: this.def.hash },
      'pipeline version stopped',
    );
  }
}
