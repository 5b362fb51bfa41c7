/**
 * Listing: every source in turn, with the runtime-owned filters applied — include/exclude,
 * companions (never items of their own), min_age — and each identity once per pass.
 */
import { isAbortError, wrapPluginError } from '../errors.js';
import type { RunSummary } from '../observe/run-summary.js';
import type { Item } from '../plugin-api.js';
import { label, type SourceRuntime } from './driver.js';
import type { PassState, Stage } from './stage.js';

export async function* listSources(
  stage: Stage,
  summary: RunSummary,
  pass: PassState,
  intake: AbortSignal,
): AsyncGenerator<{ source: SourceRuntime; item: Item }> {
  for (const source of stage.driver.sources) {
    try {
      for await (const item of stage.driver.list(source, intake)) {
        if (intake.aborted) return;
        if (!source.accepts(item.path)) continue;
        if (stage.driver.isCompanion(item.path)) continue;
        // Now, not the listing's start: a watching source lists for as long as it runs.
        if (source.minAgeMs > 0 && item.mtime && Date.now() - item.mtime.getTime() < source.minAgeMs) {
          summary.filtered++;
          continue;
        }
        // One identity, once per pass, whatever the listing repeats.
        // A rejected entry's path is only a display form: it must not hide a real file of that name.
        const key = `${source.name}\u0000${item.rejected === undefined ? '' : 'rejected\u0000'}${item.path}`;
        if (pass.listed.has(key)) {
          stage.log.debug({ item: label(item) }, 'listed again in this pass; processed once');
          continue;
        }
        pass.listed.add(key);
        yield { source, item };
      }
    } catch (err) {
      if (intake.aborted && isAbortError(err)) return;
      throw wrapPluginError(err, stage.driver.where(source.ref), 'SLUICE_E_SOURCE');
    }
  }
}
