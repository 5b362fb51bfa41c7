import type { Readable } from 'node:stream';
import { checkEntryPath } from './entry-path.js';
import { limitError } from './limits.js';

/** One file inside an archive, as the zip and tar readers hand it to the unpacker. */
export interface RawEntry {
  /** Safe relative POSIX path inside the archive. */
  name: string;
  /** Declared size (checked against the bytes while streaming). */
  size?: number;
  mtime?: Date;
  /** The entry's bytes, guarded by the archive's limits. */
  open(): Readable;
}

/** The safe path of an entry, or a SLUICE_E_LIMIT error naming it when it escapes. */
export function safeEntryName(archive: string, raw: string): string {
  const verdict = checkEntryPath(raw);
  if (!verdict.ok) throw limitError(archive, `entry "${raw}" ${verdict.reason}; refusing the whole archive`);
  return verdict.path;
}
