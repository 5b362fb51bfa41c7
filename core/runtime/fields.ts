/**
 * The fields every source or sink config shares and the runtime enforces — declared in the
 * shared schema fragments, read here once, typed, with their defaults — so no plugin reads them
 * back or writes their defaults again.
 */
import type { PluginRef } from '../config/load.js';
import { SluiceError } from '../errors.js';
import { compileIncludeExclude, type PathPredicate } from '../glob.js';
import type { IfExistsMode } from '../if-exists.js';
import { parseDuration } from '../units.js';
import { ReadyMarker, StableFiles, stableMs, temporaryNames } from './readiness.js';

/** `after_success` as the runtime applies it. */
export type AfterSuccess = 'keep' | 'delete' | { move_to: string };
export type Verify = 'size' | 'sha256' | 'none';

/** What the runtime does with a source's config fields. */
export interface SourceFields {
  accepts: PathPredicate;
  minAgeMs: number;
  afterSuccess: AfterSuccess;
  /** `ready.marker`: files wait for it, and a per-file one follows its file at after_success. */
  ready: ReadyMarker | undefined;
  /** `stable`: what earlier listings saw of each file (kept across passes). */
  stable: StableFiles | undefined;
  /** `skip_temporary`: uploaders' temporary names, never listed as items. */
  isTemporary: PathPredicate;
}

/** What the runtime does with a sink's config fields. */
export interface SinkFields {
  verify: Verify;
  ifExists: IfExistsMode;
}

/** The runtime-owned fields of a source config (the shared schema fragments declare them). */
interface SourceConfigFields {
  include?: string[];
  exclude?: string[];
  min_age?: string;
  after_success?: unknown;
  ready?: { marker: string };
  stable?: boolean | string | number;
  skip_temporary?: boolean | string[];
}

/** The runtime-owned fields of a sink config. */
interface SinkConfigFields {
  verify?: Verify;
  if_exists?: IfExistsMode;
}

export function sourceFields(ref: PluginRef): SourceFields {
  const cfg = ref.config as SourceConfigFields;
  const stableFor = stableMs(cfg.stable);
  return {
    accepts: compileIncludeExclude(cfg.include, cfg.exclude),
    minAgeMs: cfg.min_age !== undefined ? parseDuration(cfg.min_age) : 0,
    afterSuccess: normalizeAfterSuccess(cfg.after_success),
    ready: cfg.ready ? new ReadyMarker(cfg.ready.marker) : undefined,
    stable: stableFor !== undefined ? new StableFiles(stableFor) : undefined,
    isTemporary: temporaryNames(cfg.skip_temporary),
  };
}

export function sinkFields(ref: PluginRef): SinkFields {
  const cfg = ref.config as SinkConfigFields;
  return { verify: cfg.verify ?? 'size', ifExists: cfg.if_exists ?? 'overwrite' };
}

/**
 * `keep`, `delete` and `{move_to}` are shared by every source; a source may define its own
 * object form whose `delete` key means "remove it" (the http source: `{delete: {url}}`).
 */
function normalizeAfterSuccess(value: unknown): AfterSuccess {
  if (value === undefined || value === 'keep') return 'keep';
  if (value === 'delete') return 'delete';
  if (typeof value === 'object' && value !== null) {
    if ('move_to' in value) return { move_to: String((value as { move_to: unknown }).move_to) };
    if ('delete' in value) return 'delete';
  }
  throw new SluiceError('SLUICE_E_CONFIG', `unsupported after_success: ${JSON.stringify(value)}`);
}
