/**
 * Archive entry names come back raw from the parsers (`../evil.txt`, `/abs`, `..\win`, `C:x`):
 * the unpacker must refuse the ones that would land outside the archive's folder itself.
 */
import { posix } from 'node:path';

export type EntryPathVerdict = { ok: true; path: string } | { ok: false; reason: string };

/**
 * Normalises an entry name to a relative POSIX path inside the archive. Backslashes count as
 * separators (zips made on Windows), `.` and empty segments are dropped, `a/../b` folds to `b`.
 * Returns `path: ''` for names that denote the archive root itself (`./`), which callers skip.
 */
export function checkEntryPath(raw: string): EntryPathVerdict {
  if (raw.includes('\0')) return { ok: false, reason: 'contains a NUL byte' };
  if (/^[A-Za-z]:/.test(raw)) return { ok: false, reason: 'starts with a drive letter' };
  if (/^[/\\]/.test(raw)) return { ok: false, reason: 'is an absolute path' };
  const kept: string[] = [];
  for (const segment of raw.split(/[/\\]+/)) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (kept.length === 0) return { ok: false, reason: 'escapes the archive folder (`..`)' };
      kept.pop();
      continue;
    }
    kept.push(segment);
  }
  return { ok: true, path: kept.join('/') };
}

export type Layout = 'keep' | 'nest' | 'flatten';

/**
 * Where an entry lands, relative to the source root: beside the archive (`keep`), in a folder
 * named after the archive (`nest`), or by basename only beside the archive (`flatten`).
 */
export function placeEntry(
  archivePath: string,
  archiveStem: string,
  entryPath: string,
  layout: Layout,
): string {
  const dir = posix.dirname(archivePath);
  const base = dir === '.' ? '' : dir;
  const relative =
    layout === 'flatten'
      ? posix.basename(entryPath)
      : layout === 'nest'
        ? posix.join(archiveStem, entryPath)
        : entryPath;
  return base ? posix.join(base, relative) : relative;
}

// IBM PC code page 437, bytes 0x80-0xFF: what zip tools without the UTF-8 flag meant historically.
const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';

export function decodeCp437(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte < 0x80 ? String.fromCharCode(byte) : CP437_HIGH[byte - 0x80];
  return out;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes a zip entry name. With the UTF-8 flag (bit 11) the bytes are UTF-8. Without it the
 * spec says CP437, but Info-ZIP on Linux writes UTF-8 bytes without setting the flag, so names
 * that are valid UTF-8 are read as UTF-8 and only the rest as CP437.
 */
export function decodeZipName(bytes: Uint8Array, utf8Flag: boolean): string {
  if (utf8Flag) return Buffer.from(bytes).toString('utf8');
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return decodeCp437(bytes);
  }
}
