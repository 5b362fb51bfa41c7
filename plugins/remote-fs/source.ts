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
  isRetryable: (err: unknown) => boolean | undefined;
}

export function createRemoteSource(options: RemoteSourceOptions): SourceInstance {
  const { pool, root } = options;

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
          if (options.recursive) subdirs.push(relPath);
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
