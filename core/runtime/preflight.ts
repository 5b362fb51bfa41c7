/**
 * Pre-flight checks of a pipeline's connections (issue 15.6): each source and sink (and the
 * dead-letter sink) is created on its own and asked to `check` itself — `full` for `sluice
 * check` (list, write and remove a probe), `cheap` at the start of `run` and `watch` (log in,
 * the root exists), before the first listing and before any file is touched. A plugin without
 * `check` is reported as such, never as a failure. Each check has a time limit; what is printed
 * holds no secret (the target is built from non-secret fields and masked).
 *
 * `sluice check`'s instances are its own (closed after it). At the start of a run, when every
 * connection passed, the instances the check made are kept for the run, whose driver takes them
 * instead of logging in a second time (checked-instances.ts); when one failed, all are closed.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PipelineDefinition, PluginRef } from '../config/load.js';
import { scheduleOf } from '../config/trigger.js';
import { SluiceError, wrapPluginError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { redact } from '../observe/redact.js';
import type { PreflightRequest, PreflightResult } from '../plugin-api.js';
import { type CheckedInstance, closeQuietly, keepChecked, releaseChecked } from './checked-instances.js';

export type CheckRole = 'source' | 'sink' | 'on_error' | 'report';

export interface ConnectionCheck {
  role: CheckRole;
  ref: PluginRef;
  /** What was checked, without secrets: `acme@sftp.example:22/outgoing`, `./in`. */
  target: string;
  outcome: 'ok' | 'failed' | 'no_check';
  /** What the check proved (ok). */
  detail?: string;
  /** Why it failed, stamped with pipeline, step and plugin (failed). */
  error?: SluiceError;
  ms: number;
}

export interface CheckOptions {
  depth: PreflightRequest['depth'];
  log: Logger;
  signal?: AbortSignal;
  /** Per connection: creating the plugin and its check together. Default 20 s. */
  timeoutMs?: number;
  /** False: sources only (a dry run creates no sink; in cluster mode the workers write). */
  sinks?: boolean;
  /**
   * False: not the pass report's sink. The start of a run leaves it out: a report that cannot be
   * written never stops or fails the files of a pass (it is reported when the pass ends).
   */
  report?: boolean;
}

export const CHECK_TIMEOUT_MS = 20_000;

/** The connections of `def` a check covers, in the file's order. */
export function checkedConnections(
  def: PipelineDefinition,
  sinks = true,
  report = sinks,
): Array<{ role: CheckRole; ref: PluginRef }> {
  return [
    ...def.sources.map((ref) => ({ role: 'source' as const, ref })),
    ...(sinks ? def.sinks.map((ref) => ({ role: 'sink' as const, ref })) : []),
    ...(sinks && def.onError ? [{ role: 'on_error' as const, ref: def.onError }] : []),
    ...(report && def.report ? [{ role: 'report' as const, ref: def.report.sink }] : []),
  ];
}

/** Checks every connection of `def` side by side; never throws for a connection that fails. */
export async function checkConnections(
  def: PipelineDefinition,
  options: CheckOptions,
): Promise<ConnectionCheck[]> {
  return (await checkAll(def, options)).map((c) => c.check);
}

/**
 * Where instances kept for a run get their temp folders: the run's temp base (a dry run writes
 * nothing under the pipeline's folders), each its own folder named after the process and step.
 */
interface KeepFor {
  tempBase: string;
}

async function checkAll(
  def: PipelineDefinition,
  options: CheckOptions,
  keep?: KeepFor,
): Promise<Array<{ check: ConnectionCheck; kept?: CheckedInstance }>> {
  const tempRoot = await mkdtemp(join(tmpdir(), 'sluice-check-'));
  try {
    return await Promise.all(
      checkedConnections(
        def,
        options.sinks !== false,
        options.sinks !== false && options.report !== false,
      ).map(({ role, ref }) => checkOne(def, role, ref, options, tempRoot, keep)),
    );
  } finally {
    await rm(tempRoot, { recursive: true, force: true });
  }
}

/**
 * The cheap check at the start of a run: throws one `SLUICE_E_PREFLIGHT` error naming the
 * connection that failed and why (and any other that failed too); nothing has been touched.
 */
export async function preflight(
  def: PipelineDefinition,
  options: Omit<CheckOptions, 'depth'> & {
    /** Keep the checked instances for the run of `def` (when all passed), temp folders under this. */
    keepFor?: KeepFor;
  },
): Promise<void> {
  const started = Date.now();
  const results = await checkAll(def, { ...options, depth: 'cheap', report: false }, options.keepFor);
  const checks = results.map((r) => r.check);
  const failed = checks.filter((c) => c.outcome === 'failed');
  const kept = new Map<PluginRef, CheckedInstance>();
  for (const r of results) if (r.kept) kept.set(r.check.ref, r.kept);
  if (failed.length === 0) keepChecked(def, kept, options.log);
  else await Promise.all([...kept.values()].map((k) => releaseChecked(k, options.log)));
  options.log.debug(
    {
      pipeline: def.name,
      ms: Date.now() - started,
      checks: checks.map((c) => `${c.role} ${c.ref.name}: ${c.outcome}`),
    },
    'pre-flight checks done',
  );
  if (failed.length === 0) return;
  const [first, ...others] = failed;
  const reason = (c: ConnectionCheck) => `${label(c)} — ${c.error?.message ?? 'failed'}`;
  const also = others.length > 0 ? `; also ${others.map(reason).join('; ')}` : '';
  throw new SluiceError('SLUICE_E_PREFLIGHT', `pre-flight check failed: ${reason(first)}${also}`, {
    cause: first.error,
    context: {
      pipeline: def.name,
      step: first.ref.stepId,
      plugin: first.ref.name,
      hint:
        first.error?.context.hint ??
        'fix the connection (sluice check shows every one), or start with --no-check',
    },
  });
}

/** A pipeline whose check failed at start, with no trigger to say when, is tried again after this. */
export const PREFLIGHT_RETRY_MS = 60_000;

/**
 * The cheap check a supervisor runs before a version starts (unless `preflight: false`, i.e.
 * `--no-check`): sources only in dry runs and cluster mode (no sink is written from here then).
 * A start it refused is tried again at the pipeline's next due time, or after PREFLIGHT_RETRY_MS
 * without a trigger; an edit of the file tries again at once.
 */
export class StartCheck {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: {
      log: Logger;
      preflight?: boolean;
      dryRun?: boolean;
      once?: boolean;
      remote?: unknown;
    },
    private readonly retry: () => void,
  ) {}

  /** Throws `SLUICE_E_PREFLIGHT` naming the connection that failed. */
  async run(def: PipelineDefinition): Promise<void> {
    if (this.options.preflight === false) return;
    const sinks = !this.options.dryRun && !this.options.remote;
    await preflight(def, {
      log: this.options.log.child({ pipeline: def.name }),
      sinks,
      // The run takes the checked instances (one login, not two); in cluster mode no run here does.
      keepFor: this.options.remote
        ? undefined
        : {
            tempBase: this.options.dryRun ? join(tmpdir(), 'sluice-plan') : join(def.stateDir, 'tmp'),
          },
    });
  }

  /** Schedules the retry of a refused start of `def`; returns when it happens. */
  retryLater(def: PipelineDefinition): Date {
    this.cancelRetry();
    const now = new Date();
    const due =
      (this.options.once ? undefined : scheduleOf(def.trigger).nextAfter(now)) ??
      new Date(now.getTime() + PREFLIGHT_RETRY_MS);
    this.timer = setTimeout(this.retry, Math.max(1_000, due.getTime() - now.getTime()));
    return due;
  }

  cancelRetry(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** `sink s3 cdr_store@bucket/prefix`. */
export function label(c: Pick<ConnectionCheck, 'role' | 'ref' | 'target'>): string {
  return `${c.role} ${c.ref.name}${c.target ? ` ${c.target}` : ''}`;
}

/** Where a block points, from its non-secret fields: host:port, bucket or container, path. */
export function targetOf(ref: PluginRef): string {
  const c = ref.config;
  const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');
  let where = text(c.host) && (text(c.port) ? `${text(c.host)}:${text(c.port)}` : text(c.host));
  const container = text(c.bucket) || text(c.container);
  if (container) where = where ? `${where}/${container}` : container;
  const path = text(c.path) || text(c.prefix) || text(c.root) || text(c.url);
  if (path) where = where ? `${where}/${path.replace(/^\.?\//, '')}` : path;
  const named = ref.connection ? `${ref.connection}${where ? `@${where}` : ''}` : where;
  return redact(named);
}

async function checkOne(
  def: PipelineDefinition,
  role: CheckRole,
  ref: PluginRef,
  options: CheckOptions,
  tempRoot: string,
  keep?: KeepFor,
): Promise<{ check: ConnectionCheck; kept?: CheckedInstance }> {
  const started = Date.now();
  const base = { role, ref, target: targetOf(ref) };
  const where = { pipeline: def.name, step: ref.stepId, plugin: ref.name };
  const timeoutMs = options.timeoutMs ?? CHECK_TIMEOUT_MS;
  const controller = new AbortController();
  const stop = () => controller.abort();
  options.signal?.addEventListener('abort', stop, { once: true });
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let instance:
    | { check?(req: PreflightRequest): Promise<PreflightResult>; close?(): Promise<void> }
    | undefined;
  const timedOut = new Promise<never>((_, reject) =>
    controller.signal.addEventListener(
      'abort',
      () =>
        reject(
          options.signal?.aborted
            ? new SluiceError('SLUICE_E_ABORTED', 'check cancelled', { context: where })
            : new SluiceError('SLUICE_E_PREFLIGHT', `no answer within ${timeoutMs / 1000} s (timed out)`, {
                context: {
                  ...where,
                  hint: 'is the server reachable from here? (sluice check --timeout to wait longer)',
                },
              }),
        ),
      { once: true },
    ),
  );
  timedOut.catch(() => undefined);
  let created: Promise<unknown> | undefined;
  // Kept for the run: an instance made as the run's driver makes them (its own temp folder under
  // the run's temp base; a signal aborted with the check's while checking, then the run's).
  const kept = keep && {
    tempDir: join(
      keep.tempBase,
      `${process.pid}-check-${Date.now().toString(36)}-${ref.stepId.replace(/[^A-Za-z0-9_.-]/g, '_')}`,
    ),
    controller: new AbortController(),
  };
  const follow = () => kept?.controller.abort();
  controller.signal.addEventListener('abort', follow, { once: true });
  let keeping = false;
  try {
    const result = await Promise.race([
      (async () => {
        if (kept) {
          await mkdir(kept.tempDir, { recursive: true });
          // Timed out or cancelled meanwhile: make nothing that no one would close.
          if (controller.signal.aborted) return undefined;
        }
        created = Promise.resolve(
          ref.plugin.create(ref.config as never, {
            pipeline: def.name,
            stepId: ref.stepId,
            log: options.log.child({ step: ref.stepId }),
            tempDir: kept?.tempDir ?? tempRoot,
            stateDir: def.stateDir,
            baseDir: def.baseDir,
            signal: kept?.controller.signal ?? controller.signal,
          }),
        );
        instance = (await created) as typeof instance;
        if (!instance?.check) return undefined;
        return instance.check({ depth: options.depth, signal: controller.signal });
      })(),
      timedOut,
    ]);
    const ms = Date.now() - started;
    const check: ConnectionCheck = result
      ? { ...base, outcome: 'ok', detail: redact(result.detail), ms }
      : { ...base, outcome: 'no_check', ms };
    if (!kept || !instance) return { check };
    keeping = true;
    controller.signal.removeEventListener('abort', follow);
    return { check, kept: { ...kept, instance } };
  } catch (err) {
    const error =
      err instanceof SluiceError && err.code === 'SLUICE_E_PREFLIGHT' ? err : wrapPluginError(err, where);
    return { check: { ...base, outcome: 'failed', error, ms: Date.now() - started } };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', stop);
    controller.abort();
    if (!keeping) {
      const removeTemp = async () => {
        if (kept) await rm(kept.tempDir, { recursive: true, force: true }).catch(() => undefined);
      };
      if (instance) {
        await closeQuietly(instance, options.log);
        await removeTemp();
      }
      // Timed out while the plugin was still being made: close it when it comes (a pool, a login).
      else if (created)
        void created
          .then(
            (late) => closeQuietly(late as typeof instance, options.log),
            () => undefined,
          )
          .then(removeTemp);
      else await removeTemp();
    }
  }
}
