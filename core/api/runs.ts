/**
 * Runs asked for through the control API: the live record of each (a `PassEvents` sink that
 * follows the pass and feeds Server-Sent Events), and the recent runs kept in the pipeline's
 * state folder (`api-runs.jsonl`) so `GET /api/runs` survives a restart.
 */
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, SluiceError } from '../errors.js';
import { type PassFigures, type PassProgress, passFigures } from '../observe/pipeline-counters.js';
import { redact } from '../observe/redact.js';
import type { RunSummary } from '../observe/run-summary.js';
import { summaryJson } from '../observe/summary.js';
import type { PassEvents } from '../runtime/pass-modes.js';

export type RunState = 'queued' | 'listing' | 'running' | 'succeeded' | 'failed' | 'cancelled';
const ENDED: ReadonlySet<RunState> = new Set(['succeeded', 'failed', 'cancelled']);

/** What `GET /api/runs/{id}` answers (snake_case, as the OpenAPI document describes it). */
export interface RunRecord {
  id: string;
  pipeline: string;
  file: string;
  state: RunState;
  /** The run's variables, values redacted like every log line. */
  vars: Record<string, string>;
  force: boolean;
  dry_run: boolean;
  cancel_requested: boolean;
  requested_at: string;
  started_at: string | null;
  ended_at: string | null;
  total: number | null;
  done: number;
  failed: number;
  skipped: number;
  percent: number;
  bytes_in: number;
  bytes_out: number;
  bytes_per_second: number;
  items_per_second: number;
  eta_seconds: number | null;
  failures: Array<{ source: string; path: string; code: string; reason: string }>;
  /** Why the run could not run at all (lock held elsewhere, a listing error…). */
  error: string | null;
  summary: ReturnType<typeof summaryJson> | null;
}

/** Item events of a run, in the order they happen; SSE sends each as one event. */
export type RunEvent =
  | { type: 'started'; data: { source: string; path: string; size: number | null } }
  | { type: 'done'; data: { source: string | null; path: string | null; ms: number; bytes_out: number } }
  | { type: 'failed'; data: { source: string; path: string; code: string; reason: string } }
  | {
      type: 'retry';
      data: { source: string | null; path: string | null; attempt: number | null; reason: string | null };
    }
  | { type: 'state'; data: { state: RunState } };

const MAX_FAILURES = 200;
/** Item events kept per run, replayed to a client that connects late (or reconnects). */
const MAX_HISTORY = 5000;

/** One run: its state and figures, updated as its pass goes, and who listens for its events. */
export class RunTracker {
  readonly id = randomUUID();
  readonly cancel = new AbortController();
  private readonly record: RunRecord;
  private pass: PassProgress | undefined;
  private readonly listeners = new Set<(event: RunEvent, seq: number) => void>();
  private readonly history: Array<{ seq: number; event: RunEvent }> = [];
  private seq = 0;
  /** The highest percent shown so far: what a client sees never goes back. */
  private shownPercent = 0;

  constructor(
    init: { pipeline: string; file: string; vars: Record<string, string>; force: boolean; dryRun: boolean },
    readonly stateDir: string,
  ) {
    this.record = {
      id: this.id,
      pipeline: init.pipeline,
      file: init.file,
      state: 'queued',
      vars: Object.fromEntries(Object.entries(init.vars).map(([k, v]) => [k, redact(v)])),
      force: init.force,
      dry_run: init.dryRun,
      cancel_requested: false,
      requested_at: new Date().toISOString(),
      started_at: null,
      ended_at: null,
      total: null,
      done: 0,
      failed: 0,
      skipped: 0,
      percent: 0,
      bytes_in: 0,
      bytes_out: 0,
      bytes_per_second: 0,
      items_per_second: 0,
      eta_seconds: null,
      failures: [],
      error: null,
      summary: null,
    };
  }

  get state(): RunState {
    return this.record.state;
  }

  get ended(): boolean {
    return ENDED.has(this.record.state);
  }

  /** The record as it is now (figures read from the pass while it runs). */
  snapshot(): RunRecord {
    if (this.pass && !this.ended) {
      if (this.record.state === 'listing' && this.pass.counted) this.setState('running');
      this.apply(passFigures(this.pass));
    }
    return { ...this.record, failures: [...this.record.failures] };
  }

  /**
   * Calls `listener` with the events kept after sequence number `after` (all by default: a
   * client connecting once the run has begun still sees every item), then with each new one.
   */
  subscribe(listener: (event: RunEvent, seq: number) => void, after = 0): () => void {
    for (const h of this.history) if (h.seq > after) listener(h.event, h.seq);
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The pass begins: `listing` until the counting listing has a total, then `running`. */
  begin(pass: PassProgress, watching: boolean): void {
    this.pass = pass;
    this.record.started_at = new Date(pass.startedAt).toISOString();
    // A watching source's listing never ends: there is no total to wait for.
    this.setState(watching ? 'running' : 'listing');
  }

  requestCancel(): void {
    this.record.cancel_requested = true;
    this.cancel.abort();
  }

  /** The pass returned: its summary decides the outcome. */
  finish(summary: RunSummary): void {
    if (this.pass) this.apply(passFigures(this.pass, Date.now()));
    this.record.summary = summaryJson(summary);
    const state: RunState = summary.interrupted ? 'cancelled' : summary.failed > 0 ? 'failed' : 'succeeded';
    if (state === 'cancelled') {
      // Drained: the figures are what was done; the percent stays where the run stopped.
      this.record.percent = this.shownPercent;
      this.record.error = this.record.cancel_requested
        ? null
        : 'interrupted: the pipeline was reloaded or stopped during the run';
    }
    this.end(state);
  }

  /** The pass could not run or threw (cancelled before it started, lock held, listing error). */
  fail(err: unknown): void {
    const cancelled = err instanceof SluiceError && err.code === 'SLUICE_E_ABORTED';
    if (this.pass) this.apply(passFigures(this.pass));
    this.record.error = errorMessage(err);
    this.end(cancelled ? 'cancelled' : 'failed');
  }

  // The pass's counts come from its progress counters; these events add the item details.
  private done(e: { ms: number; bytesOut: number; source?: string; path?: string }): void {
    this.emit({
      type: 'done',
      data: { source: e.source ?? null, path: e.path ?? null, ms: Math.round(e.ms), bytes_out: e.bytesOut },
    });
  }

  private failed(e: { source: string; path: string; code: string; error: string }): void {
    const failure = { source: e.source, path: e.path, code: e.code, reason: e.error };
    if (this.record.failures.length < MAX_FAILURES) this.record.failures.push(failure);
    this.emit({ type: 'failed', data: failure });
  }

  private retried(e?: { source: string; path: string; attempt: number; error: string }): void {
    this.emit({
      type: 'retry',
      data: {
        source: e?.source ?? null,
        path: e?.path ?? null,
        attempt: e?.attempt ?? null,
        reason: e?.error ?? null,
      },
    });
  }

  /** What the pass reports to this run (besides the pipeline's counters). */
  readonly events: PassEvents = {
    started: (e) =>
      this.emit({ type: 'started', data: { source: e.source, path: e.path, size: e.size ?? null } }),
    done: (e) => this.done(e),
    failed: (e) => this.failed(e),
    skipped: () => undefined,
    retried: (e) => this.retried(e),
  };

  private apply(f: PassFigures): void {
    this.shownPercent = Math.max(this.shownPercent, f.percent);
    Object.assign(this.record, {
      total: f.total,
      done: f.done,
      failed: f.failed,
      skipped: f.skipped,
      percent: this.shownPercent,
      bytes_in: f.bytesIn,
      bytes_out: f.bytesOut,
      bytes_per_second: f.bytesPerSecond,
      items_per_second: f.itemsPerSecond,
      eta_seconds: f.etaSeconds,
    });
  }

  private end(state: RunState): void {
    this.record.ended_at = new Date().toISOString();
    this.record.eta_seconds = null;
    this.setState(state);
  }

  private setState(state: RunState): void {
    if (this.record.state === state) return;
    this.record.state = state;
    this.emit({ type: 'state', data: { state } });
  }

  private emit(event: RunEvent): void {
    const seq = ++this.seq;
    this.history.push({ seq, event });
    if (this.history.length > MAX_HISTORY) this.history.shift();
    for (const l of this.listeners) l(event, seq);
  }
}

/** Runs kept per state folder: the newest MAX_KEPT of each. */
const MAX_KEPT = 200;
const FILE = 'api-runs.jsonl';

/**
 * Recent runs in `<state folder>/api-runs.jsonl`, one JSON record per line, appended when a run
 * is asked for, starts and ends (the last line of an id wins). The file is rewritten with the
 * newest MAX_KEPT runs once it holds twice as many lines, so it stays small.
 */
export class RunStore {
  private readonly file: string;
  private lines = 0;

  constructor(readonly stateDir: string) {
    this.file = join(stateDir, FILE);
  }

  save(record: RunRecord): void {
    mkdirSync(this.stateDir, { recursive: true });
    appendFileSync(this.file, `${JSON.stringify(record)}\n`);
    if (++this.lines > 2 * MAX_KEPT) this.compact();
  }

  /**
   * The stored runs, newest first. A run stored as not ended that this process does not know
   * (`live`) ended with the process that ran it: it is reported failed, saying so.
   */
  load(live: (id: string) => boolean): RunRecord[] {
    if (!existsSync(this.file)) return [];
    const byId = new Map<string, RunRecord>();
    const text = readFileSync(this.file, 'utf8');
    let lines = 0;
    for (const line of text.split('\n')) {
      if (!line) continue;
      lines++;
      try {
        const r = JSON.parse(line) as RunRecord;
        byId.delete(r.id); // re-inserted: the map keeps the order of each run's last line
        byId.set(r.id, r);
      } catch {
        // a line cut short by a crash: the run's earlier line stands
      }
    }
    this.lines = Math.max(this.lines, lines);
    const runs = [...byId.values()].slice(-MAX_KEPT).reverse();
    for (const r of runs) {
      if (!ENDED.has(r.state) && !live(r.id)) {
        r.state = 'failed';
        r.eta_seconds = null;
        r.error ??= 'sluice stopped before this run ended (it did not drain: killed or crashed)';
      }
    }
    return runs;
  }

  private compact(): void {
    const keep = this.load(() => true).reverse();
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, keep.map((r) => `${JSON.stringify(r)}\n`).join(''));
    renameSync(tmp, this.file);
    this.lines = keep.length;
  }
}
