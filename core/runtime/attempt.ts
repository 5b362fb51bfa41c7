/**
 * One listed item from the ledger check to its end: attempts with backoff, each running the
 * step chain into delivery, then finalisation — or, once no attempt is left, failure.
 */
import { errorMessage, SluiceError } from '../errors.js';
import { itemIdentity } from '../item.js';
import { logItemDone } from '../observe/item-log.js';
import { logsAt } from '../observe/logger.js';
import { addFigure, noteServedFrom, noteSlowest, type RunSummary } from '../observe/run-summary.js';
import type { Item } from '../plugin-api.js';
import { chainRoot, runChain } from './chain.js';
import { label, located, type SourceRuntime } from './driver.js';
import { countFailure, fail, finalize, reject, rollback } from './finalize.js';
import {
  type ContentCheck,
  checkLedger,
  countParked,
  hashingItem,
  isParked,
  pruneOncePerPass,
} from './ledger-check.js';
import { droppedByReason, planDelivered, planFiltered } from './plan.js';
import { type Job, linkSignals, type PassState, parseReserved, RESERVED, type Stage } from './stage.js';
import { backoffDelay, sleep } from './timing.js';

/** How a caller (a cluster worker) keeps an item from acting once it no longer owns it. */
export interface ProcessOptions {
  /**
   * Awaited right before every commit to a sink and before every source tidy-up; throws a
   * SluiceError `SLUICE_E_FENCED` when the caller has lost the item (a cluster worker whose job
   * lock expired). The runtime then stops the item without any further side effect and records
   * nothing for it.
   */
  fence?: () => Promise<void>;
  /**
   * Aborted when the caller has lost the item (its reason a `SLUICE_E_FENCED` error): the
   * item's steps, reads and sinks are aborted at once instead of running on to the next fence.
   */
  signal?: AbortSignal;
  /** Process items the ledger says are done. */
  force?: boolean;
}

/** The fence of an item nobody can take away (one process, or a pool thread of it). */
const noFence = async (): Promise<void> => undefined;

export async function processItem(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  summary: RunSummary,
  pass: PassState,
  options: ProcessOptions,
): Promise<void> {
  const id = itemIdentity(item);
  const pruning = pruneOncePerPass(stage, pass);
  if (pruning) await pruning;
  let finalizeOnly = false;
  /** What an earlier attempt committed, when only its after_success failed. */
  let committedEarlier: Pick<Job, 'leaves' | 'bytesIn' | 'figures' | 'companions'> | undefined;
  let reservedEarlier: string[] = [];
  if (item.rejected !== undefined) {
    // A rejected entry fails like any item, so it is parked like one (its version is its
    // listing's); nothing else of the ledger applies to a name that cannot be addressed.
    const record = options.force ? undefined : await stage.ledger.get(stage.def.name, id);
    if (record?.state === 'failed' && isParked(stage, record))
      countParked(stage, source, item, record, summary);
    else await reject(stage, source, item, summary);
    return;
  }
  if (!options.force) {
    const verdict = await checkLedger(stage, id);
    if (verdict.kind === 'done') {
      countSkipped(stage, source, item, verdict.record.destinations, summary);
      return;
    }
    if (verdict.kind === 'parked') {
      countParked(stage, source, item, verdict.record, summary);
      return;
    }
    const record = verdict.record;
    finalizeOnly = record?.state === 'committed';
    if (record?.state === 'seen') reservedEarlier = record.destinations.filter((d) => d.startsWith(RESERVED));
  }
  const content: ContentCheck | undefined = stage.def.identity === 'content' ? {} : undefined;
  const started = performance.now();
  stage.emit('item:start', { source: source.name, path: item.path, size: item.size });
  const { maxAttempts } = stage.def.policy.retry;
  const linked = options.signal ? linkSignals(stage.signal, options.signal) : undefined;
  const signal = linked?.signal ?? stage.signal;
  // What carries over from one attempt to the next.
  const committed = new Set<string>();
  const written: Job['written'] = [];
  const reserved = new Set(reservedEarlier);
  try {
    for (let attempt = 1; ; attempt++) {
      const job: Job = {
        source,
        root: item,
        signal,
        leaves: [],
        filtered: 0,
        bytesIn: 0,
        committed,
        written,
        claims: new Set(),
        pass,
        touchesSource: source.afterSuccess !== 'keep' && !stage.dryRun,
        reserved,
        reservedEarlier: parseReserved(reservedEarlier),
        fence: options.fence ?? noFence,
        figures: [],
        companions: new Set(),
      };
      try {
        if (committedEarlier) {
          Object.assign(job, committedEarlier);
        } else if (!finalizeOnly) {
          stage.ledger.record(stage.def.name, id, {
            state: 'seen',
            attempts: attempt,
            destinations: [...reserved],
          });
          const root = chainRoot(stage, content ? hashingItem(stage, item, id, content) : item, job);
          // Marks the bytes as the source's own, which lets delivery skip reading them (server-side
          // copy, the small-file path reading the listed item): `content` must read them itself.
          if (!content) job.chainOpen = root.open;
          await runChain(stage, root, 0, job);
          if (job.leaves.length === 0 && job.filtered > 0) {
            summary.filtered++;
            planFiltered(stage, summary, source, item, () => droppedByReason(stage, job));
            return;
          }
        }
        if (signal.aborted) throw signal.reason;
        if (stage.dryRun) {
          summary.plan.push(planDelivered(stage, source, item, job, finalizeOnly));
        } else {
          if (!finalizeOnly) {
            const destinations = job.leaves.flatMap((l) => l.locations);
            stage.ledger.record(stage.def.name, id, {
              state: 'committed',
              attempts: attempt,
              destinations,
              content: content?.sha256,
            });
            // Every copy is committed: if after_success fails now, a retry redoes only that step.
            committedEarlier = {
              leaves: job.leaves,
              bytesIn: job.bytesIn,
              figures: job.figures,
              companions: job.companions,
            };
          }
          finalizeOnly = true;
          await finalize(stage, source, item, id, attempt, job, content?.sha256);
        }
        countSuccess(stage, source, item, job, summary, performance.now() - started);
        return;
      } catch (raw) {
        // A lost item's work fails with whatever its aborted reads and sinks raised: the loss is the cause.
        const err = stamp(stage, options.signal?.aborted ? options.signal.reason : raw, item, source);
        if (err.code === 'SLUICE_E_FENCED') {
          // Another worker owns the item now: anything more from here (a record, a dead letter,
          // removing what was written) could undo its work.
          stage.log.warn(
            { item: label(item), err: errorMessage(err) },
            'lost the item to another worker; stopped without side effects',
          );
          throw err;
        }
        if (stage.signal.aborted) {
          stage.log.warn({ item: label(item) }, 'interrupted; the item will be redone next run');
          return;
        }
        if (content?.duplicate) {
          await rollback(stage, job);
          const { destinations } = content.duplicate;
          // This identity is done too: the next pass skips it without reading it again.
          if (!stage.dryRun)
            stage.ledger.record(stage.def.name, id, {
              state: 'finalized',
              attempts: attempt,
              destinations,
              content: content.sha256,
            });
          stage.log.info(
            { item: label(item), same_as: `${content.duplicate.source}:${content.duplicate.path}` },
            'same bytes done before (identity: content); not delivered again, source left as it is',
          );
          countSkipped(stage, source, item, destinations, summary);
          return;
        }
        if (stage.driver.isRetryable(err) && attempt < maxAttempts) {
          const delay = Math.max(backoffDelay(attempt, stage.def.policy.retry), err.retryAfterMs ?? 0);
          summary.retries++;
          stage.emit('item:retry', {
            source: source.name,
            path: item.path,
            attempt,
            delayMs: delay,
            error: errorMessage(err),
          });
          stage.log.warn(
            { item: label(item), attempt, delayMs: Math.round(delay), err: errorMessage(err) },
            'retrying',
          );
          await sleep(delay, signal).catch(() => undefined);
          continue;
        }
        if (finalizeOnly) {
          // Delivered and recorded `committed`; only the tidy-up failed. The record stays
          // `committed` (no dead letter: the bytes are where they belong), so the next pass
          // retries the tidy-up alone instead of delivering the file again.
          countFailure(
            stage,
            source,
            item,
            err,
            attempt,
            summary,
            'delivered, but the source could not be tidied up; the next pass retries the tidy-up alone',
          );
          return;
        }
        await rollback(stage, job);
        await fail(stage, source, item, err, attempt, summary);
        return;
      } finally {
        stage.reading?.delete(job);
      }
    }
  } finally {
    linked?.dispose();
  }
}

function countSkipped(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  destinations: string[],
  summary: RunSummary,
): void {
  summary.skipped++;
  stage.emit('item:skipped', { source: source.name, path: item.path });
  if (stage.dryRun)
    summary.plan.push({ source: source.name, path: item.path, destinations, action: 'skip-done' });
}

function countSuccess(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  job: Job,
  summary: RunSummary,
  ms: number,
): void {
  let bytesOut = 0;
  let written = 0;
  for (const leaf of job.leaves) {
    bytesOut += leaf.bytes;
    if (!leaf.present) written++;
  }
  const bytesIn = stage.driver.hasByteSteps ? job.bytesIn : bytesOut;
  // Every sink already held it (the destination pre-check): delivered without a byte read.
  const present = job.leaves.length > 0 && written === 0;
  summary.ok++;
  if (present) summary.alreadyAtDestination++;
  if (item.root !== undefined) noteServedFrom(summary, source.name, item.root);
  summary.filesWritten += written;
  summary.bytesOut += bytesOut;
  summary.bytesIn += bytesIn;
  for (const figure of job.figures) addFigure(summary, figure);
  noteSlowest(summary, item.path, ms);
  stage.emit('item:done', { source: source.name, path: item.path, ms, bytes: bytesOut, bytesIn });
  // The line is built only for a logger that writes it (`--quiet`: thousands of files a second).
  if (!logsAt(stage.log, 'info')) return;
  if (present) {
    stage.log.info(
      { item: label(item), to: job.leaves.flatMap((l) => l.locations), ms: Math.round(ms) },
      `already at destination: ${item.path} (not read)`,
    );
    return;
  }
  logItemDone(stage.log, {
    item: label(item),
    path: item.path,
    destinations: job.leaves.flatMap((l) => (l.locations.length > 0 ? l.locations : [l.destination])),
    bytesIn,
    bytesOut,
    ms,
    dryRun: stage.dryRun,
  });
}

function stamp(stage: Stage, raw: unknown, item: Item, source: SourceRuntime): SluiceError {
  if (raw instanceof SluiceError && raw.context.item) return raw;
  return located(raw, { pipeline: stage.def.name, item: `${source.name}:${item.path}` });
}
