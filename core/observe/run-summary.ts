/**
 * What one pass reports: the summary every output prints (terminal, JSON, status page,
 * metrics), the plan of a dry run, and the per-item events progress displays follow.
 */
import type { SummaryFigure } from '../plugin-api.js';

export interface PlanEntry {
  source: string;
  path: string;
  /** Sink-relative destinations; empty when the item was filtered out. */
  destinations: string[];
  action: 'write' | 'skip-done' | 'finalize-only' | 'filtered' | 'failed' | 'parked';
  bytes?: number;
  error?: string;
  /** Ids of the steps the item went through (a step whose `when` did not match it is absent). */
  steps?: string[];
  /**
   * Why a filtered item is left: the filter and its values (`min_age: 10m (modified 2m ago)`,
   * `exclude: [*.tmp]`, `steps[0].filter {min_size: 5MiB}`).
   */
  reason?: string;
  /** Each destination at each sink: the sink's step id and where the file would land. */
  sinks?: Array<{ sink: string; location: string }>;
  /** What the source's after_success does with the file once delivered. */
  afterSuccess?: 'keep' | 'delete' | { move_to: string };
}

export interface RunSummary {
  pipeline: string;
  /** Listed items finalized in this pass. */
  ok: number;
  failed: number;
  /** Listed items skipped because the ledger has them finalized. */
  skipped: number;
  /**
   * Listed items held back because they failed for good before (policy.failed): counted here,
   * not as failures, so a pass with only parked items is green.
   */
  parked: number;
  /** The parked items by name (the first few), with the reason and when they failed. */
  parkedItems: ParkedItem[];
  /**
   * Of the `ok` items, those every sink already held (`if_exists: skip|fail`, found by the
   * destination pre-check): finalized without reading them.
   */
  alreadyAtDestination: number;
  /**
   * For sources with several roots (`prefixes:` / `paths:`): the `ok` items per root they were
   * listed under, in the order first served (with `match: first`, which root served them).
   */
  servedFrom: Array<{ source: string; root: string; items: number }>;
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
  /**
   * Where the pass's report (`report:`) was written, or why it could not be: set after the
   * report is written, so the report itself never holds it.
   */
  report?: PassReport;
}

export type PassReport =
  | { destination: string; location: string }
  | { destination?: string; code: string; error: string };

export interface ParkedItem {
  source: string;
  path: string;
  error: string;
  /** When it failed (ISO 8601). */
  since: string;
}

export interface RunEvents {
  'item:start': [{ source: string; path: string; size?: number }];
  'item:done': [{ source: string; path: string; ms: number; bytes: number; bytesIn: number }];
  'item:skipped': [{ source: string; path: string }];
  'item:parked': [ParkedItem];
  'item:failed': [{ source: string; path: string; error: string; code: string }];
  'item:retry': [{ source: string; path: string; attempt: number; delayMs: number; error: string }];
}

const MAX_SLOWEST = 5;
/** Parked items a summary lists by name (the count is exact; the list stays small). */
export const MAX_PARKED_LISTED = 50;

/** A zeroed summary for one pass. */
export function newSummary(pipeline: string, dryRun: boolean): RunSummary {
  return {
    pipeline,
    ok: 0,
    failed: 0,
    skipped: 0,
    parked: 0,
    parkedItems: [],
    alreadyAtDestination: 0,
    servedFrom: [],
    filtered: 0,
    filesWritten: 0,
    bytesIn: 0,
    bytesOut: 0,
    compression: { bytesIn: 0, bytesOut: 0 },
    retries: 0,
    durationMs: 0,
    interrupted: false,
    dryRun,
    failures: [],
    slowest: [],
    plan: [],
  };
}

export function addFigure(summary: RunSummary, figure: SummaryFigure): void {
  if (figure.kind === 'compression') {
    summary.compression.bytesIn += figure.bytesIn;
    summary.compression.bytesOut += figure.bytesOut;
  }
}

/** Counts an item delivered from `root` of a multi-root source. */
export function noteServedFrom(summary: RunSummary, source: string, root: string): void {
  const entry = summary.servedFrom.find((e) => e.source === source && e.root === root);
  if (entry) entry.items++;
  else summary.servedFrom.push({ source, root, items: 1 });
}

/** Keeps the few slowest items of the pass, slowest first. */
export function noteSlowest(summary: RunSummary, path: string, ms: number): void {
  const list = summary.slowest;
  if (list.length < MAX_SLOWEST || ms > list[list.length - 1].ms) {
    list.push({ path, ms: Math.round(ms) });
    list.sort((a, b) => b.ms - a.ms);
    list.length = Math.min(list.length, MAX_SLOWEST);
  }
}

/**
 * Adds what `from` counted to `into`: the pass of a thread pool (runtime/pool.ts) is the sum of
 * what each thread counted. `durationMs`, `interrupted` and `report` stay `into`'s own.
 */
export function mergeSummary(into: RunSummary, from: RunSummary): void {
  into.ok += from.ok;
  into.failed += from.failed;
  into.skipped += from.skipped;
  into.parked += from.parked;
  into.parkedItems.push(
    ...from.parkedItems.slice(0, Math.max(0, MAX_PARKED_LISTED - into.parkedItems.length)),
  );
  into.alreadyAtDestination += from.alreadyAtDestination;
  for (const served of from.servedFrom) {
    const entry = into.servedFrom.find((e) => e.source === served.source && e.root === served.root);
    if (entry) entry.items += served.items;
    else into.servedFrom.push({ ...served });
  }
  into.filtered += from.filtered;
  into.filesWritten += from.filesWritten;
  into.bytesIn += from.bytesIn;
  into.bytesOut += from.bytesOut;
  into.compression.bytesIn += from.compression.bytesIn;
  into.compression.bytesOut += from.compression.bytesOut;
  into.retries += from.retries;
  into.failures.push(...from.failures);
  for (const slow of from.slowest) noteSlowest(into, slow.path, slow.ms);
  into.plan.push(...from.plan);
}
