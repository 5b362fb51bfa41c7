/**
 * What the stages of one item share: the run's context (`Stage`), one pass's memory
 * (`PassState`) and one attempt at one listed item (`Job`).
 */
import type { PipelineDefinition } from '../config/load.js';
import { SluiceError, type StreamOrigin } from '../errors.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../observe/logger.js';
import type { RunEvents } from '../observe/run-summary.js';
import type { Item, SummaryFigure } from '../plugin-api.js';
import type { HashTap } from '../streams.js';
import type { PluginDriver, SinkRuntime, SourceRuntime } from './driver.js';

/** The run every stage works in. */
export interface Stage {
  readonly def: PipelineDefinition;
  readonly log: Logger;
  readonly ledger: Ledger;
  readonly driver: PluginDriver;
  readonly dryRun: boolean;
  /** Aborted when in-flight items must stop (drain timeout, second signal). */
  readonly signal: AbortSignal;
  /** Spool space, removed when the run closes. */
  readonly tempRoot: string;
  emit<K extends keyof RunEvents>(event: K, ...args: RunEvents[K]): boolean;
  /** With progress tracking: what each in-flight item has read so far. */
  readonly reading: Map<Job, ReadingProgress> | undefined;
}

export interface ReadingProgress {
  source: string;
  path: string;
  size?: number;
  tap?: HashTap;
  started: number;
}

/**
 * What one pass knows across its items: the identities listed (a listing that repeats an item
 * — offset pagination while the server inserts — processes it once) and which item claimed
 * each destination (two items on one destination: the second fails, keeping its source).
 */
export interface PassState {
  listed: Set<string>;
  claims: ClaimBook;
}

/**
 * Which item holds each destination in one pass. A pass whose items run on several threads
 * (runtime/pool.ts) keeps one book, on the thread that lists, and the others ask it.
 */
export interface ClaimBook {
  /**
   * Claims `destination` for `owner` when nobody holds it; returns who held it before (the
   * same owner included), or undefined when the claim was taken now.
   */
  take(destination: string, owner: string): Promise<string | undefined>;
  /** Gives these destinations back (an item that failed for good). */
  release(destinations: Iterable<string>): void;
  /** Gives back every destination `owner` holds (an ended item of a watching pass). */
  releaseOwner(owner: string): void;
}

/** The claim book of a pass that runs in one thread. */
export class LocalClaims implements ClaimBook {
  private readonly holders = new Map<string, string>();

  takeNow(destination: string, owner: string): string | undefined {
    const holder = this.holders.get(destination);
    if (holder === undefined) this.holders.set(destination, owner);
    return holder;
  }

  async take(destination: string, owner: string): Promise<string | undefined> {
    return this.takeNow(destination, owner);
  }

  release(destinations: Iterable<string>): void {
    for (const d of destinations) this.holders.delete(d);
  }

  releaseOwner(owner: string): void {
    for (const [destination, holder] of this.holders) if (holder === owner) this.holders.delete(destination);
  }
}

/** One attempt at one listed item (what carries over between attempts is shared, not copied). */
export interface Job {
  source: SourceRuntime;
  root: Item;
  signal: AbortSignal;
  /** What was delivered; `present`: every sink already held it (the pre-check), nothing was read. */
  leaves: Array<{ destination: string; locations: string[]; bytes: number; present?: boolean }>;
  filtered: number;
  bytesIn: number;
  /** The open() the step chain started from (the listed item's, or a counting wrapper). */
  chainOpen?: Item['open'];
  /** `sink index \u0000 destination` committed in an earlier attempt of this run: not rewritten. */
  committed: Set<string>;
  /** What this item's attempts wrote (never a skip): removed again if the item fails for good. */
  written: Array<{ sink: SinkRuntime; destination: string }>;
  /** Destinations claimed by this attempt (a second leaf on one of them is a collision). */
  claims: Set<string>;
  pass: PassState;
  /** True when finalizing changes the source (delete / move_to): a skip must then hold the same bytes. */
  touchesSource: boolean;
  /** Ledger entries of the names reserved for rename, this run's and a crashed run's. */
  reserved: Set<string>;
  /** Per sink index: names a crashed earlier run reserved (one of them may hold this item's copy). */
  reservedEarlier: Map<number, string[]>;
  /** Throws SLUICE_E_FENCED once the caller no longer owns the item (see ProcessOptions). */
  fence: () => Promise<void>;
  /**
   * Figures steps reported during this attempt. Added to the summary only when the item
   * succeeds: a retried attempt re-runs its steps, and counting each attempt inflated the
   * compression ratio and space saved.
   */
  figures: SummaryFigure[];
  /**
   * Source paths of the companions steps declared for this item (`x.csv.sha256`, `x.gpg.sig`):
   * the source's after_success follows the item's own to them.
   */
  companions: Set<string>;
}

/** Prefix of the ledger entries that record names `if_exists: rename` reserved before a commit. */
export const RESERVED = 'reserved:';

/** `reserved:<sink index>:<destination>` ledger entries, per sink index. */
export function parseReserved(entries: readonly string[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const entry of entries) {
    if (!entry.startsWith(RESERVED)) continue;
    const rest = entry.slice(RESERVED.length);
    const colon = rest.indexOf(':');
    const index = Number(rest.slice(0, colon));
    if (colon < 0 || !Number.isInteger(index)) continue;
    out.set(index, [...(out.get(index) ?? []), rest.slice(colon + 1)]);
  }
  return out;
}

/** Where the listed item's bytes come from, for the errors they raise. */
export function sourceOrigin(stage: Stage, job: Job): StreamOrigin {
  return {
    context: stage.driver.where(job.source.ref, `${job.source.name}:${job.root.path}`),
    code: 'SLUICE_E_SOURCE',
  };
}

/** The error of a source whose bytes differ in length from what it listed. */
export function listedSizeMismatch(listed: number, read: number, origin: StreamOrigin): SluiceError {
  return new SluiceError(
    'SLUICE_E_CHANGED',
    `read ${read} bytes but the source listed ${listed}: the file changed while it was read, so this copy is not kept`,
    {
      retryable: false,
      context: origin.context,
    },
  );
}

/**
 * A signal aborted as soon as either is, for one item or one write. Unlike `AbortSignal.any`,
 * nothing stays attached to the long-lived `parent` (the run's signal) once `dispose()` is
 * called: an item a second for months must not leave a dependent behind each time.
 */
export function linkSignals(
  parent: AbortSignal,
  other: AbortSignal,
): { signal: AbortSignal; dispose(): void } {
  if (parent.aborted || other.aborted) {
    return { signal: parent.aborted ? parent : other, dispose: () => undefined };
  }
  const controller = new AbortController();
  const fromParent = () => controller.abort(parent.reason);
  const fromOther = () => controller.abort(other.reason);
  parent.addEventListener('abort', fromParent, { once: true });
  other.addEventListener('abort', fromOther, { once: true });
  return {
    signal: controller.signal,
    dispose() {
      parent.removeEventListener('abort', fromParent);
      other.removeEventListener('abort', fromOther);
    },
  };
}
