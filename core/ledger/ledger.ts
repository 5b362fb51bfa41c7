/**
 * The ledger: a durable record of every item's state, keyed by pipeline + source + path +
 * version. "Only new files" = listing minus finalized records. Stores are behind this
 * interface: SQLite embedded (default), Redis for scale-out.
 */
import type { ItemIdentity } from '../plugin-api.js';

export type LedgerState = 'seen' | 'committed' | 'finalized' | 'failed';

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
  updatedAt: Date;
}

export interface LedgerUpdate {
  state: LedgerState;
  attempts?: number;
  destinations?: string[];
  error?: string;
}

export interface Ledger {
  /** The latest record of this exact item version, if any. */
  get(pipeline: string, id: ItemIdentity): Promise<LedgerRecord | undefined>;
  /**
   * Records a state change. Writes are batched (one transaction per batch): a crash may lose
   * the last few records, which only means those items are redone — the sink commit is
   * atomic and deterministic, so redoing yields the same single copy.
   */
  record(pipeline: string, id: ItemIdentity, update: LedgerUpdate): void;
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
