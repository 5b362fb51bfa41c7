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
import { PipelineRunner } from './runner.js';

/** Counts items of a pass as their outcomes come in. */
export interface PassEvents {
  done(e: { ms: number; bytesIn: number; bytesOut: number }): void;
  failed(e: { source: string; path: string; code: string; error: string }): void;
  skipped(): void;
  retried(): void;
}

/** One pass of `def` run elsewhere (cluster mode); aborting `signal` stops waiting for it. */
export type RemotePasses = (
  def: PipelineDefinition,
  pass: { signal: AbortSignal; events: PassEvents },
) => Promise<RunSummary>;

export interface EmbeddedPasses {
  ledger: SqliteLedger;
  runner: PipelineRunner;
  runPass(): Promise<RunSummary>;
}

/** Embedded mode: the version's own ledger and runner; passes run in this process. */
export async function embeddedPasses(
  def: PipelineDefinition,
  options: { log: Logger; dryRun?: boolean; force?: boolean; trackProgress?: boolean },
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
  });
  runner.on('item:done', (e) => events.done({ ms: e.ms, bytesIn: e.bytesIn, bytesOut: e.bytes }));
  runner.on('item:failed', (e) => events.failed(e));
  runner.on('item:skipped', () => events.skipped());
  runner.on('item:retry', () => events.retried());
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
  return async () => {
    const summary = await remote(def, { signal, events });
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
