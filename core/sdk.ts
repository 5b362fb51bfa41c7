/**
 * The public SDK for plugin authors: `import { definePlugin, Type } from 'sluice'`.
 * Everything here is covered by the plugin API version (`PLUGIN_API_VERSION`).
 */

import { builtinRegistry } from './builtins.js';
import type { PipelineDefinition } from './config/load.js';
import type { RunSummary } from './observe/run-summary.js';
import { existingEntry } from './runtime/pool.js';
import * as runFile from './runtime/run-file.js';

export { type Static, type TSchema, Type } from '@sinclair/typebox';
export { builtinRegistry } from './builtins.js';
export { type ErrorCode, SluiceError } from './errors.js';
export { createItem, deriveItem, itemDir, itemExt, itemName, itemStem } from './item.js';
export type { Logger } from './observe/logger.js';
export { registerSecret } from './observe/redact.js';
export type { RunSummary } from './observe/run-summary.js';
export {
  type DestinationStat,
  definePlugin,
  type Item,
  type ItemOrigin,
  PLUGIN_API_VERSION,
  type Plugin,
  type PluginContext,
  type PluginKind,
  type PreflightRequest,
  type PreflightResult,
  type SinkCommit,
  type SinkInstance,
  type SinkWriteRequest,
  type SourceInstance,
  type StepContext,
  type StepInstance,
  type StepOutput,
} from './plugin-api.js';

export {
  AfterSuccess,
  Duration,
  IfExists,
  Secret,
  Size,
  sinkCommon,
  sourceCommon,
  Verify,
} from './schema-fragments.js';
export { HashTap, pipeThrough, STREAM_CHUNK } from './streams.js';
export { parseDuration, parseSize } from './units.js';

/** Options of `runPipelineFile` / `loadPipelineFile`; the registry defaults to the built-in plugins. */
export type RunFileOptions = Omit<runFile.RunFileOptions, 'registry'> & {
  registry?: runFile.RunFileOptions['registry'];
};

/**
 * Loads `file` (with the built-in plugins unless a registry is given) and runs one pass; items
 * run on `policy.threads` threads, started from the bundled thread entry (dist/cli/pool-thread.js:
 * this module's neighbour in the bundle, or under dist/ beside the sources).
 */
export function runPipelineFile(file: string, options: RunFileOptions = {}): Promise<RunSummary> {
  return runFile.runPipelineFile(file, {
    ...options,
    registry: options.registry ?? builtinRegistry(),
    pool:
      options.pool ??
      existingEntry(
        new URL('../cli/pool-thread.js', import.meta.url),
        new URL('../dist/cli/pool-thread.js', import.meta.url),
      ),
  });
}

/** Loads and validates `file` (with the built-in plugins unless a registry is given). */
export function loadPipelineFile(
  file: string,
  options: Omit<RunFileOptions, 'dryRun' | 'force' | 'log' | 'ledger'> = {},
): Promise<PipelineDefinition> {
  return runFile.loadPipelineFile(file, { ...options, registry: options.registry ?? builtinRegistry() });
}

export { runPipeline } from './runtime/run-file.js';
