/**
 * Passes asked for outside the schedule (the control API), waiting for a pipeline's loop. The
 * loop runs them one at a time between scheduled passes — after the pass in progress, never
 * beside it, in the order asked.
 */
import type { PipelineDefinition } from '../config/load.js';
import { SluiceError } from '../errors.js';
import type { PassProgress } from '../observe/pipeline-counters.js';
import type { RunSummary } from '../observe/run-summary.js';
import type { PassEvents } from './pass-modes.js';
import { sleep } from './timing.js';

/**
 * A pass asked for: it runs with its own runner (the file loaded with the run's variables,
 * `force`, `dryRun`), the pipeline's lock and ledger.
 */
export interface PassRequest {
  /** The run's `${VAR}` values, on top of the supervisor's (`--var`). */
  vars: Record<string, string>;
  /** The file loaded with them when the run was asked for; reloaded if the file changed since. */
  def: PipelineDefinition;
  force?: boolean;
  dryRun?: boolean;
  /** The control API run this pass is (cluster mode tags its jobs with it). */
  runId?: string;
  /** This run's item events (the pipeline's counters get them too). */
  events?: PassEvents;
  /** Aborted to cancel: a queued run never starts, a running one drains like SIGTERM. */
  signal: AbortSignal;
  /** The pass starts: its progress counters (`total` once the counting listing has ended). */
  onStart?(pass: PassProgress, def: PipelineDefinition): void;
}

export interface QueuedPass {
  request: PassRequest;
  resolve(summary: RunSummary): void;
  reject(err: unknown): void;
}

export class PassQueue {
  private readonly queued: QueuedPass[] = [];
  /** Aborted to wake the loop's wait when a pass is asked for. */
  private wake = new AbortController();

  get length(): number {
    return this.queued.length;
  }

  /**
   * Queues `request`; resolves with its summary once the loop ran it. Rejects with
   * `SLUICE_E_ABORTED` when it is cancelled before it starts.
   */
  add(request: PassRequest): Promise<RunSummary> {
    return new Promise<RunSummary>((resolve, reject) => {
      const queued: QueuedPass = { request, resolve, reject };
      this.queued.push(queued);
      request.signal.addEventListener(
        'abort',
        () => {
          const at = this.queued.indexOf(queued);
          if (at < 0) return; // started already: the pass drains
          this.queued.splice(at, 1);
          reject(new SluiceError('SLUICE_E_ABORTED', 'cancelled before it started'));
        },
        { once: true },
      );
      this.wake.abort();
    });
  }

  /** The next pass to run, if any. */
  next(): QueuedPass | undefined {
    return this.queued.shift();
  }

  /** Waits until `until` (or for good), a pass asked for, or `stop`. */
  async wait(stop: AbortSignal, until?: Date): Promise<void> {
    if (this.queued.length > 0) return;
    this.wake = new AbortController();
    const signal = AbortSignal.any([stop, this.wake.signal]);
    const ms = until ? Math.max(0, until.getTime() - Date.now()) : Number.POSITIVE_INFINITY;
    await sleep(ms, signal).catch(() => undefined);
  }

  /** Every pass still waiting fails with `why` (the pipeline stops). */
  cancelAll(why: string): void {
    for (const q of this.queued.splice(0)) q.reject(new SluiceError('SLUICE_E_ABORTED', why));
  }
}
