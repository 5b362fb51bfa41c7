/**
 * Pre-flight checks of the SFTP and FTP sources and sinks (`sluice check`, and the cheap part
 * before a run): log in, prove the folder, and at `full` depth list it or write a probe.
 */
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { type ErrorCode, SluiceError } from '../../core/errors.js';
import type { PreflightRequest, PreflightResult } from '../../core/plugin-api.js';
import type { RemoteConnection } from './connection.js';
import { listFolder } from './listing.js';
import type { ConnectionPool } from './pool.js';

/** What a connector tells the shared checks about its protocol. */
export interface PreflightTraits {
  /** `user@host:port`, for the line that says what was proven. */
  account: string;
  errorCode: ErrorCode;
  /** True when the server refused an operation for lack of rights. */
  isPermissionDenied: (err: unknown) => boolean;
  /**
   * FTP answers a folder it may not enter like a missing one (550 to CWD): the message then
   * says both, where SFTP can tell them apart.
   */
  absentMayBeForbidden?: boolean;
}

export interface CheckTarget extends PreflightTraits {
  pool: ConnectionPool<RemoteConnection>;
  /** The configured folder. */
  root: string;
  describe: (path: string) => string;
}

/** Source check: the folder exists (cheap), and can be listed (full). Changes nothing. */
export async function checkRemoteSource(
  target: CheckTarget,
  req: PreflightRequest,
): Promise<PreflightResult> {
  const { root, describe } = target;
  const folder = await folderState(target, root, req.signal);
  if (folder === 'absent') throw missingFolder(target, root);
  if (req.depth === 'cheap') return { detail: `logged in as ${target.account}, ${describe(root)} exists` };
  let entries = 0;
  try {
    // Counted as it arrives: a folder of any size is listed in bounded memory.
    for await (const batch of listFolder(target.pool, root, req.signal)) entries += batch.length;
  } catch (err) {
    throw checkError(
      target,
      `cannot list ${describe(root)}`,
      err,
      'the login needs read access to the folder',
    );
  }
  return { detail: `logged in as ${target.account}, ${describe(root)} listed (${entries} entries)` };
}

/**
 * Sink check: the folder exists or can be made (cheap: the first write creates a missing one),
 * and at full depth a probe `.sluice-check-<hex>` is written there — or, while the folder does
 * not exist, in its nearest existing parent, where the first write must create it — and removed.
 */
export async function checkRemoteSink(target: CheckTarget, req: PreflightRequest): Promise<PreflightResult> {
  const { root, describe } = target;
  const folder = await folderState(target, root, req.signal);
  const exists =
    folder === 'present'
      ? `${describe(root)} exists`
      : `${describe(root)} does not exist yet (the first write creates it)`;
  if (req.depth === 'cheap') return { detail: `logged in as ${target.account}, ${exists}` };
  let probeDir = root;
  while (folder === 'absent' && (await folderState(target, probeDir, req.signal)) === 'absent') {
    const parent = posix.dirname(probeDir);
    if (parent === probeDir) throw missingFolder(target, root);
    probeDir = parent;
  }
  const probe = posix.join(probeDir, `.sluice-check-${randomBytes(6).toString('hex')}`);
  await target.pool
    .use((c) => c.upload(probe, Readable.from([Buffer.from('sluice check probe\n')])), req.signal)
    .catch(async (err: unknown) => {
      await target.pool.use((c) => c.remove(probe)).catch(() => {});
      throw checkError(
        target,
        `cannot write in ${describe(probeDir)}`,
        err,
        'the login needs the right to create, rename and delete files in the folder',
      );
    });
  await target.pool
    .use((c) => c.remove(probe), req.signal)
    .catch((err: unknown) => {
      throw checkError(
        target,
        `wrote the probe ${describe(probe)} but cannot delete it`,
        err,
        'delete it by hand; the sink must be able to remove its temp files',
      );
    });
  const where = probeDir === root ? 'in it' : `in ${describe(probeDir)}`;
  return { detail: `logged in as ${target.account}, ${exists}, wrote and removed a probe file ${where}` };
}

/**
 * Logs in (a fresh connection: its errors — login refused, host key, unreachable — already say
 * what failed) and looks at `dir`: a folder, nothing, or an error for anything else.
 */
async function folderState(
  target: CheckTarget,
  dir: string,
  signal: AbortSignal,
): Promise<'present' | 'absent'> {
  const { connection } = await target.pool.acquire(signal);
  let found: Awaited<ReturnType<RemoteConnection['stat']>>;
  try {
    found = await connection.stat(dir);
    target.pool.release(connection);
  } catch (err) {
    target.pool.releaseAfter(connection, err);
    throw checkError(
      target,
      `cannot look at ${target.describe(dir)}`,
      err,
      'check `path` and the rights on its parents',
    );
  }
  if (found === undefined) return 'absent';
  if (found.type !== 'directory') {
    throw new SluiceError(target.errorCode, `${target.describe(dir)} is a file, not a folder`, {
      retryable: false,
      context: { hint: 'set `path` to the folder' },
    });
  }
  return 'present';
}

function missingFolder(target: CheckTarget, dir: string): SluiceError {
  const maybe = target.absentMayBeForbidden ? ' (or this login may not enter it: FTP cannot tell)' : '';
  return new SluiceError(target.errorCode, `folder ${target.describe(dir)} does not exist${maybe}`, {
    retryable: false,
    context: { hint: 'check `path` (absolute, or relative to the login folder)' },
  });
}

function checkError(target: CheckTarget, what: string, err: unknown, hint: string): SluiceError {
  const reason = target.isPermissionDenied(err) ? 'permission denied' : reasonOf(err);
  return new SluiceError(target.errorCode, `${what}: ${reason}`, {
    cause: err,
    retryable: false,
    context: { hint },
  });
}

function reasonOf(err: unknown): string {
  const cause = err instanceof SluiceError ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}
