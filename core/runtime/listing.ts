/**
 * Listing: every source in turn, with the runtime-owned filters applied — include/exclude,
 * companions and ready markers (never items of their own), uploaders' temporary names, min_age,
 * `stable`, a missing ready marker — and each identity once per pass.
 *
 * `stable` needs two looks at a file. The source keeps what it saw across passes, so a file
 * unchanged since the previous pass is taken at once; the files a pass sees for the first time
 * (or changed) are looked at again in the same pass, by listing the source once more after the
 * `stable` delay, so a one-shot `sluice run` takes a file that held still and leaves one that
 * is still growing for the next run.
 */
import { errorMessage, isAbortError, wrapPluginError } from '../errors.js';
import { itemIdentity } from '../item.js';
import type { RunSummary } from '../observe/run-summary.js';
import type { Item } from '../plugin-api.js';
import { label, type SourceRuntime } from './driver.js';
import { includeExcludeReason, minAgeReason, planFiltered, stableReason, TEMPORARY_REASON } from './plan.js';
import { exists, type ReadyMarker } from './readiness.js';
import type { PassState, Stage } from './stage.js';
import { sleep } from './timing.js';

/** Files a pass looks at twice at most (the rest wait for the next pass, which knows them). */
const MAX_HELD = 10_000;

export async function* listSources(
  stage: Stage,
  summary: RunSummary,
  pass: PassState,
  intake: AbortSignal,
): AsyncGenerator<{ source: SourceRuntime; item: Item }> {
  for (const source of stage.driver.sources) {
    /** Folder markers looked up in this pass (one marker, many files). */
    const folderMarkers = new Map<string, boolean>();
    const admit = (item: Item) => admitted(stage, source, item, summary, pass, intake, folderMarkers);
    const held = new Map<string, Item>();
    try {
      for await (const item of stage.driver.list(source, intake)) {
        if (intake.aborted) return;
        const verdict = screen(stage, source, item, summary);
        if (verdict === 'hold') {
          if (held.size < MAX_HELD) held.set(item.path, item);
          else summary.filtered++;
          continue;
        }
        if (verdict !== 'take') continue;
        // Most items are admitted at once (no ready marker): no promise and no turn for them.
        const admittedNow = admit(item);
        if (admittedNow === true || (admittedNow !== false && (await admittedNow))) yield { source, item };
      }
      if (held.size === 0 || !source.stable) continue;
      // The second look: files seen for the first time in this pass, after the `stable` delay.
      stage.log.debug({ source: source.name, files: held.size }, 'looking again at files not known stable');
      await sleep(source.stable.minMs, intake);
      for await (const item of stage.driver.list(source, intake)) {
        if (intake.aborted) return;
        if (!held.delete(item.path)) continue;
        if (!source.stable.isStable(item)) {
          summary.filtered++;
          planFiltered(stage, summary, source, item, () => stableReason(source));
          stage.log.debug({ item: label(item) }, 'still changing; left for the next pass');
        } else if (await admit(item)) yield { source, item };
      }
    } catch (err) {
      if (intake.aborted && isAbortError(err)) return;
      throw wrapPluginError(err, stage.driver.where(source.ref), 'SLUICE_E_SOURCE');
    }
  }
}

/** The filters that need nothing but the listed entry: skip it, hold it for a second look, or take it. */
function screen(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  summary: RunSummary,
): 'skip' | 'hold' | 'take' {
  if (!source.accepts(item.path)) {
    planFiltered(stage, summary, source, item, () => includeExcludeReason(source.ref.config, item.path));
    return 'skip';
  }
  if (source.isTemporary(item.path)) {
    planFiltered(stage, summary, source, item, () => TEMPORARY_REASON);
    return 'skip';
  }
  if (stage.driver.isCompanion(item.path) || source.ready?.isMarker(item.path)) return 'skip';
  if (item.rejected !== undefined) return 'take';
  // Now, not the listing's start: a watching source lists for as long as it runs.
  if (source.minAgeMs > 0 && item.mtime && Date.now() - item.mtime.getTime() < source.minAgeMs) {
    summary.filtered++;
    planFiltered(stage, summary, source, item, () => minAgeReason(source, item));
    return 'skip';
  }
  if (source.stable && !source.stable.isStable(item)) return 'hold';
  return 'take';
}

/**
 * The ready marker and the once-per-pass rule; true when the item goes on. A promise only when
 * a ready marker must be looked up.
 */
function admitted(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  summary: RunSummary,
  pass: PassState,
  intake: AbortSignal,
  folderMarkers: Map<string, boolean>,
): boolean | Promise<boolean> {
  // One identity, once at a time, whatever the listing repeats (see listedKey).
  const key = listedKey(source.name, item);
  if (pass.listed.has(key)) {
    stage.log.debug({ item: label(item) }, 'listed again in this pass; processed once');
    return false;
  }
  if (source.ready && item.rejected === undefined)
    return readyAdmitted(stage, source, source.ready, item, summary, pass, intake, folderMarkers, key);
  pass.listed.add(key);
  return true;
}

/** `admitted` for an item that waits for a ready marker: looked up once per folder (or per file). */
async function readyAdmitted(
  stage: Stage,
  source: SourceRuntime,
  ready: ReadyMarker,
  item: Item,
  summary: RunSummary,
  pass: PassState,
  intake: AbortSignal,
  folderMarkers: Map<string, boolean>,
  key: string,
): Promise<boolean> {
  const marker = ready.markerFor(item.path);
  // A folder marker is one per folder of one root (multi-root sources have one folder per root).
  const markerKey = item.root === undefined ? marker : `${item.root}\u0000${marker}`;
  let found = folderMarkers.get(markerKey);
  if (found === undefined) {
    try {
      found = await exists(() => stage.driver.openPath(source, marker, intake, item.root));
    } catch (err) {
      if (intake.aborted) throw err;
      stage.log.warn(
        { item: label(item), marker, err: errorMessage(err) },
        'could not look for the ready marker',
      );
      found = false;
    }
    if (!ready.perFile) folderMarkers.set(markerKey, found);
  }
  if (!found) {
    summary.filtered++;
    planFiltered(stage, summary, source, item, () => `ready.marker: waiting for ${marker}`);
    stage.log.debug({ item: label(item), marker }, 'waiting for its ready marker');
    return false;
  }
  pass.listed.add(key);
  return true;
}

/**
 * The key of an item in `PassState.listed`: source, path and version — a new version of a
 * path (a file dropped again under its name) is another item. A rejected entry's path is only a
 * display form: it must not hide a real file of that name.
 */
export function listedKey(source: string, item: Item): string {
  const id = itemIdentity(item);
  const version = item.rejected === undefined ? id.version : 'rejected';
  return `${source}\u0000${version}\u0000${id.path}`;
}
