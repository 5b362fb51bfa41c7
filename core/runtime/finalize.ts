/**
 * The end of an item: finalisation (the ledger, the source's after_success on the version
 * that was delivered, its companions), or failure (the ledger, the dead letter, and removing
 * what the item's attempts committed).
 */
import { Readable } from 'node:stream';
import { errorMessage, SluiceError, wrapPluginError } from '../errors.js';
import { itemIdentity } from '../item.js';
import type { RunSummary } from '../observe/run-summary.js';
import type { Item, ItemIdentity } from '../plugin-api.js';
import { reviveItem } from './described.js';
import { safeDestination } from './destination.js';
import { label, type SourceRuntime } from './driver.js';
import { exists } from './readiness.js';
import { type Job, linkSignals, type Stage } from './stage.js';
import { backoffDelay, sleep } from './timing.js';

/**
 * The source's after_success on the delivered version, then its companions. A source that
 * finds another version at the path (SLUICE_E_CHANGED) leaves it for the next pass: the
 * delivered version is done.
 */
export async function finalize(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  id: ItemIdentity,
  attempt: number,
  job: Job,
  /** sha256 of the bytes, when read for `identity: content`. */
  content?: string,
): Promise<void> {
  const durable = stage.ledger.flushBeforeSourceChange === true && source.afterSuccess !== 'keep';
  if (durable) await stage.ledger.flush();
  if (source.afterSuccess !== 'keep') {
    await job.fence();
    try {
      await stage.driver.tidy(source, item);
    } catch (err) {
      if (!(err instanceof SluiceError && err.code === 'SLUICE_E_CHANGED')) throw err;
      stage.log.warn(
        { item: label(item), err: errorMessage(err) },
        'the source changed after it was listed; the new version is left for the next pass',
      );
    }
  }
  stage.ledger.record(stage.def.name, id, { state: 'finalized', attempts: attempt, content });
  // The source file is gone (or moved): nothing will list it again to correct its record, so
  // `finalized` is written now rather than with the next batch.
  if (durable) await stage.ledger.flush();
  if (source.afterSuccess !== 'keep') await tidyCompanions(stage, source, item, job);
}

/**
 * Applies after_success (delete / move_to) to the companions steps declared for a finalized
 * item, after the item's own, and to its per-file ready marker. Only paths a step's
 * `isCompanion` matches follow: those are never items of their own, so nothing else finalizes
 * them. A folder marker (`{dir}/_SUCCESS`) stays: other files of the folder still wait on it,
 * and the source cannot tell when the last of them is done. A failure is logged, not counted
 * against the item: its bytes are delivered and finalized, and retrying the item would redo
 * an after_success that already happened.
 */
async function tidyCompanions(stage: Stage, source: SourceRuntime, item: Item, job: Job): Promise<void> {
  if (source.afterSuccess === 'keep' || !source.instance.openPath) return;
  const { maxAttempts } = stage.def.policy.retry;
  const paths = [...job.companions].filter((path) => path !== item.path && stage.driver.isCompanion(path));
  if (source.ready?.perFile) paths.push(source.ready.markerFor(item.path));
  for (const path of paths) {
    const { item: companion } = reviveItem(stage.driver, { source: source.name, path, root: item.root });
    for (let attempt = 1; ; attempt++) {
      try {
        // A declared companion may not exist (a `.sig` that was never dropped). Look first: a
        // move of a missing file is not harmless everywhere (FTP's replacing rename deletes a
        // taken target before it finds the source missing).
        if (await exists(() => stage.driver.openPath(source, path, stage.signal, item.root))) {
          await job.fence();
          await stage.driver.tidy(source, companion);
        }
        break;
      } catch (raw) {
        const err = wrapPluginError(
          raw,
          stage.driver.where(source.ref, `${source.name}:${path}`),
          'SLUICE_E_SOURCE',
        );
        if (err.code === 'SLUICE_E_FENCED') throw err;
        if (stage.signal.aborted || attempt >= maxAttempts || !stage.driver.isRetryable(err)) {
          stage.log.warn(
            { item: label(item), companion: path, err: errorMessage(err) },
            'companion left at the source',
          );
          break;
        }
        await sleep(backoffDelay(attempt, stage.def.policy.retry), stage.signal).catch(() => undefined);
      }
    }
  }
}

/**
 * Removes what an item's attempts committed, when the item fails for good: an archive whose
 * later entry is corrupt leaves none of its entries (all or nothing), and a source that is
 * kept is not delivered in part.
 */
export async function rollback(stage: Stage, job: Job): Promise<void> {
  // A cluster worker that lost the item removes nothing: what is there may be its successor's.
  await job.fence();
  for (const { sink, destination } of job.written.splice(0)) {
    try {
      await stage.driver.removeAt(sink, destination);
    } catch (err) {
      stage.log.warn(
        { item: label(job.root), destination, err: errorMessage(err) },
        'could not remove a copy of a failed item',
      );
    }
  }
  job.pass.claims.release(job.claims);
}

/** Counts an item that failed for good in the summary, the events and the log. */
export function countFailure(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  err: SluiceError,
  attempts: number,
  summary: RunSummary,
  note?: string,
): string {
  const message = errorMessage(err);
  summary.failed++;
  summary.failures.push({ source: source.name, path: item.path, code: err.code, error: message });
  stage.emit('item:failed', { source: source.name, path: item.path, error: message, code: err.code });
  stage.log.error(
    { item: `${source.name}:${item.path}`, code: err.code, attempts, err: message },
    note ?? 'item failed',
  );
  return message;
}

/** An item failed for good: counted, recorded `failed`, its bytes and reason sent to `on_error`. */
export async function fail(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  err: SluiceError,
  attempts: number,
  summary: RunSummary,
  options: { deadLetter?: boolean } = {},
): Promise<void> {
  const message = countFailure(stage, source, item, err, attempts, summary);
  if (stage.dryRun) {
    summary.plan.push({
      source: source.name,
      path: item.path,
      destinations: [],
      action: 'failed',
      error: message,
    });
    return;
  }
  stage.ledger.record(stage.def.name, itemIdentity(item), { state: 'failed', attempts, error: message });
  if (stage.driver.deadLetter && options.deadLetter !== false)
    await sendToDeadLetter(stage, source, item, err, attempts);
}

/** A listed entry the source could not represent safely: reported, never opened or tidied. */
export async function reject(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  summary: RunSummary,
): Promise<void> {
  const err = new SluiceError('SLUICE_E_NAME', item.rejected ?? 'rejected by the source', {
    retryable: false,
    context: stage.driver.where(source.ref, `${source.name}:${item.path}`),
  });
  stage.emit('item:start', { source: source.name, path: item.path, size: item.size });
  await fail(stage, source, item, err, 1, summary, { deadLetter: false });
}

/** Puts the original bytes and a `<name>.error.json` reason into the on_error sink. */
async function sendToDeadLetter(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  err: SluiceError,
  attempts: number,
): Promise<void> {
  const dl = stage.driver.deadLetter!;
  const reason: Record<string, unknown> = {
    pipeline: stage.def.name,
    source: source.name,
    path: item.path,
    code: err.code,
    error: errorMessage(err),
    attempts,
    failed_at: new Date().toISOString(),
  };
  const signal = stage.signal;
  try {
    const destination = safeDestination(`${source.name}/${item.path}`);
    try {
      const body = await item.open(signal);
      // The source failed this item already: its bytes may fail again before the dead-letter
      // sink reads them — heard at once, and the write aborted, never an uncaught error.
      const bodyFailed = new AbortController();
      body.on('error', (e) => bodyFailed.abort(e));
      const linked = linkSignals(signal, bodyFailed.signal);
      try {
        await stage.driver.write(dl, label(item), {
          item,
          destination,
          body,
          size: item.size,
          signal: linked.signal,
        });
      } finally {
        linked.dispose();
      }
    } catch (copyErr) {
      reason.copy_error = errorMessage(copyErr);
    }
    const json = Buffer.from(`${JSON.stringify(reason, null, 2)}\n`);
    await stage.driver.write(dl, label(item), {
      item,
      destination: `${destination}.error.json`,
      body: Readable.from([json]),
      size: json.length,
      signal,
    });
  } catch (dlErr) {
    stage.log.error(
      { item: `${source.name}:${item.path}`, err: errorMessage(dlErr) },
      'could not write to on_error',
    );
  }
}
