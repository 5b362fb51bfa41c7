/** What the shared remote source and sink need from one SFTP or FTP connection. */
import type { Readable } from 'node:stream';
import type { PooledConnection } from './pool.js';

export type RemoteEntryType = 'file' | 'directory' | 'other';

export interface RemoteEntry {
  name: string;
  type: RemoteEntryType;
  size: number;
  mtime?: Date;
  /** A symbolic link (type and size are its target's). */
  link?: boolean;
}

export interface RemoteStat {
  type: RemoteEntryType;
  size: number;
  mtime?: Date;
}

/** A folder being read a server reply at a time (see `RemoteConnection.openFolder`). */
export interface RemoteFolder {
  /** The next entries, as `list` gives them; undefined once the folder is read to the end. */
  next(): Promise<RemoteEntry[] | undefined>;
  /** Closes the folder on the server; fine at any time and more than once, never throws. */
  close(): Promise<void>;
}

export interface RemoteConnection extends PooledConnection {
  /** Entries of a folder (without `.` and `..`); symbolic links resolved when possible. */
  list(dir: string): Promise<RemoteEntry[]>;
  /**
   * Opens `dir` to read its entries a server reply at a time, so a folder of any size is
   * listed in bounded memory. Only where the protocol runs many requests at once on one
   * session (SFTP): the folder is read on after the connection went back to the pool, beside
   * whatever its next borrower does, so a listing never holds one of `max_connections` while
   * the runtime processes what it yielded. Without it (FTP) `list` reads the folder whole.
   */
  openFolder?(dir: string): Promise<RemoteFolder>;
  /** undefined when nothing exists at `path`. */
  stat(path: string): Promise<RemoteStat | undefined>;
  /**
   * A read stream of the file. The connection is busy until the stream closes; `onDone` is
   * called once then, with the error that ended it, if any.
   */
  openRead(path: string, onDone: (err?: Error) => void): Promise<Readable>;
  /** Streams `body` into `path` (created or truncated). Rejects on an error of `body`. */
  upload(path: string, body: Readable): Promise<void>;
  /** Renames, replacing an existing `to` (atomically where the server can). */
  renameOver(from: string, to: string): Promise<void>;
  /** Renames only when `to` does not exist; returns false (and leaves `from`) when it does. */
  renameIfAbsent(from: string, to: string): Promise<boolean>;
  remove(path: string): Promise<void>;
  /**
   * Sets the modification time of the file at `path` (whole seconds). False, with nothing
   * changed, when the server offers no way to (an FTP server without MFMT or MDTM-write).
   */
  setMtime(path: string, mtime: Date): Promise<boolean>;
  /** Creates a folder and its parents; fine when it exists. */
  mkdirp(dir: string): Promise<void>;
  /**
   * `path` itself, a symbolic link not followed (`link: true`; its own attributes then);
   * undefined when nothing is there. Absent where the protocol cannot tell (FTP).
   */
  lstat?(path: string): Promise<(RemoteStat & { link: boolean }) | undefined>;
}
