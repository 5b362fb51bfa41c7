/** Library entry points: load a pipeline file and run one pass, as the CLI does. */
import { builtinPlugins } from '../../plugins/index.js';
import { type LoadOptions, loadPipeline, type PipelineDefinition } from '../config/load.js';
import type { Ledger } from '../ledger/ledger.js';
import { SqliteLedger } from '../ledger/sqlite.js';
import type { Logger } from '../observe/logger.js';
import { PluginRegistry } from '../registry.js';
import { PipelineRunner, type RunSummary } from './runner.js';

let defaultRegistry: PluginRegistry | undefined;

export function builtinRegistry(): PluginRegistry {
  defaultRegistry ??= new PluginRegistry(builtinPlugins);
  return defaultRegistry;
}

export interface RunFileOptions extends Omit<LoadOptions, 'registry'> {
  registry?: PluginRegistry;
  dryRun?: boolean;
  force?: boolean;
  log?: Logger;
  ledger?: Ledger;
  /** Aborting it drains the pass (stops intake, lets in-flight items finish). */
  signal?: AbortSignal;
  /** Called with the runner before the pass starts (progress, metrics). */
  onRunner?: (runner: PipelineRunner) => void;
}

export function loadPipelineFile(file: string, options: Omit<RunFileOptions, 'dryRun' | 'force' | 'log' | 'ledger'> = {}): Promise<PipelineDefinition> {
  return loadPipeline(file, { ...options, registry: options.registry ?? builtinRegistry() });
}

/** Loads `file` and runs one pass with the embedded ledger (unless one is given). */
export async function runPipelineFile(file: string, options: RunFileOptions = {}): Promise<RunSummary> {
  const def = await loadPipelineFile(file, options);
  return runPipeline(def, options);
}

export async function runPipeline(def: PipelineDefinition, options: RunFileOptions = {}): Promise<RunSummary> {
  const ledger = options.ledger ?? (await SqliteLedger.open(def.stateDir));
  const runner = new PipelineRunner(def, { dryRun: options.dryRun, force: options.force, log: options.log, ledger });
  options.onRunner?.(runner);
  const onAbort = () => void runner.drain();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await runner.runPass();
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await runner.close();
    if (!options.ledger) await ledger.close();
  }
}
