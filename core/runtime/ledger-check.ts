/**
 * The ledger check of one listed item, as the pipeline's `identity` and `policy.failed` define
 * it: done before (skip), parked after failing for good (held back), or to process. And the
 * once-per-pass pruning `state.retention` asks for.
 */
import { createHash } from 'node:crypto';
import { pipeline, Transform } from 'node:stream';
import { errorMessage, SluiceError } from '../errors.js';
import type { LedgerRecord } from '../ledger/ledger.js';
import { MAX_PARKED_LISTED, type RunSummary } from '../observe/run-summary.js';
import type { Item, ItemIdentity } from '../plugin-api.js';
import type { SourceRuntime } from './driver.js';
import type { PassState, Stage } from './stage.js';

export type LedgerVerdict =
  | { kind: 'process'; record?: LedgerRecord }
  | { kind: 'done'; record: LedgerRecord }
  | { kind: 'parked'; record: LedgerRecord };

export async function checkLedger(stage: Stage, id: ItemIdentity): Promise<LedgerVerdict> {
  const record = await stage.ledger.get(stage.def.name, id);
  if (record?.state === 'finalized') return { kind: 'done', record };
  // A committed record is this version's own delivery waiting for its tidy-up: finish it.
  if (stage.def.identity === 'name' && record?.state !== 'committed') {
    const done = await stage.ledger.doneByName(stage.def.name, id.source, id.path);
    if (done) return { kind: 'done', record: done };
  }
  if (record?.state === 'failed' && isParked(stage, record)) return { kind: 'parked', record };
  return { kind: 'process', record };
}

export function isParked(stage: Stage, record: LedgerRecord): boolean {
  const policy = stage.def.policy.failed;
  if (policy.mode === 'every_pass') return false;
  if (policy.mode === 'on_change') return true;
  return Date.now() - record.updatedAt.getTime() < policy.afterMs;
}

/** Counts a parked item: once per pass, with the reason and the time it failed. */
export function countParked(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  record: LedgerRecord,
  summary: RunSummary,
): void {
  summary.parked++;
  const entry = {
    source: source.name,
    path: item.path,
    error: record.error ?? 'failed',
    since: record.updatedAt.toISOString(),
  };
  if (summary.parkedItems.length < MAX_PARKED_LISTED) summary.parkedItems.push(entry);
  if (stage.dryRun)
    summary.plan.push({
      source: source.name,
      path: item.path,
      destinations: [],
      action: 'parked',
      error: entry.error,
    });
  stage.emit('item:parked', entry);
}

/** What `identity: content` learnt from reading an item's bytes. */
export interface ContentCheck {
  sha256?: string;
  /** The finalized record of the same bytes under another identity, once the read ended. */
  duplicate?: LedgerRecord;
}

/**
 * The item with an `open` that hashes the bytes on their way to the steps and, at their end
 * (before any sink can commit: a sink commits only after its input ended), looks the hash up.
 * Same bytes done before: the stream fails, so nothing is committed, and `check.duplicate`
 * tells the attempt it was a duplicate, not a failure. No server-side copy: it reads nothing.
 */
export function hashingItem(stage: Stage, item: Item, id: ItemIdentity, check: ContentCheck): Item {
  return {
    ...item,
    origin: undefined,
    async open(signal) {
      const body = await item.open(signal);
      const hash = createHash('sha256');
      const tap = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done(null, chunk);
        },
        flush(done) {
          const sha256 = hash.digest('hex');
          check.sha256 = sha256;
          stage.ledger.doneByContent(stage.def.name, sha256).then((record) => {
            const self =
              record &&
              record.source === id.source &&
              record.path === id.path &&
              record.version === id.version;
            if (!record || self) return done();
            check.duplicate = record;
            done(
              new SluiceError(
                'SLUICE_E_INTERNAL',
                `same bytes as ${record.source}:${record.path}, done before (identity: content)`,
                { retryable: false },
              ),
            );
          }, done);
        },
      });
      // Errors travel both ways: a failed read fails the tap, a consumer that stops destroys the read.
      return pipeline(body, tap, () => undefined);
    },
  };
}

const prunedPasses = new WeakSet<PassState>();
const PRUNE_CHUNK = 5_000;
const PRUNE_PER_PASS = 100_000;

/**
 * `state.retention`: deletes finalized records older than the retention, in chunks through the
 * (pipeline, state, updated_at) index, at most PRUNE_PER_PASS per pass, on the pass's first
 * item. A failure only costs space: it is logged and the item goes on. Undefined (nothing to
 * wait for) on every other item: an await per item costs at thousands of files a second.
 */
export function pruneOncePerPass(stage: Stage, pass: PassState): Promise<void> | undefined {
  const retention = stage.def.retentionMs;
  if (retention === undefined || stage.dryRun || prunedPasses.has(pass)) return undefined;
  prunedPasses.add(pass);
  return prune(stage, retention);
}

async function prune(stage: Stage, retention: number): Promise<void> {
  const before = new Date(Date.now() - retention);
  try {
    let total = 0;
    for (let n = PRUNE_CHUNK; n === PRUNE_CHUNK && total < PRUNE_PER_PASS; total += n)
      n = await stage.ledger.prune(stage.def.name, before, PRUNE_CHUNK);
    if (total > 0) stage.log.debug({ pruned: total, before: before.toISOString() }, 'ledger retention');
  } catch (err) {
    stage.log.warn({ err: errorMessage(err) }, 'could not prune the ledger (state.retention)');
  }
}
