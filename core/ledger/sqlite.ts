/** Embedded ledger: SQLite (better-sqlite3) in WAL mode, writes batched per transaction. */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { SluiceError } from '../errors.js';
import type { ItemIdentity } from '../plugin-api.js';
import {
  type Ledger,
  type LedgerRecord,
  type LedgerState,
  type LedgerUpdate,
  ledgerKey,
  STATE_RANK,
  stateRank,
} from './ledger.js';

const BATCH_SIZE = 512;
/**
 * How long a `seen` record may wait past its batch's timer. An item that ends within it is
 * written once (its `committed` or `finalized` row), not twice: most small files end long before.
 * Losing a `seen` in a crash costs nothing (the item is not done either way, and what a redo needs
 * from it, the reserved names of `if_exists: rename`, is written by an explicit flush). flush()
 * (and so close(), prune(), history()) writes every record, held or not.
 */
const SEEN_HOLD_MS = 1000;

/** The rank of a state column, in SQL (see STATE_RANK). */
const SQL_RANK = (column: string) =>
  `CASE ${column} ${Object.entries(STATE_RANK)
    .map(([state, rank]) => `WHEN '${state}' THEN ${rank}`)
    .join(' ')} ELSE 0 END`;
const BATCH_DELAY_MS = 25;

interface Row {
  pipeline: string;
  source: string;
  path: string;
  version: string;
  state: LedgerState;
  attempts: number;
  destinations: string;
  error: string | null;
  content?: string | null;
  updated_at: number;
}

interface Pending {
  pipeline: string;
  id: ItemIdentity;
  update: LedgerUpdate;
  at: number;
}

export class SqliteLedger implements Ledger {
  /**
   * A process killed right after deleting (or moving) a source file must not lose the batch
   * holding that item's `committed` record: the file is no longer listed, so nothing would ever
   * correct the ledger, which would keep calling a delivered item `seen` (found by the SIGKILL
   * chaos test, test/chaos/sftp-s3-kill.test.ts).
   */
  readonly flushBeforeSourceChange = true;
  private readonly pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | null = null;
  /** The write the flush() calls of this turn of the event loop wait for. */
  private grouped: Promise<void> | undefined;
  private readonly getStmt: BetterSqlite3.Statement;
  private readonly upsertStmt: BetterSqlite3.Statement;
  private readonly byNameStmt: BetterSqlite3.Statement;
  private readonly byContentStmt: BetterSqlite3.Statement | undefined;
  private readonly pruneStmt: BetterSqlite3.Statement;
  private readonly writeBatch: (rows: Pending[]) => void;

  private constructor(
    private readonly db: BetterSqlite3.Database,
    /** Opened for reading only (`sluice plan`, `history`, dry runs): `record` refuses. */
    private readonly readOnly = false,
  ) {
    db.pragma('busy_timeout = 5000');
    // A read-only connection takes the database as it is: changing its mode or schema would write.
    if (!db.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec(`CREATE TABLE IF NOT EXISTS items (
      pipeline TEXT NOT NULL, source TEXT NOT NULL, path TEXT NOT NULL, version TEXT NOT NULL,
      state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, destinations TEXT NOT NULL DEFAULT '[]',
      error TEXT, updated_at INTEGER NOT NULL,
      PRIMARY KEY (pipeline, source, path, version)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS items_recent ON items (pipeline, updated_at);
    CREATE INDEX IF NOT EXISTS items_by_state ON items (pipeline, state, updated_at);`);
      // Ledgers written before `identity: content` lack the column; adding it keeps their rows.
      if (!hasColumn(db, 'content')) db.exec('ALTER TABLE items ADD COLUMN content TEXT');
      db.exec(
        'CREATE INDEX IF NOT EXISTS items_content ON items (pipeline, content) WHERE content IS NOT NULL',
      );
    }
    const withContent = hasColumn(db, 'content');
    this.getStmt = db.prepare(
      'SELECT * FROM items WHERE pipeline = ? AND source = ? AND path = ? AND version = ?',
    );
    this.upsertStmt =
      db.prepare(`INSERT INTO items (pipeline, source, path, version, state, attempts, destinations, error, content, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (pipeline, source, path, version) DO UPDATE SET
        state = excluded.state, attempts = excluded.attempts,
        destinations = CASE WHEN excluded.destinations = '[]' THEN items.destinations ELSE excluded.destinations END,
        error = excluded.error, content = COALESCE(excluded.content, items.content), updated_at = excluded.updated_at
      WHERE ${SQL_RANK('excluded.state')} >= ${SQL_RANK('items.state')}`);
    this.byNameStmt = db.prepare(
      `SELECT * FROM items WHERE pipeline = ? AND source = ? AND path = ? AND state = 'finalized' ORDER BY updated_at DESC LIMIT 1`,
    );
    this.byContentStmt = withContent
      ? db.prepare(
          `SELECT * FROM items WHERE pipeline = ? AND content = ? AND state = 'finalized' ORDER BY updated_at DESC LIMIT 1`,
        )
      : undefined;
    // Through items_by_state: the oldest finalized records, never a scan of the whole ledger.
    this.pruneStmt = db.prepare(`DELETE FROM items WHERE (pipeline, source, path, version) IN (
      SELECT pipeline, source, path, version FROM items
      WHERE pipeline = ? AND state = 'finalized' AND updated_at < ? ORDER BY updated_at LIMIT ?)`);
    this.writeBatch = db.transaction((rows: Pending[]) => {
      // Positional parameters: binding them costs less than named ones, once per row.
      for (const r of rows) {
        this.upsertStmt.run(
          r.pipeline,
          r.id.source,
          r.id.path,
          r.id.version,
          r.update.state,
          r.update.attempts ?? 0,
          JSON.stringify(r.update.destinations ?? []),
          r.update.error ?? null,
          r.update.content ?? null,
          r.at,
        );
      }
    });
  }

  /**
   * `readOnly` writes nothing at all — no state folder, no ledger, not even SQLite's `-wal`/`-shm`
   * files, which a read-only connection to a WAL database creates (and leaves) when they are
   * absent. A missing ledger reads as an empty one. A ledger some process has open (its `-wal`
   * and `-shm` exist) is read in place, seeing that process's latest writes; a closed one is
   * read from a copy in memory.
   */
  static async open(stateDir: string, options: { readOnly?: boolean } = {}): Promise<SqliteLedger> {
    try {
      const { default: Database } = await import('better-sqlite3');
      const file = join(stateDir, 'ledger.sqlite');
      if (options.readOnly) {
        if (!existsSync(file)) return new SqliteLedger(new Database(':memory:'), true);
        if (existsSync(`${file}-wal`) && existsSync(`${file}-shm`))
          return new SqliteLedger(new Database(file, { readonly: true, fileMustExist: true }), true);
        const image = readFileSync(file);
        // Bytes 18–19 of the header say WAL (2); an in-memory database reads only the rollback form (1).
        if (image.length >= 20 && image[18] === 2 && image[19] === 2) image.fill(1, 18, 20);
        return new SqliteLedger(new Database(image, { readonly: true }), true);
      }
      mkdirSync(stateDir, { recursive: true });
      return new SqliteLedger(new Database(file));
    } catch (err) {
      throw new SluiceError(
        'SLUICE_E_LEDGER',
        `cannot open the ledger in ${stateDir}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  async get(pipeline: string, id: ItemIdentity): Promise<LedgerRecord | undefined> {
    const queued = this.pending.get(ledgerKey(pipeline, id));
    const row = this.getStmt.get(pipeline, id.source, id.path, id.version) as Row | undefined;
    const stored = row ? fromRow(row) : undefined;
    if (!queued) return stored;
    // What the row will hold once the batch is written (the upsert's rank condition and its
    // keeping of earlier destinations).
    if (stored && stateRank(queued.update.state) < stateRank(stored.state)) return stored;
    const record = toRecord(queued);
    return record.destinations.length === 0 && stored
      ? { ...record, destinations: stored.destinations }
      : record;
  }

  record(pipeline: string, id: ItemIdentity, update: LedgerUpdate): void {
    if (this.readOnly)
      throw new SluiceError(
        'SLUICE_E_INTERNAL',
        `the ledger was opened read-only (a dry run records nothing); cannot record ${id.source}:${id.path}`,
      );
    const key = ledgerKey(pipeline, id);
    const prior = this.pending.get(key);
    // The batch holds one update per item (seen, committed and finalized of an item that ends
    // before the batch is written are one row), so it applies the rank rule the upsert applies.
    if (prior && stateRank(update.state) < stateRank(prior.update.state)) return;
    // Keep what the upsert would keep of an update earlier in the same batch: its destinations
    // (committed → finalized) and its content hash.
    const destinations = update.destinations ?? prior?.update.destinations;
    const content = update.content ?? prior?.update.content;
    this.pending.set(key, { pipeline, id, update: { ...update, destinations, content }, at: Date.now() });
    if (this.pending.size >= BATCH_SIZE) this.flushNow();
    else this.armTimer();
  }

  private armTimer(): void {
    this.timer ??= setTimeout(() => this.flushDue(), BATCH_DELAY_MS);
  }

  async doneByName(pipeline: string, source: string, path: string): Promise<LedgerRecord | undefined> {
    const queued = this.queuedFinalized(
      (p) => p.pipeline === pipeline && p.id.source === source && p.id.path === path,
    );
    if (queued) return this.get(pipeline, queued);
    const row = this.byNameStmt.get(pipeline, source, path) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  async doneByContent(pipeline: string, sha256: string): Promise<LedgerRecord | undefined> {
    const queued = this.queuedFinalized((p) => p.pipeline === pipeline && p.update.content === sha256);
    if (queued) return this.get(pipeline, queued);
    const row = this.byContentStmt?.get(pipeline, sha256) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /**
   * A finalized record still in the batch. Looked up there rather than by flushing first: these
   * lookups run once per listed item (`identity: name`), and a flush each would cost one
   * transaction per item. A batch entry never lowers a stored state, so it can only add a match;
   * `get` then merges it with the stored row (destinations recorded in an earlier batch).
   */
  private queuedFinalized(match: (p: Pending) => boolean): ItemIdentity | undefined {
    for (const p of this.pending.values()) if (p.update.state === 'finalized' && match(p)) return p.id;
    return undefined;
  }

  async prune(pipeline: string, before: Date, limit: number): Promise<number> {
    this.flushNow();
    if (this.readOnly) return 0;
    try {
      return this.pruneStmt.run(pipeline, before.getTime(), limit).changes;
    } catch (err) {
      throw new SluiceError('SLUICE_E_LEDGER', `cannot prune the ledger: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /**
   * Writes everything recorded before the call, in one transaction shared by every flush()
   * asked for in the same turn of the event loop: items finishing together (after_success
   * flushes twice per item) share a write instead of paying one each. Resolves once it is
   * written; records made meanwhile ride along.
   */
  flush(): Promise<void> {
    this.grouped ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.grouped = undefined;
        try {
          this.flushNow();
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });
    return this.grouped;
  }

  /** Writes everything pending. */
  private flushNow(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending.size === 0) return;
    const rows = [...this.pending.values()];
    this.pending.clear();
    this.write(rows);
  }

  /**
   * The batch timer: writes what is pending except `seen` records younger than SEEN_HOLD_MS,
   * which wait for their item's next record (which replaces them) or for a later batch.
   */
  private flushDue(): void {
    this.timer = null;
    const heldSince = Date.now() - SEEN_HOLD_MS;
    const rows: Pending[] = [];
    for (const [key, p] of this.pending) {
      if (p.update.state === 'seen' && p.at > heldSince) continue;
      rows.push(p);
      this.pending.delete(key);
    }
    if (this.pending.size > 0) this.armTimer();
    if (rows.length > 0) this.write(rows);
  }

  private write(rows: Pending[]): void {
    try {
      this.writeBatch(rows);
    } catch (err) {
      throw new SluiceError('SLUICE_E_LEDGER', `cannot write the ledger: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async history(
    pipeline: string,
    options: { limit?: number; state?: LedgerState } = {},
  ): Promise<LedgerRecord[]> {
    this.flushNow();
    const limit = options.limit ?? 50;
    const rows = options.state
      ? (this.db
          .prepare('SELECT * FROM items WHERE pipeline = ? AND state = ? ORDER BY updated_at DESC LIMIT ?')
          .all(pipeline, options.state, limit) as Row[])
      : (this.db
          .prepare('SELECT * FROM items WHERE pipeline = ? ORDER BY updated_at DESC LIMIT ?')
          .all(pipeline, limit) as Row[]);
    return rows.map(fromRow);
  }

  async close(): Promise<void> {
    this.flushNow();
    this.db.close();
  }
}

function hasColumn(db: BetterSqlite3.Database, name: string): boolean {
  return (db.pragma('table_info(items)') as Array<{ name: string }>).some((c) => c.name === name);
}

function fromRow(row: Row): LedgerRecord {
  return {
    pipeline: row.pipeline,
    source: row.source,
    path: row.path,
    version: row.version,
    state: row.state,
    attempts: row.attempts,
    destinations: JSON.parse(row.destinations) as string[],
    error: row.error ?? undefined,
    content: row.content ?? undefined,
    updatedAt: new Date(row.updated_at),
  };
}

function toRecord(p: Pending): LedgerRecord {
  return {
    pipeline: p.pipeline,
    source: p.id.source,
    path: p.id.path,
    version: p.id.version,
    state: p.update.state,
    attempts: p.update.attempts ?? 0,
    destinations: p.update.destinations ?? [],
    error: p.update.error,
    content: p.update.content,
    updatedAt: new Date(p.at),
  };
}
