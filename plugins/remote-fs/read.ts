import type { Readable } from 'node:stream';
import type { RemoteConnection } from './connection.js';
import type { ConnectionPool } from './pool.js';

/**
 * Opens a remote file on a borrowed connection, held for the whole life of the stream and
 * returned when the stream closes (dropped if the error that ended it means the link is gone).
 */
export async function openPooledRead(
  pool: ConnectionPool<RemoteConnection>,
  path: string,
  signal?: AbortSignal,
): Promise<Readable> {
  const { connection } = await pool.acquire(signal);
  let released = false;
  const done = (err?: Error) => {
    if (released) return;
    released = true;
    pool.releaseAfter(connection, err);
  };
  let stream: Readable;
  try {
    stream = await connection.openRead(path, done);
  } catch (err) {
    done(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
  if (signal) {
    const onAbort = () =>
      stream.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      stream.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  }
  return stream;
}
