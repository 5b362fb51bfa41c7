/** The atomic-write half shared by the SFTP and FTP sinks: temp name in the same folder, then rename. */
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { SluiceError } from '../../core/errors.js';
import {
  existsWithOtherBytes,
  type IfExistsMode,
  noFreeName,
  renameCandidates,
} from '../../core/if-exists.js';
import type { Logger } from '../../core/observe/logger.js';
import type { SinkCommit, SinkInstance, SinkWriteRequest } from '../../core/plugin-api.js';
import { HashTap, hashStream, pipeThrough } from '../../core/streams.js';
import { checkRemoteSink, type PreflightTraits } from './check.js';
import type { RemoteConnection } from './connection.js';
import { realFolderCheck } from './links.js';
import { inside, joinRemote, tempPathFor } from './paths.js';
import type { ConnectionPool } from './pool.js';
import { openPooledRead } from './read.js';

export type IfExists = IfExistsMode;

export interface RemoteSinkOptions {
  pool: ConnectionPool<RemoteConnection>;
  /** Folder destinations are joined to (absolute, or relative to the login folder). */
  root: string;
  ifExists: IfExists;
  /** `sftp://host:port/path` style location for logs and the ledger. */
  describe: (path: string) => string;
  isRetryable: (err: unknown) => boolean | undefined;
  /** `preserve_mtime`: give the upload the item's mtime before the rename, and report it read back. */
  preserveMtime: boolean;
  log: Logger;
  preflight: PreflightTraits;
}

/** SFTP v3 attributes and FTP's MFMT/MDTM keep whole seconds. */
const MTIME_PRECISION_MS = 1000;

export function createRemoteSink(options: RemoteSinkOptions): SinkInstance {
  const { pool, root, ifExists, describe } = options;

  /** A link at a destination name holds no bytes of ours: never taken as a copy. */
  const linkAtName = (path: string) =>
    new SluiceError(
      'SLUICE_E_DESTINATION',
      `${describe(path)} exists and is a symbolic link: it is not taken as a copy, and nothing was written there`,
      { retryable: false },
    );

  /** Throws when something at `path` exists and the server says it is a symbolic link. */
  async function refuseLinkAt(c: RemoteConnection, path: string): Promise<void> {
    if (c.lstat && (await c.lstat(path))?.link) throw linkAtName(path);
  }

  /**
   * What is at the destination `path` (one request): never through a link — a link at the name
   * or a folder on the way that is one is refused, so nothing there counts as a copy.
   */
  async function existingAt(c: RemoteConnection, path: string) {
    await folderIsReal(c, root, posix.dirname(path));
    if (!c.lstat) return c.stat(path);
    const there = await c.lstat(path);
    if (there?.link) throw linkAtName(path);
    return there;
  }

  /** Refuses a folder below the root that is a symbolic link on the server (links.ts). */
  const folderIsReal = realFolderCheck(describe);

  async function commit(
    c: RemoteConnection,
    temp: string,
    req: SinkWriteRequest,
    sent: HashTap,
    mtimeKept: boolean,
  ): Promise<SinkCommit> {
    const target = joinRemote(root, req.destination);
    const committed = async (
      path: string,
      skipped = false,
      destination = req.destination,
    ): Promise<SinkCommit> => {
      // Read back after the rename: what the server holds now is what verification compares.
      const stat = await c.stat(path);
      return {
        location: describe(path),
        size: stat?.size,
        ...(mtimeKept && !skipped && stat?.mtime ? { mtime: stat.mtime } : {}),
        ...(skipped ? { skipped } : {}),
        ...(destination !== req.destination ? { destination } : {}),
      };
    };
    switch (ifExists) {
      case 'overwrite':
        await req.reserve?.(req.destination);
        await c.renameOver(temp, target);
        return committed(target);
      case 'skip':
        await req.reserve?.(req.destination);
        if (await c.renameIfAbsent(temp, target)) return committed(target);
        await refuseLinkAt(c, target);
        await c.remove(temp);
        return committed(target, true);
      case 'fail': {
        await req.reserve?.(req.destination);
        if (await c.renameIfAbsent(temp, target)) return committed(target);
        await refuseLinkAt(c, target);
        const existing = await c.stat(target);
        const same =
          existing?.size === sent.bytes &&
          (await hashStream(await c.openRead(target, () => {}))).digest === sent.digest();
        await c.remove(temp);
        if (same) return committed(target, true);
        throw existsWithOtherBytes(describe(target));
      }
      case 'rename':
        for (const candidate of renameCandidates(req.destination)) {
          await req.reserve?.(candidate);
          const path = joinRemote(root, candidate);
          if (await c.renameIfAbsent(temp, path)) return committed(path, false, candidate);
        }
        await c.remove(temp);
        throw noFreeName(describe(target));
    }
  }

  let mtimeUnsupportedSaid = false;

  /** Gives the uploaded temp file the item's mtime (before the rename makes it visible). */
  async function keepMtime(c: RemoteConnection, temp: string, mtime: Date | undefined): Promise<boolean> {
    if (!options.preserveMtime || mtime === undefined) return false;
    if (await c.setMtime(temp, mtime)) return true;
    if (!mtimeUnsupportedSaid) {
      mtimeUnsupportedSaid = true;
      options.log.debug(
        { location: describe(root) },
        'the server offers no way to set a file modification time: files keep the time of their upload, and no mtime is reported for verification',
      );
    }
    return false;
  }

  async function removeQuietly(path: string): Promise<void> {
    try {
      await pool.use((c) => c.remove(path));
    } catch {
      // Best effort: the temp name is hidden and recognisable, and sources skip it.
    }
  }

  async function write(req: SinkWriteRequest): Promise<SinkCommit> {
    const target = joinRemote(root, req.destination);
    if (ifExists === 'skip') {
      const existing = await pool.use((c) => existingAt(c, target), req.signal);
      if (existing) {
        // The contract is to consume the body; the runtime may be hashing it on the way.
        await drain(req.body);
        return { location: describe(target), size: existing.size, skipped: true };
      }
    }
    const abortBody = () =>
      req.body.destroy(req.signal.reason instanceof Error ? req.signal.reason : new Error('aborted'));
    req.signal.addEventListener('abort', abortBody, { once: true });
    const temp = tempPathFor(target);
    const sent = new HashTap(ifExists === 'fail' ? 'sha256' : null);
    let connection: RemoteConnection | undefined;
    try {
      ({ connection } = await pool.acquire(req.signal));
      await folderIsReal(connection, root, posix.dirname(target));
      await connection.mkdirp(posix.dirname(target));
      await connection.upload(temp, pipeThrough(req.body, sent));
      const mtimeKept = await keepMtime(connection, temp, req.item.mtime);
      const result = await commit(connection, temp, req, sent, mtimeKept);
      pool.release(connection);
      return result;
    } catch (err) {
      if (connection) pool.releaseAfter(connection, err);
      if (!req.body.destroyed) req.body.destroy();
      await removeQuietly(temp);
      throw err;
    } finally {
      req.signal.removeEventListener('abort', abortBody);
    }
  }

  return {
    write,
    mtimePrecisionMs: MTIME_PRECISION_MS,
    async stat(destination, signal) {
      const path = joinRemote(root, inside(destination, 'sink'));
      const found = await pool.use((c) => existingAt(c, path), signal);
      if (!found) return null;
      if (found.type !== 'file') {
        const what = found.type === 'directory' ? 'a folder' : 'not a regular file';
        throw new SluiceError(
          'SLUICE_E_SINK',
          `${describe(path)} is ${what}: a file cannot be written there`,
          {
            retryable: false,
          },
        );
      }
      // SFTP and FTP servers hold no checksums of their files.
      return { size: found.size, ...(found.mtime ? { mtime: found.mtime } : {}) };
    },
    check: (req) => checkRemoteSink({ ...options.preflight, pool, root, describe }, req),
    readBack: (destination, signal) => openPooledRead(pool, joinRemote(root, destination), signal),
    async remove(destination) {
      await pool.use((c) => c.remove(joinRemote(root, destination)));
    },
    isRetryable: options.isRetryable,
    close: () => pool.close(),
  };
}

async function drain(body: Readable): Promise<void> {
  for await (const _chunk of body) {
    // discard
  }
}
