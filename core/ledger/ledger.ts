/**
 * The ledger: a durable record of every item's state, keyed by pipeline + source + path +
 * version. "Only new files" = listing minus finalized records. Stores are behind this
 * interface: SQLite embedded (default), Redis for scale-out.
 */
import type { ItemIdentity } from '../plugin-api.js';

export type LedgerState = 'seen' | 'committed' | 'finalized' | 'failed';

/**
 * How far an item got. A record never moves to a lower rank: once an item's copies are
 * committed, a late `failed` (a worker that lost its job, a tidy-up that failed, a forced redo
 * that failed) must not make the next pass deliver it again, nor forget the destinations it chose.
 */
/**
 * A `failed` record is also what parks an item (policy.failed): it ranks with `seen`, so a
 * replay (`sluice retry`, which records `seen`) re-opens it, and a later success replaces it.
 */
export const STATE_RANK: Readonly<Record<LedgerState, number>> = {
  seen: 0,
  failed: 0,
  committed: 1,
  finalized: 2,
};

export function stateRank(state: LedgerState): number {
  return STATE_RANK[state];
}

export interface LedgerRecord {
  pipeline: string;
  source: string;
  path: string;
  version: string;
  state: LedgerState;
  /** Attempts in the run that wrote this record. */
  attempts: number;
  /** Where the item's copies landed (sink locations), when committed. */
  destinations: string[];
  error?: string;
  /** sha256 (hex) of the item's bytes as read from the source, when it was computed (`identity: content`). */
  content?: string;
  updatedAt: Date;
}

export interface LedgerUpdate {
  state: LedgerState;
  attempts?: number;
  destinations?: string[];
  error?: string;
  /** See LedgerRecord.content; a later update without it keeps the stored one. */
  content?: string;
}

export interface Ledger {
  /** The latest record of this exact item version, if any. */
  get(pipeline: string, id: ItemIdentity): Promise<LedgerRecord | undefined>;
  /**
   * Records a state change. Writes are batched (one transaction per batch): a crash may lose
   * the last few records, which only means those items are redone — the sink commit is
   * atomic and deterministic, so redoing yields the same single copy.
   *
   * Monotonic per item: an update whose state ranks lower than the stored one (STATE_RANK:
   * seen = failed < committed < finalized) is ignored, whole — `failed` never replaces
   * `committed` or `finalized`, `seen` never replaces either. Equal ranks replace each other
   * (`seen` ⇄ `failed`; `committed` and `finalized` update their own attempts and destinations).
   * The store decides this in its own write (atomically, so two writers racing on one item
   * cannot interleave a read and a write), never the caller.
   */
  record(pipeline: string, id: ItemIdentity, update: LedgerUpdate): void;
  /**
   * A finalized record of any version of this path (`identity: name`), the latest first. Records
   * stay keyed by version whatever the identity, so switching identity back and forth keeps
   * every record meaningful.
   */
  doneByName(pipeline: string, source: string, path: string): Promise<LedgerRecord | undefined>;
  /** A finalized record whose bytes had this sha256, under any source, path or version (`identity: content`). */
  doneByContent(pipeline: string, sha256: string): Promise<LedgerRecord | undefined>;
  /**
   * Deletes at most `limit` `finalized` records last changed before `before` (`state.retention`);
   * returns how many. `committed`, `seen` and `failed` records are never pruned: they hold what
   * a redo or a parked item needs.
   */
  prune(pipeline: string, before: Date, limit: number): Promise<number>;
  /** Writes everything recorded so far. */
  flush(): Promise<void>;
  /** Most recent records first. */
  history(pipeline: string, options?: { limit?: number; state?: LedgerState }): Promise<LedgerRecord[]>;
  close(): Promise<void>;
  /**
   * When true, the runtime awaits `flush()` between recording `committed` and changing the
   * source (after_success delete/move): a process or worker killed in between must leave the
   * `committed` record (for the worker that takes its job over, and so that a deleted source
   * never leaves its item recorded as merely `seen`), and again right after recording
   * `finalized` (a kill then would leave a delivered item `committed` for good).
   */
  readonly flushBeforeSourceChange?: boolean;
}

export function ledgerKey(pipeline: string, id: ItemIdentity): string {
  return `${pipeline}\u0000${id.source}\u0000${id.path}\u0000${id.version}`;
}
