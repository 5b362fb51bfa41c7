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
import type { RemoteConnection, RemoteEntry } from './connection.js';
import { realFolderCheck } from './links.js';
import { listFolder } from './listing.js';
import { inside, isInside, isTempName, joinRemote, nameError } from './paths.js';
import type { ConnectionPool } from './pool.js';
import { openPooledRead } from './read.js';

export interface RemoteSourceOptions {
  pool: ConnectionPool<RemoteConnection>;
  /** Name items carry as `source`. */
  sourceName: string;
  /** Folders listed, in order (absolute, or relative to the login folder). */
  roots: string[];
  /** `paths:` was configured: items carry `root`, the folder they were listed under. */
  multiRoot: boolean;
  /** `first`: a relative path listed under an earlier root hides it under later ones. */
  match: 'all' | 'first';
  recursive: boolean;
  /**
   * The `after_success: {move_to}` folder. When it lies inside a root it is never listed:
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
  const { pool, roots } = options;
  /** `move_to` never moves a file through a symbolic link planted below it (links.ts). */
  const moveFolderIsReal = realFolderCheck(options.describe);
  const moveTo = options.moveTo === undefined ? undefined : normalizeRemoteDir(options.moveTo);
  /**
   * Folders never walked into: `move_to`, and every configured root (a root inside another is
   * listed as itself, so no file is listed twice under two roots).
   */
  const notWalked = new Set([...roots.map(normalizeRemoteDir), ...(moveTo === undefined ? [] : [moveTo])]);

  async function* list(signal: AbortSignal): AsyncGenerator<Item> {
    // With `match: first`, the relative paths earlier roots listed (they hide later ones).
    const earlier = options.match === 'first' ? new Set<string>() : undefined;
    for (const root of roots) {
      // Only `match: first` keeps the paths listed (a root's own paths never hide each other).
      const listed: string[] | undefined = earlier && [];
      for await (const item of listRoot(root, signal)) {
        if (earlier?.has(item.path)) continue;
        listed?.push(item.path);
        yield item;
      }
      for (const path of listed ?? []) earlier?.add(path);
    }
  }

  async function* listRoot(root: string, signal: AbortSignal): AsyncGenerator<Item> {
    const rootMark = options.multiRoot ? { root } : {};
    const rejectedAt = (relPath: string, reason: string, size?: number, mtime?: Date) =>
      createItem({
        source: options.sourceName,
        path: escapeControl(relPath),
        size,
        mtime,
        rejected: reason,
        open: () => Promise.reject(nameError(relPath, reason)),
        ...rootMark,
      });
    // Depth-first, one folder at a time, each folder as it arrives: the first items flow
    // before the tree, or a folder of any size, is read, and memory does not grow with either.
    const pending: string[] = [''];
    while (pending.length > 0) {
      signal.throwIfAborted();
      const relDir = pending.pop()!;
      const subdirs: string[] = [];
      const batches = nameOrdered(listFolder(pool, joinRemote(root, relDir), signal));
      try {
        for (;;) {
          let batch: IteratorResult<RemoteEntry[]>;
          try {
            batch = await batches.next();
          } catch (err) {
            // One unreadable folder must not hide the others: report it and go on. A dropped
            // connection (retryable) still fails the listing, to be retried as a whole.
            if (relDir === '' || options.isRetryable(err) !== false) throw err;
            yield rejectedAt(
              relDir,
              `this folder could not be listed (${(err as Error).message}): its files were not read`,
            );
            break;
          }
          if (batch.done) break;
          signal.throwIfAborted();
          for (const entry of batch.value) {
            const relPath = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
            const unsafe = unsafeNameReason(entry.name);
            if (entry.type === 'directory') {
              if (!options.recursive || notWalked.has(normalizeRemoteDir(joinRemote(root, relPath))))
                continue;
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
                ...(stranded ? { storedAt: relPath } : {}),
                size: entry.size,
                mtime: entry.mtime,
                open: (s) => openPooledRead(pool, remotePath, s),
                ...rootMark,
              });
            }
          }
        }
      } finally {
        // A consumer that stopped early: close the folder on the server.
        await batches.return(undefined);
      }
      for (let i = subdirs.length - 1; i >= 0; i--) pending.push(subdirs[i]);
    }
  }

  /**
   * Runs a version-checked tidy-up of `item` on one connection. Not through `pool.use`, which
   * repeats a task on a fresh connection: a repeat must see what the first try did (the file
   * already aside), and the runtime's retry does that with the version-derived aside name.
   */
  async function tidy(item: Item, act: (c: RemoteConnection, aside: string) => Promise<void>): Promise<void> {
    const path = joinRemote(await rootOf(item), inside(item.path, 'source'));
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

  /** A root the item names must be one of ours: an item path never leads elsewhere. */
  function knownRoot(root: string): string {
    if (!roots.includes(root)) throw nameError(root, 'is not one of the folders of this source');
    return root;
  }

  /**
   * The root an item was listed under. An item known by path alone (a companion, an item
   * revived from its description) belongs to the first root that has the file, as with
   * `match: first`; with none, to the first root (the tidy-up then finds it gone).
   */
  async function rootOf(item: Item): Promise<string> {
    if (item.root !== undefined) return knownRoot(item.root);
    if (roots.length === 1) return roots[0];
    for (const root of roots) {
      const found = await pool.use((c) => c.stat(joinRemote(root, inside(item.path, 'source'))));
      if (found?.type === 'file') return root;
    }
    return roots[0];
  }

  return {
    list,
    /** `root` (an item's own) limits the look-up to that root; else the roots in order. */
    async openPath(relPath: string, signal?: AbortSignal, root?: string) {
      if (!isInside(relPath)) return null;
      for (const candidate of root === undefined ? roots : [knownRoot(root)]) {
        const remotePath = joinRemote(candidate, relPath);
        const stat = await pool.use((c) => c.stat(remotePath), signal);
        if (stat?.type === 'file') return openPooledRead(pool, remotePath, signal);
      }
      return null;
    },
    async remove(item) {
      await tidy(item, (c, aside) => c.remove(aside));
    },
    async move(item, toDir) {
      const to = joinRemote(toDir, inside(item.path, 'source'));
      await tidy(item, async (c, aside) => {
        await moveFolderIsReal(c, toDir, posix.dirname(to));
        await c.mkdirp(posix.dirname(to));
        await c.renameOver(aside, to);
      });
    },
    async check(req) {
      const details: string[] = [];
      for (const root of roots) {
        const { detail } = await checkRemoteSource(
          { ...options.preflight, pool, root, describe: options.describe },
          req,
        );
        details.push(details.length === 0 ? detail : detail.replace(/^logged in as [^,]*, /, ''));
      }
      return { detail: details.join('; ') };
    },
    isRetryable: options.isRetryable,
    close: () => pool.close(),
  };
}

/**
 * A folder of up to this many entries is listed in name order (as a whole); a bigger one comes
 * as the server sends it, in name-ordered runs of this many or a server reply, so memory stays
 * bounded. Nothing depends on the order; it keeps small listings (plans, logs) predictable.
 */
const ORDERED_UP_TO = 1000;

async function* nameOrdered(batches: AsyncGenerator<RemoteEntry[]>): AsyncGenerator<RemoteEntry[]> {
  const byName = (a: RemoteEntry, b: RemoteEntry) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  let head: RemoteEntry[] | undefined = [];
  for await (const batch of batches) {
    if (head === undefined) {
      yield batch.sort(byName);
      continue;
    }
    head = head.concat(batch);
    if (head.length < ORDERED_UP_TO) continue;
    yield head.sort(byName);
    head = undefined;
  }
  if (head && head.length > 0) yield head.sort(byName);
}

/** `a/b/`, `./a//b` → `a/b`; `/x/` → `/x`: folder paths in one spelling, for comparison. */
function normalizeRemoteDir(path: string): string {
  const normalized = posix.normalize(path);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}
