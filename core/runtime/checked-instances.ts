/**
 * The plugin instances a start check made, handed to the run that follows it, so a run logs in
 * once (issue 16): the check at the start of `run`/`watch` creates each source and sink to check
 * it; when every connection passed, those instances are kept for the pipeline definition just
 * checked, and the run's plugin driver, creating its instances for that same definition, takes
 * them (`adoptChecked`) instead of creating new ones.
 *
 * A kept instance was created with a context of the run's kind: its temp folder under the
 * pipeline's temp base (not the check's throwaway folder) and a signal of its own, which follows
 * the adopting run's signal from then on. One not taken within KEEP_MS (a start that stopped at
 * the lock, a reload waiting for the old version to drain, cluster mode) is closed: the run then
 * creates its own, as before.
 */
import { rm } from 'node:fs/promises';
import type { PipelineDefinition, PluginRef } from '../config/load.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observe/logger.js';

/** How long a checked instance waits for its run. */
export const KEEP_MS = 30_000;

export interface CheckedInstance {
  instance: { close?(): Promise<void> };
  /** Its `ctx.tempDir` (made for it; removed by whoever closes it). */
  tempDir: string;
  /** Aborts its `ctx.signal`. */
  controller: AbortController;
}

interface Kept {
  byRef: Map<PluginRef, CheckedInstance>;
  timer: NodeJS.Timeout;
  log: Logger;
}

const kept = new Map<PipelineDefinition, Kept>();

/** Keeps the instances the check of `def` made (every connection passed) for the run of `def`. */
export function keepChecked(
  def: PipelineDefinition,
  byRef: Map<PluginRef, CheckedInstance>,
  log: Logger,
  keepMs = KEEP_MS,
): void {
  void disposeChecked(def);
  if (byRef.size === 0) return;
  const timer = setTimeout(() => void disposeChecked(def), keepMs);
  timer.unref();
  kept.set(def, { byRef, timer, log });
}

/**
 * The instance the check of `def` made for `ref`, now the caller's (its `ctx.signal` follows
 * `signal` from now on); undefined when there is none.
 */
export function adoptChecked(
  def: PipelineDefinition,
  ref: PluginRef,
  signal: AbortSignal,
): CheckedInstance | undefined {
  const entry = kept.get(def);
  const checked = entry?.byRef.get(ref);
  if (!entry || !checked) return undefined;
  entry.byRef.delete(ref);
  if (entry.byRef.size === 0) {
    clearTimeout(entry.timer);
    kept.delete(def);
  }
  if (signal.aborted) checked.controller.abort(signal.reason);
  else
    signal.addEventListener('abort', () => checked.controller.abort(signal.reason), {
      once: true,
    });
  return checked;
}

/** Closes the instances kept for `def` (all definitions' when none is given) that no run took. */
export async function disposeChecked(def?: PipelineDefinition): Promise<void> {
  const defs = def ? [def] : [...kept.keys()];
  const closing: Promise<void>[] = [];
  for (const d of defs) {
    const entry = kept.get(d);
    if (!entry) continue;
    kept.delete(d);
    clearTimeout(entry.timer);
    for (const checked of entry.byRef.values()) closing.push(releaseChecked(checked, entry.log));
  }
  await Promise.all(closing);
}

/** Closes one checked instance (at most 2 s), aborts its signal and removes its temp folder. */
export async function releaseChecked(checked: CheckedInstance, log: Logger, close = true): Promise<void> {
  if (close) await closeQuietly(checked.instance, log);
  checked.controller.abort();
  await rm(checked.tempDir, { recursive: true, force: true }).catch(() => undefined);
}

/** Closing a checked instance must not hang the command or hide the check's outcome. */
export async function closeQuietly(
  instance: { close?(): Promise<void> } | undefined,
  log: Logger,
): Promise<void> {
  if (!instance?.close) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      instance.close(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 2_000);
      }),
    ]);
  } catch (err) {
    log.debug({ err: errorMessage(err) }, 'closing a checked connection failed');
  } finally {
    clearTimeout(timer);
  }
}
