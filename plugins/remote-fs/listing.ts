/** Reading one remote folder as a stream of entry batches, whatever the connection offers. */
import type { RemoteConnection, RemoteEntry, RemoteFolder } from './connection.js';
import type { ConnectionPool } from './pool.js';

/**
 * The entries of `dir` in batches as the server sends them (SFTP: one READDIR reply, ~100
 * entries from OpenSSH), the next one requested while the caller works through the current
 * one; at most two batches are held. The folder is opened on a borrowed connection (a stale
 * one is replaced, as `pool.use` does) and read on after it is returned (see `openFolder`).
 * A connection without `openFolder` (FTP) gives the folder as one batch. Leaving the loop
 * early closes the folder on the server.
 */
export async function* listFolder(
  pool: ConnectionPool<RemoteConnection>,
  dir: string,
  signal?: AbortSignal,
): AsyncGenerator<RemoteEntry[]> {
  const opened = await pool.use<{ folder: RemoteFolder } | { entries: RemoteEntry[] }>(
    async (c) => (c.openFolder ? { folder: await c.openFolder(dir) } : { entries: await c.list(dir) }),
    signal,
  );
  if ('entries' in opened) {
    if (opened.entries.length > 0) yield opened.entries;
    return;
  }
  const { folder } = opened;
  let next = folder.next();
  try {
    for (;;) {
      const batch = await next;
      if (batch === undefined) return;
      signal?.throwIfAborted();
      next = folder.next();
      if (batch.length > 0) yield batch;
    }
  } finally {
    // A read ahead nobody will take: its failure (the session lost meanwhile) is of no interest.
    next.catch(() => {});
    await folder.close();
  }
}
