/**
 * `if_exists`, as every sink spells it: the modes, the numbered names `rename` tries and their
 * cap, and the errors. Each family applies the modes with its backend's own atomic operation
 * (a hard link, an SFTP rename that refuses a taken name, an exclusive upload); the names, the
 * limit and the messages are the same everywhere.
 */
import { SluiceError } from './errors.js';

export type IfExistsMode = 'overwrite' | 'skip' | 'fail' | 'rename';

/** Most numbered names `rename` tries before giving up (a runaway loop otherwise). */
export const MAX_RENAME_ATTEMPTS = 10_000;

/** `dir/name (n).ext` — the name `rename` tries for the n-th collision (`/`-separated paths). */
export function numberedName(path: string, n: number): string {
  const slash = path.lastIndexOf('/');
  const dir = path.slice(0, slash + 1);
  const base = path.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  const stem = dot > 0 ? base.slice(0, dot) : base;
  const ext = dot > 0 ? base.slice(dot) : '';
  return `${dir}${stem} (${n})${ext}`;
}

/** The names `rename` tries, the plain one first, up to the cap. */
export function* renameCandidates(destination: string): Generator<string> {
  yield destination;
  for (let n = 1; n < MAX_RENAME_ATTEMPTS; n++) yield numberedName(destination, n);
}

/** `rename` found every candidate taken. */
export function noFreeName(location: string): SluiceError {
  return new SluiceError(
    'SLUICE_E_EXISTS',
    `if_exists: rename found no free name for ${location} after ${MAX_RENAME_ATTEMPTS} tries`,
    {
      retryable: false,
    },
  );
}

/** `fail` found another object with other bytes at the destination. */
export function existsWithOtherBytes(location: string): SluiceError {
  return new SluiceError(
    'SLUICE_E_EXISTS',
    `${location} already exists with different content (if_exists: fail)`,
    {
      retryable: false,
      context: { hint: 'use overwrite, skip or rename to allow this' },
    },
  );
}
