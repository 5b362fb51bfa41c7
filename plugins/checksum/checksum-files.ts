/**
 * Companion checksum files: `x.csv.sha256` beside `x.csv`, or a `SHA256SUMS` listing for the
 * whole folder. Both the GNU coreutils layout (`<hex>  <name>`, `<hex> *<name>` in binary mode)
 * and the BSD/`--tag` layout (`SHA256 (<name>) = <hex>`) are read.
 */
import { posix } from 'node:path';

export const ALGORITHMS = ['sha256', 'sha1', 'md5', 'crc32c'] as const;
export type ChecksumAlgorithm = (typeof ALGORITHMS)[number];

export const HEX_LENGTH: Record<ChecksumAlgorithm, number> = { sha256: 64, sha1: 40, md5: 32, crc32c: 8 };

/** Per-folder listing files, by algorithm (what `sha256sum * > SHA256SUMS` produces). */
const SUMS_FILE: Record<ChecksumAlgorithm, string> = {
  sha256: 'SHA256SUMS',
  sha1: 'SHA1SUMS',
  md5: 'MD5SUMS',
  crc32c: 'CRC32CSUMS',
};

/** Sibling names to look for, most specific first. */
export function companionCandidates(fileName: string, algorithm: ChecksumAlgorithm): string[] {
  return [`${fileName}.${algorithm}`, SUMS_FILE[algorithm]];
}

const COMPANION_EXTENSION = new RegExp(`\\.(${ALGORITHMS.join('|')})$`, 'i');
const SUMS_NAMES = new Set(Object.values(SUMS_FILE));

/** True for files that only carry checksums of other files. */
export function isChecksumCompanion(path: string): boolean {
  const name = posix.basename(path);
  return COMPANION_EXTENSION.test(name) || SUMS_NAMES.has(name);
}

/**
 * Finds the checksum of `fileName` in the text of a companion file. A per-file companion may
 * hold the bare hex digest; a listing must name the file. Returns lower-case hex or undefined.
 */
export function findChecksum(
  text: string,
  fileName: string,
  algorithm: ChecksumAlgorithm,
  perFile: boolean,
): string | undefined {
  const hexLength = HEX_LENGTH[algorithm];
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const line of lines) {
    const entry = parseLine(line);
    if (!entry || entry.hex.length !== hexLength) continue;
    const named = entry.name === undefined ? undefined : posix.basename(entry.name.replace(/^\.\//, ''));
    if (named === fileName || (perFile && (named === undefined || lines.length === 1))) {
      return entry.hex.toLowerCase();
    }
  }
  return undefined;
}

function parseLine(line: string): { hex: string; name?: string } | undefined {
  const bsd = /^[A-Za-z0-9-]+ ?\((.+)\) ?= ?([0-9a-fA-F]+)$/.exec(line);
  if (bsd) return { hex: bsd[2], name: bsd[1] };
  const gnu = /^\\?([0-9a-fA-F]+)(?:\s+\*?(.+))?$/.exec(line);
  if (gnu) return { hex: gnu[1], name: gnu[2] };
  return undefined;
}
