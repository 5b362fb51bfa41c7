/**
 * The public SDK for plugin authors: `import { definePlugin, Type } from 'sluice'`.
 * Everything here is covered by the plugin API version (`PLUGIN_API_VERSION`).
 */
export { type Static, type TSchema, Type } from '@sinclair/typebox';
export { type ErrorCode, SluiceError } from './errors.js';
export { createItem, deriveItem, itemDir, itemExt, itemName, itemStem } from './item.js';
export type { Logger } from './observe/logger.js';
export { registerSecret } from './observe/redact.js';
export {
  definePlugin,
  type Item,
  type ItemOrigin,
  PLUGIN_API_VERSION,
  type Plugin,
  type PluginContext,
  type PluginKind,
  type SinkCommit,
  type SinkInstance,
  type SinkWriteRequest,
  type SourceInstance,
  type StepContext,
  type StepInstance,
  type StepOutput,
} from './plugin-api.js';
export { runPipelineFile, loadPipelineFile } from './runtime/run-file.js';
export type { RunSummary } from './runtime/runner.js';
export { AfterSuccess, Duration, IfExists, Secret, Size, sinkCommon, sourceCommon, Verify } from './schema-fragments.js';
export { HashTap, pipeThrough, STREAM_CHUNK } from './streams.js';
export { parseDuration, parseSize } from './units.js';
