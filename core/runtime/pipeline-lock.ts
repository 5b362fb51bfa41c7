/**
 * One process per pipeline and state folder: `sluice run`/`watch` hold this lock for as long as
 * they run the pipeline, so two overlapping runs (cron jobs that overlap, a run beside a watch)
 * never process the same items at once.
 *
 * The lock is an exclusive SQLite transaction on `<state>/locks/<name>.lock`: SQLite takes an
 * OS file lock (fcntl) that the kernel drops when the process ends, however it ends. A crashed
 * or SIGKILLed holder therefore never leaves a stale lock to time out or to take over, and no
 * timer has to keep it fresh (a lock file with a heartbeat, as proper-lockfile does, is declared
 * compromised when the event loop stalls longer than its staleness window). better-sqlite3 is
 * already loaded for the ledger. Who holds the lock is written beside it (`<name>.holder.json`)
 * for the message the next process prints; that file is information, never the lock.
 */
import { mkdirSync, readFileSync, realpathSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { SluiceError } from '../errors.js';

export interface LockHolder {
  pid: number;
  host: string;
  /** The pipeline file the holder runs. */
  file: string;
  since: string;
}

/** Locks held by this process, by lock file: SQLite would refuse a second one too, but without the holder's file. */
const heldHere = new Map<string, LockHolder>();

export class PipelineLock {
  private constructor(
    readonly pipeline: string,
    readonly stateDir: string,
    private readonly lockFile: string,
    private readonly holderFile: string,
    private db: BetterSqlite3.Database | undefined,
  ) {}

  /**
   * Takes the lock of pipeline `name` on `stateDir` for `file`, or throws `SLUICE_E_LOCKED`
   * naming who holds it. Creates the state folder (a real run writes its ledger there anyway).
   */
  static async acquire(def: { name: string; stateDir: string; file: string }): Promise<PipelineLock> {
    const { default: Database } = await import('better-sqlite3');
    const dir = join(def.stateDir, 'locks');
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new SluiceError(
        'SLUICE_E_LEDGER',
        `cannot create the state folder ${def.stateDir}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    // Two spellings of one folder (a symlink, `./x` and `/abs/x`) are one lock.
    const real = realpathSync(dir);
    const lockFile = join(real, `${def.name}.lock`);
    const holderFile = join(real, `${def.name}.holder.json`);
    const here = heldHere.get(lockFile);
    if (here) throw lockedError(def, here, true);
    const db = new Database(lockFile);
    try {
      db.pragma('busy_timeout = 0');
      // No journal file beside the lock: the transaction never writes.
      db.pragma('journal_mode = MEMORY');
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY')
        throw lockedError(def, readHolder(holderFile), false);
      throw new SluiceError(
        'SLUICE_E_LEDGER',
        `cannot take the pipeline lock ${lockFile}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const holder: LockHolder = {
      pid: process.pid,
      host: hostname(),
      file: def.file,
      since: new Date().toISOString(),
    };
    heldHere.set(lockFile, holder);
    const temp = `${holderFile}.${process.pid}.tmp`;
    writeFileSync(temp, `${JSON.stringify(holder)}\n`);
    renameSync(temp, holderFile);
    return new PipelineLock(def.name, def.stateDir, lockFile, holderFile, db);
  }

  /** Whether this lock is the one a run of `def` needs (same name and state folder). */
  covers(def: { name: string; stateDir: string }): boolean {
    return this.db !== undefined && def.name === this.pipeline && def.stateDir === this.stateDir;
  }

  /** Releases the lock (idempotent). The holder note goes first, while the lock still keeps others out. */
  release(): void {
    if (!this.db) return;
    const mine = readHolder(this.holderFile);
    if (mine?.pid === process.pid && mine.host === hostname()) {
      try {
        unlinkSync(this.holderFile);
      } catch {
        // already gone: it is only a note
      }
    }
    heldHere.delete(this.lockFile);
    this.db.close();
    this.db = undefined;
  }
}

function readHolder(file: string): LockHolder | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
  } catch {
    return undefined;
  }
}

function lockedError(
  def: { name: string; stateDir: string; file: string },
  holder: LockHolder | undefined,
  sameProcess: boolean,
): SluiceError {
  const who = holder
    ? sameProcess
      ? `by ${holder.file} in this process`
      : `by pid ${holder.pid} on ${holder.host} (${holder.file}, since ${holder.since})`
    : 'by another process';
  return new SluiceError(
    'SLUICE_E_LOCKED',
    `pipeline "${def.name}" is locked (SLUICE_E_LOCKED): it is already running on state folder ${def.stateDir} ${who}; ${def.file} was not run`,
    {
      context: {
        hint: sameProcess
          ? 'two pipeline files declare this name: give each its own `name:` (or its own state folder)'
          : 'runs of one pipeline never overlap: let the running one finish (its lock goes when its process ends, even if it crashes), or space the schedule out',
      },
    },
  );
}
