/**
 * What a running pipeline has done, as `/status`, the status page, progress and metrics show
 * it: totals since start, the pass in progress, throughput over the last minute, the recent
 * failures. The supervisor feeds it from the runner's events (embedded) or from job outcomes
 * (cluster); it is one `PassEvents` sink for both.
 */
import type { SluiceMetrics } from './metrics.js';
import type { RunSummary } from './run-summary.js';

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

const MAX_FAILURES = 20;
const RATE_WINDOW_MS = 60_000;

export class PipelineCounters {
  readonly totals = {
    ok: 0,
    failed: 0,
    skipped: 0,
    filtered: 0,
    retries: 0,
    bytesIn: 0,
    bytesOut: 0,
    passes: 0,
    passesSkipped: 0,
  };
  /** The pass in progress (or the last one, until the next starts). */
  pass: PassProgress | undefined;
  private readonly failures: Array<{
    at: string;
    source: string;
    path: string;
    code: string;
    error: string;
  }> = [];
  private readonly recentDone: Array<{ t: number; bytes: number }> = [];
  private lastSuccessAt: string | undefined;
  private lastPass: RunSummary | undefined;

  constructor(
    private readonly pipeline: () => string,
    private readonly metrics: SluiceMetrics | undefined,
  ) {}

  passStarted(): PassProgress {
    this.pass = {
      startedAt: Date.now(),
      done: 0,
      failed: 0,
      skipped: 0,
      bytesIn: 0,
      bytesOut: 0,
      total: 0,
      totalBytes: 0,
      counted: false,
    };
    return this.pass;
  }

  passFinished(summary: RunSummary): void {
    this.lastPass = summary;
    this.totals.passes++;
    this.totals.filtered += summary.filtered;
    this.metrics?.itemOutcome(summary.pipeline, 'filtered', summary.filtered);
  }

  passesSkipped(n: number): void {
    this.totals.passesSkipped += n;
    this.metrics?.passSkipped(this.pipeline(), n);
  }

  done(e: { ms: number; bytesIn: number; bytesOut: number }): void {
    this.totals.ok++;
    this.totals.bytesIn += e.bytesIn;
    this.totals.bytesOut += e.bytesOut;
    if (this.pass) {
      this.pass.done++;
      this.pass.bytesIn += e.bytesIn;
      this.pass.bytesOut += e.bytesOut;
    }
    this.lastSuccessAt = new Date().toISOString();
    const now = Date.now();
    this.recentDone.push({ t: now, bytes: e.bytesOut });
    while (this.recentDone.length > 0 && now - this.recentDone[0].t > RATE_WINDOW_MS) this.recentDone.shift();
    this.metrics?.itemDone(this.pipeline(), e.ms, e.bytesIn, e.bytesOut);
  }

  failed(e: { source: string; path: string; code: string; error: string }): void {
    this.totals.failed++;
    if (this.pass) this.pass.failed++;
    this.failures.unshift({ at: new Date().toISOString(), ...e });
    this.failures.length = Math.min(this.failures.length, MAX_FAILURES);
    this.metrics?.itemOutcome(this.pipeline(), 'failed');
  }

  skipped(): void {
    this.totals.skipped++;
    if (this.pass) this.pass.skipped++;
    this.metrics?.itemOutcome(this.pipeline(), 'skipped');
  }

  retried(): void {
    this.totals.retries++;
    this.metrics?.retry(this.pipeline());
  }

  /** The counters' part of a pipeline's status. */
  snapshot() {
    const now = Date.now();
    const recent = this.recentDone.filter((d) => now - d.t <= RATE_WINDOW_MS);
    const span = recent.length > 0 ? Math.max(1, now - Math.min(recent[0].t, now - 1000)) / 1000 : 1;
    return {
      totals: { ...this.totals },
      throughput: {
        filesPerMinute: Math.round((recent.length / span) * 60 * 10) / 10,
        bytesPerSecond: Math.round(recent.reduce((n, d) => n + d.bytes, 0) / span),
      },
      lastSuccessAt: this.lastSuccessAt ?? null,
      lastPass: this.lastPass
        ? {
            ok: this.lastPass.ok,
            failed: this.lastPass.failed,
            skipped: this.lastPass.skipped,
            durationMs: Math.round(this.lastPass.durationMs),
          }
        : null,
      recentFailures: [...this.failures],
    };
  }
}
