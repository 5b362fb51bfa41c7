/** The listing/reading/tidying half shared by the SFTP and FTP sources. */
import { posix } from 'node:path';
import { escapeControl } from '../../core/errors.js';
import {
  type AsideOps,
  asideName,
  createItem,
  strandedAside,
  tidyListedVersion,
  unsafeNameReason,
} from '../../core/item.js';
import type { Item, SourceInstance } from '../../core/plugin-api.js';
import { checkRemoteSource, type PreflightTraits } from './check.js';
import type { RemoteConnection } from './connection.js';
import { inside, isInside, isTempName, joinRemote, nameError } from './paths.js';
import type { ConnectionPool } from './pool.js';
import { openPooledRead } from './read.js';

export interface RemoteSourceOptions {
  pool: ConnectionPool<RemoteConnection>;
  /** Name items carry as `source`. */
  sourceName: string;
  /** Folder listed (absolute, or relative to the login folder). */
  root: string;
  recursive: boolean;
  /**
   * The `after_success: {move_to}` folder. When it lies inside `root` it is never listed:
   * otherwise every pass would take the moved files for new ones (new path, new identity) and
   * process them again, moving them one folder deeper each time.
   */
  moveTo?: string;
  isRetryable: (err: unknown) => boolean | undefined;
  /** `sftp://host:port/path` style location for messages. */
  describe: (path: string) => string;
  preflight: PreflightTraits;
}

/** SFTP v3 attributes and FTP's MDTM give whole seconds: versions compare at that precision. */
const MTIME_PRECISION_MS = 1000;

export function createRemoteSource(options: RemoteSourceOptions): SourceInstance {
  const { pool, root } = options;
  const moveTo = options.moveTo === undefined ? undefined : normalizeRemoteDir(options.moveTo);

  const rejectedAt = (relPath: string, reason: string, size?: number, mtime?: Date) =>
    createItem({
      source: options.sourceName,
      path: escapeControl(relPath),
      size,
      mtime,
      rejected: reason,
      open: () => Promise.reject(nameError(relPath, reason)),
    });

  async function* list(signal: AbortSignal): AsyncGenerator<Item> {
    // Depth-first, one folder at a time, so the first items flow before the tree is walked.
    const pending: string[] = [''];
    while (pending.length > 0) {
      signal.throwIfAborted();
      const relDir = pending.pop()!;
      let entries: Awaited<ReturnType<RemoteConnection['list']>>;
      try {
        entries = await pool.use((c) => c.list(joinRemote(root, relDir)), signal);
      } catch (err) {
        // One unreadable folder must not hide the others: report it and go on. A dropped
        // connection (retryable) still fails the listing, to be retried as a whole.
        if (relDir === '' || options.isRetryable(err) !== false) throw err;
        yield rejectedAt(
          relDir,
          `this folder could not be listed (${(err as Error).message}): its files were not read`,
        );
        continue;
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const subdirs: string[] = [];
      for (const entry of entries) {
        const relPath = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
        const unsafe = unsafeNameReason(entry.name);
        if (entry.type === 'directory') {
          if (!options.recursive || normalizeRemoteDir(joinRemote(root, relPath)) === moveTo) continue;
          // A linked folder could lead outside `path` or back to one of its parents (no end).
          if (entry.link) continue;
          if (unsafe) yield rejectedAt(relPath, `${unsafe} (a folder: its files are not listed)`);
          else subdirs.push(relPath);
        } else if (entry.type === 'file' && !isTempName(entry.name)) {
          if (unsafe) {
            yield rejectedAt(relPath, unsafe, entry.size, entry.mtime);
            continue;
          }
          // A file a tidy-up set aside before a crash: listed as the item it was, so its tidy-up is redone.
          const stranded = strandedAside(options.sourceName, relDir, entry.name, entry);
          if (stranded?.rejected) {
            yield rejectedAt(stranded.path, stranded.rejected, entry.size, entry.mtime);
            continue;
          }
          const remotePath = joinRemote(root, relPath);
          yield createItem({
            source: options.sourceName,
            path: stranded?.path ?? relPath,
            size: entry.size,
            mtime: entry.mtime,
            open: (s) => openPooledRead(pool, remotePath, s),
          });
        }
      }
      pending.push(...subdirs.reverse());
    }
  }

  /**
   * Runs a version-checked tidy-up of `item` on one connection. Not through `pool.use`, which
   * repeats a task on a fresh connection: a repeat must see what the first try did (the file
   * already aside), and the runtime's retry does that with the version-derived aside name.
   */
  async function tidy(item: Item, act: (c: RemoteConnection, aside: string) => Promise<void>): Promise<void> {
    const path = joinRemote(root, inside(item.path, 'source'));
    const aside = posix.join(posix.dirname(path), asideName(item));
    const { connection: c } = await pool.acquire();
    const ops: AsideOps = {
      stat: async (p) => {
        const found = await c.stat(p);
        return found && { size: found.size, mtime: found.mtime, file: found.type === 'file' };
      },
      renameIfAbsent: (from, to) => c.renameIfAbsent(from, to),
    };
    try {
      await tidyListedVersion(ops, item, path, aside, (a) => act(c, a), MTIME_PRECISION_MS);
      pool.release(c);
    } catch (err) {
      pool.releaseAfter(c, err);
      throw err;
    }
  }

  return {
    list,
    async openPath(relPath, signal) {
      if (!isInside(relPath)) return null;
      const remotePath = joinRemote(root, relPath);
      const stat = await pool.use((c) => c.stat(remotePath), signal);
      if (stat?.type !== 'file') return null;
      return openPooledRead(pool, remotePath, signal);
    },
    async remove(item) {
      await tidy(item, (c, aside) => c.remove(aside));
    },
    async move(item, toDir) {
      const to = joinRemote(toDir, inside(item.path, 'source'));
      await tidy(item, async (c, aside) => {
        await c.mkdirp(posix.dirname(to));
        await c.renameOver(aside, to);
      });
    },
    check: (req) => checkRemoteSource({ ...options.preflight, pool, root, describe: options.describe }, req),
    isRetryable: options.isRetryable,
    close: () => pool.close(),
  };
}

/** `a/b/`, `./a//b` → `a/b`; `/x/` → `/x`: folder paths in one spelling, for comparison. */
function normalizeRemoteDir(path: string): string {
  const normalized = posix.normalize(path);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}
