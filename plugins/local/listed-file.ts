/**
 * Opening a file the local source listed, for a copy made by path (the local sink's kernel copy,
 * a move onto another file system): never through a link in its last component, never blocking
 * on a FIFO put in its place, and checked on the descriptor to be the listed file — a regular
 * file of the listed size and mtime, inside the source's real root. Whoever can name and
 * replace files in a source folder must not get another file's bytes delivered.
 */
import { createHash } from 'node:crypto';
import {
  constants,
  createReadStream,
  createWriteStream,
  existsSync,
  fstatSync,
  openSync,
  readlinkSync,
  type Stats,
} from 'node:fs';
import { sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { SluiceError } from '../../core/errors.js';
import { STREAM_CHUNK } from '../../core/streams.js';
import { fstat, open } from './fs-callbacks.js';

/** Where this process's open descriptors have paths (Linux): a copy by path reads through it. */
export const PROC_FD = existsSync('/proc/self/fd') ? '/proc/self/fd' : undefined;

/**
 * No link in the last component, no wait on a FIFO. Node takes numeric flags everywhere; its
 * typings only admit the string forms.
 */
const LISTED_FLAGS = (constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK) as unknown as string;

/** The listed file at `path` is not what is there now: not copied, and not retried. */
export function changedSinceListing(path: string, why: string): SluiceError {
  return new SluiceError(
    'SLUICE_E_CHANGED',
    `${path} changed since it was listed (${why}), so it is not copied`,
    {
      retryable: false,
    },
  );
}

/** Opens `abs` (listed as `path`) read-only; a link now at its name is refused, not followed. */
export async function openListed(abs: string, path: string): Promise<number> {
  try {
    return await open(abs, LISTED_FLAGS);
  } catch (err) {
    throw linkRefused(err, path);
  }
}

/** ELOOP from an O_NOFOLLOW open: a link is at the listed name now. */
function linkRefused(err: unknown, path: string): unknown {
  return (err as NodeJS.ErrnoException).code === 'ELOOP'
    ? changedSinceListing(path, 'a symbolic link is there now')
    : err;
}

/**
 * What the just-opened descriptor `fd` is: its fstat and, where /proc is and `withPath`, its real
 * path. Asked synchronously: for a file just opened both are answered from the kernel's memory
 * in microseconds, where two thread-pool round trips cost tens of microseconds a file.
 */
export function openedAs(fd: number, withPath: boolean): { st: Stats; real?: string } {
  return { st: fstatSync(fd), real: withPath && PROC_FD ? readlinkSync(`${PROC_FD}/${fd}`) : undefined };
}

/**
 * `openedAs` with the fstat through the thread pool, for a file that may be on a network or
 * FUSE mount (its attributes may need a round trip). The real path comes from /proc, in the
 * kernel, either way.
 */
export async function openedAsync(fd: number, withPath: boolean): Promise<{ st: Stats; real?: string }> {
  return { st: await fstat(fd), real: withPath && PROC_FD ? readlinkSync(`${PROC_FD}/${fd}`) : undefined };
}

/** `openListed` on this thread (sync-io.ts). */
export function openListedSync(abs: string, path: string): number {
  try {
    return openSync(abs, LISTED_FLAGS);
  } catch (err) {
    throw linkRefused(err, path);
  }
}

/** What the listing knew of the file. */
export interface ListedVersion {
  size?: number;
  mtime?: Date;
}

/**
 * Why the opened file (`st`, its descriptor's fstat; `real`, its real path when known) is not
 * the listed one, or undefined when it is. `realRoot`: the source folder's real path.
 */
export function notListed(
  st: Stats,
  listed: ListedVersion,
  real?: string,
  realRoot?: string,
): string | undefined {
  if (!st.isFile()) return 'it is not a regular file now';
  if (listed.size !== undefined && st.size !== listed.size)
    return `${st.size} bytes now, ${listed.size} listed`;
  if (listed.mtime !== undefined && st.mtime.getTime() !== listed.mtime.getTime())
    return `modified ${st.mtime.toISOString()} now, ${listed.mtime.toISOString()} listed`;
  if (real !== undefined && realRoot !== undefined && !real.startsWith(realRoot + sep))
    return `it is reached through a link to ${real} now`;
  return undefined;
}

/** Copies the open file `fd` (from its start) into a new file `to`; the sha256 of what was read. */
export async function copyHashing(fd: number, to: string): Promise<string> {
  const hash = createHash('sha256');
  const from = createReadStream('', { fd, start: 0, autoClose: false, highWaterMark: STREAM_CHUNK });
  from.on('data', (chunk) => hash.update(chunk as Buffer));
  await pipeline(from, createWriteStream(to));
  return hash.digest('hex');
}
