/**
 * What a running pipeline has done, as `/status`, the status page, progress and metrics show
 * it: totals since start, the pass in progress, throughput over the last minute, the recent
 * failures. The supervisor feeds it from the runner's events (embedded) or from job outcomes
 * (cluster); it is one `PassEvents` sink for both.
 */
import type { SluiceMetrics } from './metrics.js';
import type { ParkedItem, RunSummary } from './run-summary.js';

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

/** What a pass's progress shows: percent and ETA once its total is known, rates since it began. */
export interface PassFigures {
  /** Items listed by the counting listing; null until it has ended (or for a watching source). */
  total: number | null;
  done: number;
  failed: number;
  skipped: number;
  /** 0 until the total is known; never 100 before the pass has ended. */
  percent: number;
  bytesIn: number;
  bytesOut: number;
  /** Bytes written per second and items per second, since the pass began. */
  bytesPerSecond: number;
  itemsPerSecond: number;
  etaSeconds: number | null;
}

export function passFigures(pass: PassProgress, endedAt?: number): PassFigures {
  const elapsed = Math.max(0.001, ((endedAt ?? Date.now()) - pass.startedAt) / 1000);
  const handled = pass.done + pass.failed + pass.skipped;
  const total = pass.counted ? pass.total : null;
  const ratio = total === null ? 0 : total === 0 ? 1 : Math.min(1, handled / total);
  const itemsPerSecond = handled / elapsed;
  const left = total === null ? null : Math.max(0, total - handled);
  return {
    total,
    done: pass.done,
    failed: pass.failed,
    skipped: pass.skipped,
    // One decimal; an item a step fans out or filters shifts the count, so 100 waits for the end.
    percent: endedAt === undefined ? Math.min(99.9, Math.floor(ratio * 1000) / 10) : 100,
    bytesIn: pass.bytesIn,
    bytesOut: pass.bytesOut,
    bytesPerSecond: Math.round(pass.bytesOut / elapsed),
    itemsPerSecond: Math.round(itemsPerSecond * 100) / 100,
    etaSeconds:
      left === null || endedAt !== undefined
        ? null
        : itemsPerSecond > 0
          ? Math.ceil(left / itemsPerSecond)
          : null,
  };
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
  /** The files that failed lately, each once: the latest failure, since when and how often. */
  private readonly failures: Array<{
    at: string;
    firstAt: string;
    count: number;
    source: string;
    path: string;
    code: string;
    error: string;
  }> = [];
  private readonly recentDone: Array<{ t: number; bytes: number }> = [];
  private lastSuccessAt: string | undefined;
  private lastPass: RunSummary | undefined;
  private lastPassEndedAt: string | undefined;
  /**
   * The items the last pass held back (parked after failing for good): each once, whatever the
   * number of passes, with its reason and since when; bounded by the summary's list.
   */
  private parked: { count: number; items: ParkedItem[] } = { count: 0, items: [] };
  /** When the pass in `pass` ended; undefined while it runs. */
  private passEndedAt: number | undefined;

  constructor(
    private readonly pipeline: () => string,
    private readonly metrics: SluiceMetrics | undefined,
  ) {}

  passStarted(): PassProgress {
    this.passEndedAt = undefined;
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

  /** The pass in progress ended without a summary (it threw). */
  passEnded(): void {
    this.passEndedAt ??= Date.now();
  }

  passFinished(summary: RunSummary): void {
    this.lastPass = summary;
    this.lastPassEndedAt = new Date().toISOString();
    this.passEnded();
    this.totals.passes++;
    this.totals.filtered += summary.filtered;
    // A pass that listed nothing (interrupted) says nothing about what is parked.
    if (!summary.interrupted) this.parked = { count: summary.parked, items: [...summary.parkedItems] };
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
    // A file failing pass after pass is one row with a count, not a row per pass.
    const at = new Date().toISOString();
    const index = this.failures.findIndex((f) => f.source === e.source && f.path === e.path);
    const earlier = index >= 0 ? this.failures.splice(index, 1)[0] : undefined;
    const { source, path, code, error } = e;
    this.failures.unshift({
      at,
      firstAt: earlier?.firstAt ?? at,
      count: (earlier?.count ?? 0) + 1,
      source,
      path,
      code,
      error,
    });
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
      /** The pass in progress (percent, ETA); null between passes. */
      currentPass:
        this.pass && this.passEndedAt === undefined
          ? { startedAt: new Date(this.pass.startedAt).toISOString(), ...passFigures(this.pass) }
          : null,
      lastPass: this.lastPass
        ? {
            endedAt: this.lastPassEndedAt,
            ok: this.lastPass.ok,
            failed: this.lastPass.failed,
            skipped: this.lastPass.skipped,
            parked: this.lastPass.parked,
            durationMs: Math.round(this.lastPass.durationMs),
          }
        : null,
      recentFailures: [...this.failures],
      parked: { count: this.parked.count, items: [...this.parked.items] },
    };
  }
}
