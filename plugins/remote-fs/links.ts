/**
 * Symbolic links on the server in a tree Sluice writes into (a sink's folders, a source's
 * `move_to` folder): someone who may write there could plant one leading anywhere, so a folder
 * below the configured root that is a link is refused. Only where the protocol can tell a link
 * from what it leads to (SFTP's LSTAT); FTP cannot, and nothing is checked there.
 */
import { posix } from 'node:path';
import { SluiceError } from '../../core/errors.js';
import { oncePerKey } from '../../core/once-per-key.js';
import type { RemoteConnection } from './connection.js';
import { joinRemote } from './paths.js';

/** Folders checked, per root: one LSTAT walk per folder for the life of the sink or source. */
export function realFolderCheck(describe: (path: string) => string) {
  const once = oncePerKey<void>();
  return (c: RemoteConnection, root: string, dir: string): Promise<void> =>
    c.lstat ? once(`${root}\0${dir}`, () => walk(c, root, dir, describe)) : Promise.resolve();
}

async function walk(
  c: RemoteConnection,
  root: string,
  dir: string,
  describe: (path: string) => string,
): Promise<void> {
  const rel = posix.relative(root === '' ? '.' : root, dir === '' ? '.' : dir);
  // Outside the root (never for a destination: names are checked before) or the root itself.
  // A folder named `..x` is inside.
  if (rel === '' || rel === '..' || rel.startsWith('../')) return;
  let at = root;
  for (const part of rel.split('/')) {
    at = joinRemote(at, part);
    const there = await c.lstat!(at);
    if (there === undefined) return; // missing: mkdir makes the rest as real folders
    if (there.link) {
      throw new SluiceError(
        'SLUICE_E_DESTINATION',
        `${describe(at)} is a symbolic link: Sluice writes only into real folders under ${describe(root)}`,
        { retryable: false },
      );
    }
  }
}
