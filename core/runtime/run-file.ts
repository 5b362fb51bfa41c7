/** Library entry points: load a pipeline file and run one pass, as the CLI does. */
import { type LoadOptions, loadPipeline, type PipelineDefinition } from '../config/load.js';
import type { Ledger } from '../ledger/ledger.js';
import { SqliteLedger } from '../ledger/sqlite.js';
import type { Logger } from '../observe/logger.js';
import type { PluginRegistry } from '../registry.js';
import { PipelineLock } from './pipeline-lock.js';
import type { PoolOptions } from './pool.js';
import { PipelineRunner, type RunSummary } from './runner.js';

export interface RunFileOptions extends Omit<LoadOptions, 'registry'> {
  /** The plugins pipelines may name (the composition root brings the built-in ones). */
  registry: PluginRegistry;
  dryRun?: boolean;
  force?: boolean;
  log?: Logger;
  ledger?: Ledger;
  /** Aborting it drains the pass (stops intake, lets in-flight items finish). */
  signal?: AbortSignal;
  /** Called with the runner before the pass starts (progress, metrics). */
  onRunner?: (runner: PipelineRunner) => void;
  /** Where pool threads start: items then run on `policy.threads` threads (runtime/pool.ts). */
  pool?: PoolOptions;
}

export function loadPipelineFile(
  file: string,
  options: Omit<RunFileOptions, 'dryRun' | 'force' | 'log' | 'ledger'>,
): Promise<PipelineDefinition> {
  return loadPipeline(file, options);
}

/** Loads `file` and runs one pass with the embedded ledger (unless one is given). */
export async function runPipelineFile(file: string, options: RunFileOptions): Promise<RunSummary> {
  const def = await loadPipelineFile(file, options);
  return runPipeline(def, options);
}

/**
 * One pass of `def`. A real pass holds the pipeline's lock (one process per pipeline and state
 * folder) unless the caller brings its own ledger (and with it its own exclusivity). A dry run
 * takes no lock and opens the ledger read-only: it creates neither the state folder nor the ledger.
 */
export async function runPipeline(
  def: PipelineDefinition,
  options: Omit<RunFileOptions, 'registry'> = {},
): Promise<RunSummary> {
  const lock = options.dryRun || options.ledger ? undefined : await PipelineLock.acquire(def);
  let ledger: Ledger | undefined;
  let runner: PipelineRunner | undefined;
  const onAbort = () => void runner?.drain();
  try {
    ledger = options.ledger ?? (await SqliteLedger.open(def.stateDir, { readOnly: options.dryRun }));
    runner = new PipelineRunner(def, {
      dryRun: options.dryRun,
      force: options.force,
      log: options.log,
      ledger,
      pool: options.pool,
    });
    options.onRunner?.(runner);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    return await runner.runPass();
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await runner?.close();
    if (!options.ledger) await ledger?.close();
    lock?.release();
  }
}
