/** What travels through the queue: item descriptions in, small outcomes back. Never bytes. */
import type { ItemDescription, RunSummary } from '../runtime/runner.js';

export interface ItemJobData {
  /** The pipeline version (config hash) the item was listed under: it is processed under it. */
  hash: string;
  item: ItemDescription;
  /** `run --force`: process even when the ledger has the item finalized. */
  force?: boolean;
  /**
   * The control API run the item was listed for: the worker reports the item's events to that
   * run's stream (see run-events.ts). Absent for scheduled passes and `run --cluster`.
   */
  run?: string;
  /**
   * That run's variables (`{"vars": …}` of the API): the worker loads the pipeline with them on
   * top of its own, as the lister did, so the item is read and written where the run points.
   */
  vars?: Record<string, string>;
}

/** A job's return value: what the pass summary needs from one item. */
export interface ItemOutcome {
  outcome: 'ok' | 'failed' | 'skipped' | 'filtered';
  bytesIn: number;
  bytesOut: number;
  filesWritten: number;
  /** Bytes into and out of compression steps (the summary's compression ratio). */
  compression?: { bytesIn: number; bytesOut: number };
  retries: number;
  ms: number;
  failure?: { code: string; error: string };
}

/** Reads the outcome of one item out of the summary it was processed with. */
export function outcomeOf(summary: RunSummary, ms: number): ItemOutcome {
  const outcome =
    summary.failed > 0 ? 'failed' : summary.ok > 0 ? 'ok' : summary.skipped > 0 ? 'skipped' : 'filtered';
  const failure = summary.failures[0];
  return {
    outcome,
    bytesIn: summary.bytesIn,
    bytesOut: summary.bytesOut,
    filesWritten: summary.filesWritten,
    ...(summary.compression.bytesIn > 0 ? { compression: { ...summary.compression } } : {}),
    retries: summary.retries,
    ms: Math.round(ms),
    ...(failure ? { failure: { code: failure.code, error: failure.error } } : {}),
  };
}

const MAX_SLOWEST = 5;

/** Adds one item's outcome to a pass summary. */
export function addOutcome(
  summary: RunSummary,
  where: { source: string; path: string },
  o: ItemOutcome,
): void {
  summary[o.outcome]++;
  summary.bytesIn += o.bytesIn;
  summary.bytesOut += o.bytesOut;
  summary.filesWritten += o.filesWritten;
  summary.compression.bytesIn += o.compression?.bytesIn ?? 0;
  summary.compression.bytesOut += o.compression?.bytesOut ?? 0;
  summary.retries += o.retries;
  if (o.outcome === 'failed') {
    summary.failures.push({
      ...where,
      code: o.failure?.code ?? 'SLUICE_E_INTERNAL',
      error: o.failure?.error ?? 'failed',
    });
  }
  if (o.outcome === 'ok') {
    const list = summary.slowest;
    if (list.length < MAX_SLOWEST || o.ms > list[list.length - 1].ms) {
      list.push({ path: where.path, ms: o.ms });
      list.sort((a, b) => b.ms - a.ms);
      list.length = Math.min(list.length, MAX_SLOWEST);
    }
  }
}
