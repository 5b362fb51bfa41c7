/** Path helpers shared by the remote (SFTP/FTP) connectors. Remote paths are POSIX. */
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { escapeControl, SluiceError } from '../../core/errors.js';
import { unsafeNameReason } from '../../core/item.js';

const TEMP_MARK = '.sluice-tmp-';
const TEMP_NAME = /^\..+\.sluice-tmp-[0-9a-f]{12}$/;

/** Joins a configured root with a relative item path; `.` and `` mean the login folder. */
export function joinRemote(root: string, relative: string): string {
  const joined = posix.join(root === '' ? '.' : root, relative);
  return joined === '' ? '.' : joined;
}

/** Temp name in the same folder as `path`, hidden and recognisable: `.<name>.sluice-tmp-<hex>`. */
export function tempPathFor(path: string): string {
  return posix.join(
    posix.dirname(path),
    `.${posix.basename(path)}${TEMP_MARK}${randomBytes(6).toString('hex')}`,
  );
}

/** True for the temp files our sinks write: sources skip them (an upload in progress). */
export function isTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/** True when a relative path names a file below its root: no `..`, `.` or empty segment. */
export function isInside(relPath: string): boolean {
  return !relPath.split('/').some((s) => s === '' || s === '.' || s === '..') && !unsafeNameReason(relPath);
}

/** `relPath` when it names a file below the root; a SLUICE_E_NAME error otherwise. */
export function inside(relPath: string, side: 'source' | 'sink'): string {
  if (!isInside(relPath)) throw nameError(relPath, `is not a path inside the ${side} folder`);
  return relPath;
}

export function nameError(path: string, why: string): SluiceError {
  return new SluiceError('SLUICE_E_NAME', `"${escapeControl(path)}" ${why}`, { retryable: false });
}
