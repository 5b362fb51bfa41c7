/** Path helpers shared by the remote (SFTP/FTP) connectors. Remote paths are POSIX. */
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';

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
