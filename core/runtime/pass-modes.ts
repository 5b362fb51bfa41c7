/**
 * How a version's passes run: embedded (its own ledger and runner, in this process) or remote
 * (cluster mode: a pass lists into the queue and the workers run the items; the CLI injects it).
 * Either way, item outcomes reach one `PassEvents` sink (the status counters).
 */
import type { PipelineDefinition } from '../config/load.js';
import { SqliteLedger } from '../ledger/sqlite.js';
import type { Logger } from '../observe/logger.js';
import type { PassProgress } from '../observe/pipeline-counters.js';
import type { RunSummary } from '../observe/run-summary.js';
import { PipelineLock } from './pipeline-lock.js';
import type { PoolOptions } from './pool.js';
import { PipelineRunner } from './runner.js';

/**
 * Counts items of a pass as their outcomes come in. The item details (`started`, a retry's path)
 * are given where the pass runs in this process; cluster job outcomes carry only the counts.
 */
export interface PassEvents {
  started?(e: { source: string; path: string; size?: number }): void;
  done(e: { ms: number; bytesIn: number; bytesOut: number; source?: string; path?: string }): void;
  failed(e: { source: string; path: string; code: string; error: string }): void;
  skipped(e?: { source: string; path: string }): void;
  retried(e?: { source: string; path: string; attempt: number; error: string }): void;
}

/** One sink of pass events fed to several (the pipeline's counters and one run's record). */
export function teeEvents(...sinks: PassEvents[]): PassEvents {
  return {
    started: (e) => {
      for (const s of sinks) s.started?.(e);
    },
    done: (e) => {
      for (const s of sinks) s.done(e);
    },
    failed: (e) => {
      for (const s of sinks) s.failed(e);
    },
    skipped: (e) => {
      for (const s of sinks) s.skipped(e);
    },
    retried: (e) => {
      for (const s of sinks) s.retried(e);
    },
  };
}

/**
 * One pass of `def` run elsewhere (cluster mode); aborting `signal` stops waiting for it.
 * `force` / `dryRun` override the command line's for this pass (a run asked for through the API).
 */
export type RemotePasses = (def: PipelineDefinition, pass: RemotePass) => Promise<RunSummary>;

export interface RemotePass {
  signal: AbortSignal;
  events: PassEvents;
  force?: boolean;
  dryRun?: boolean;
  /**
   * The control API run this pass is (its id): the workers report its items' events, and
   * aborting `signal` cancels it — its jobs still waiting are taken out of the queue, and the
   * pass waits for the ones running until they finish or `abort` aborts.
   */
  run?: string;
  /** That run's variables: wherever the items run, the pipeline is loaded with them. */
  vars?: Record<string, string>;
  abort?: AbortSignal;
  /** The listing ended with this many items (and bytes): the pass's total, for its percent. */
  listed?(total: { items: number; bytes: number }): void;
}

export interface EmbeddedPasses {
  ledger: SqliteLedger;
  runner: PipelineRunner;
  runPass(): Promise<RunSummary>;
}

/** Embedded mode: the version's own ledger and runner; passes run in this process. */
export async function embeddedPasses(
  def: PipelineDefinition,
  options: { log: Logger; dryRun?: boolean; force?: boolean; trackProgress?: boolean; pool?: PoolOptions },
  events: PassEvents,
): Promise<EmbeddedPasses> {
  // A dry run reads what was done before and creates neither the state folder nor the ledger.
  const ledger = await SqliteLedger.open(def.stateDir, { readOnly: options.dryRun });
  const runner = new PipelineRunner(def, {
    ledger,
    log: options.log,
    dryRun: options.dryRun,
    force: options.force,
    trackProgress: options.trackProgress,
    pool: options.pool,
  });
  runner.on('item:start', (e) => events.started?.(e));
  runner.on('item:done', (e) =>
    events.done({ ms: e.ms, bytesIn: e.bytesIn, bytesOut: e.bytes, source: e.source, path: e.path }),
  );
  runner.on('item:failed', (e) => events.failed(e));
  runner.on('item:skipped', (e) => events.skipped(e));
  runner.on('item:retry', (e) => events.retried(e));
  // Before anything lists: the counting listing and the pass must not both create plugins.
  await runner.start();
  return { ledger, runner, runPass: () => runner.runPass() };
}

/**
 * Cluster mode: a pass lists into the queue and waits for the workers. Retiring the version
 * (reload, stop) ends the wait; the jobs already queued finish on the workers under this
 * version, and a newer version's listing collapses into them instead of planning them twice.
 */
export function remotePasses(
  def: PipelineDefinition,
  remote: RemotePasses,
  signal: AbortSignal,
  events: PassEvents & { readonly pass?: PassProgress },
): () => Promise<RunSummary> {
  const listed = (total: { items: number; bytes: number }) => {
    const pass = events.pass;
    if (!pass) return;
    pass.total = total.items;
    pass.totalBytes = total.bytes;
    pass.counted = true;
  };
  return async () => {
    const summary = await remote(def, { signal, events, listed });
    // Items the listing found finalized already are skipped without a job.
    for (let i = events.pass?.skipped ?? 0; i < summary.skipped; i++) events.skipped();
    return summary;
  };
}

/**
 * For the progress display only: a second, counting listing gives files/total and an ETA.
 * Not for watching sources, whose listing never ends.
 */
export async function countTotals(
  runner: PipelineRunner,
  def: PipelineDefinition,
  pass: PassProgress,
): Promise<void> {
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

/**
 * One pass asked for from outside the schedule (the control API): its own runner, so that
 * cancelling it (aborting `drain`) stops this pass's intake and never the scheduled version's.
 * It takes the pipeline lock unless the caller holds the one covering `def` already (`locked`);
 * a dry run takes none and opens the ledger read-only. In cluster mode the pass lists into the
 * queue like a scheduled one, its jobs tagged with the run (`runId`); cancelling it takes its
 * waiting jobs out of the queue and waits for the running ones (see RemotePass).
 */
export async function oneOffPass(
  def: PipelineDefinition,
  options: {
    log: Logger;
    dryRun?: boolean;
    force?: boolean;
    trackProgress?: boolean;
    pool?: PoolOptions;
    remote?: RemotePasses;
    locked: boolean;
    /** The control API run this pass is, and its variables (cluster mode: its jobs carry both). */
    runId?: string;
    vars?: Record<string, string>;
  },
  events: PassEvents,
  pass: PassProgress,
  signals: { drain: AbortSignal; abort: AbortSignal },
): Promise<RunSummary> {
  if (options.remote) {
    const { remote, force, dryRun, runId, vars } = options;
    const run = (d: PipelineDefinition, p: RemotePass) =>
      remote(d, { ...p, force, dryRun, run: runId, vars, abort: signals.abort });
    return remotePasses(def, run, signals.drain, { ...events, pass })();
  }
  const lock = options.dryRun || options.locked ? undefined : await PipelineLock.acquire(def);
  let embedded: EmbeddedPasses | undefined;
  const drain = () => void embedded?.runner.drain();
  const abort = () => embedded?.runner.abortNow();
  try {
    embedded = await embeddedPasses(def, options, events);
    signals.drain.addEventListener('abort', drain, { once: true });
    signals.abort.addEventListener('abort', abort, { once: true });
    if (signals.abort.aborted) abort();
    else if (signals.drain.aborted) drain();
    if (options.trackProgress) void countTotals(embedded.runner, def, pass);
    return await embedded.runPass();
  } finally {
    signals.drain.removeEventListener('abort', drain);
    signals.abort.removeEventListener('abort', abort);
    await embedded?.runner.close();
    await embedded?.ledger.close();
    lock?.release();
  }
}
