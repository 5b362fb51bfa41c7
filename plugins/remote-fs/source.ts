/** The listing/reading/tidying half shared by the SFTP and FTP sources. */
import { posix } from 'node:path';
import { createItem } from '../../core/item.js';
import type { Item, SourceInstance } from '../../core/plugin-api.js';
import type { RemoteConnection } from './connection.js';
import { isTempName, joinRemote } from './paths.js';
import { openPooledRead } from './read.js';
import type { ConnectionPool } from './pool.js';

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
}

export function createRemoteSource(options: RemoteSourceOptions): SourceInstance {
  const { pool, root } = options;
  const moveTo = options.moveTo === undefined ? undefined : normalizeRemoteDir(options.moveTo);

  async function* list(signal: AbortSignal): AsyncGenerator<Item> {
    // Depth-first, one folder at a time, so the first items flow before the tree is walked.
    const pending: string[] = [''];
    while (pending.length > 0) {
      signal.throwIfAborted();
      const relDir = pending.pop()!;
      const entries = await pool.use((c) => c.list(joinRemote(root, relDir)), signal);
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const subdirs: string[] = [];
      for (const entry of entries) {
        const relPath = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
        if (entry.type === 'directory') {
          if (options.recursive && normalizeRemoteDir(joinRemote(root, relPath)) !== moveTo) subdirs.push(relPath);
        } else if (entry.type === 'file' && !isTempName(entry.name)) {
          const remotePath = joinRemote(root, relPath);
          yield createItem({
            source: options.sourceName,
            path: relPath,
            size: entry.size,
            mtime: entry.mtime,
            open: (s) => openPooledRead(pool, remotePath, s),
          });
        }
      }
      pending.push(...subdirs.reverse());
    }
  }

  return {
    list,
    async openPath(relPath, signal) {
      const remotePath = joinRemote(root, relPath);
      const stat = await pool.use((c) => c.stat(remotePath), signal);
      if (stat?.type !== 'file') return null;
      return openPooledRead(pool, remotePath, signal);
    },
    async remove(item) {
      await pool.use((c) => c.remove(joinRemote(root, item.path)));
    },
    async move(item, toDir) {
      const from = joinRemote(root, item.path);
      const to = joinRemote(toDir, item.path);
      await pool.use(async (c) => {
        await c.mkdirp(posix.dirname(to));
        await c.renameOver(from, to);
      });
    },
    isRetryable: options.isRetryable,
    close: () => pool.close(),
  };
}

/** `a/b/`, `./a//b` → `a/b`; `/x/` → `/x`: folder paths in one spelling, for comparison. */
function normalizeRemoteDir(path: string): string {
  const normalized = posix.normalize(path);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}
