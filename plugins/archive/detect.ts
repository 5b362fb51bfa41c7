/** Recognising gzip, tar, tar.gz and zip by file name first, by magic bytes second. */

/** Formats a user can allow with `formats:`. */
export type FormatName = 'gzip' | 'tar' | 'zip';
/** What the unpacker actually does with an item. */
export type ArchiveFormat = FormatName | 'tar_gz';

/** Bytes needed to recognise every format by content (tar's `ustar` sits at offset 257). */
export const MAGIC_BYTES_NEEDED = 262;

/** The format a file name announces, or null when the name says nothing. */
export function formatFromName(name: string): ArchiveFormat | null {
  const lower = name.toLowerCase();
  if (lower.endsWith('.tar.gz') || lower.endsWith('.tgz')) return 'tar_gz';
  if (lower.endsWith('.tar')) return 'tar';
  if (lower.endsWith('.zip')) return 'zip';
  if (lower.endsWith('.gz')) return 'gzip';
  return null;
}

/** The format the first bytes of a file show, or null for anything else. */
export function formatFromMagic(head: Uint8Array): FormatName | null {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  // Local file header, or the end-of-central-directory record of an empty zip.
  const pk = head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b;
  if (pk && ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6))) return 'zip';
  if (head.length >= 262 && Buffer.from(head.subarray(257, 262)).toString('latin1') === 'ustar') return 'tar';
  return null;
}

/**
 * Narrows a detected format to what `formats:` allows: a tar.gz with only `gzip` allowed is
 * gunzipped to a `.tar`; with only `tar` allowed it cannot be read and passes through.
 */
export function restrictFormat(
  format: ArchiveFormat,
  allowed: ReadonlySet<FormatName>,
): ArchiveFormat | null {
  if (format === 'tar_gz') {
    if (allowed.has('gzip') && allowed.has('tar')) return 'tar_gz';
    return allowed.has('gzip') ? 'gzip' : null;
  }
  return allowed.has(format) ? format : null;
}

/** Name of a gunzipped file: `a.csv.gz` → `a.csv`, `b.tgz` → `b.tar`, no extension → unchanged. */
export function gunzippedName(name: string): string {
  const lower = name.toLowerCase();
  if (lower.endsWith('.tgz') && name.length > 4) return `${name.slice(0, -4)}.tar`;
  if (lower.endsWith('.gz') && name.length > 3) return name.slice(0, -3);
  return name;
}

/** Archive name without its archive extension, for `layout: nest` (`x.tar.gz` → `x`). */
export function archiveStem(name: string): string {
  const match = /^(.+?)(\.tar\.gz|\.tgz|\.tar|\.zip|\.gz)$/i.exec(name);
  return match ? match[1] : name;
}
