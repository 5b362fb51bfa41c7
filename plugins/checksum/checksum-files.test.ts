import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { companionCandidates, findChecksum, isChecksumCompanion } from './checksum-files.js';
import { Crc32c } from './crc32c.js';

/** Bit-at-a-time CRC-32C straight from the definition, to check the table method against. */
function crc32cReference(data: Uint8Array): string {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ((crc ^ 0xffffffff) >>> 0).toString(16).padStart(8, '0');
}

describe('crc32c', () => {
  it('matches the published check values', () => {
    expect(new Crc32c().update(Buffer.from('123456789')).digest()).toBe('e3069283');
    expect(new Crc32c().update(new Uint8Array(32)).digest()).toBe('8a9136aa');
    expect(new Crc32c().digest()).toBe('00000000');
  });

  it('matches the bit-wise definition on random data split at odd boundaries', () => {
    const data = randomBytes(10_007);
    const crc = new Crc32c();
    for (let at = 0; at < data.length; at += 333) crc.update(data.subarray(at, at + 333));
    expect(crc.digest()).toBe(crc32cReference(data));
  });
});

describe('checksum companion files', () => {
  const hex = 'a'.repeat(64);
  it('reads a bare digest, GNU lines, binary-mode lines and BSD tags', () => {
    expect(findChecksum(`${hex}\n`, 'x.csv', 'sha256', true)).toBe(hex);
    expect(findChecksum(`${hex.toUpperCase()}  x.csv\n`, 'x.csv', 'sha256', true)).toBe(hex);
    expect(findChecksum(`${'b'.repeat(64)}  other.csv\n${hex} *x.csv\n`, 'x.csv', 'sha256', false)).toBe(hex);
    expect(findChecksum(`SHA256 (x.csv) = ${hex}\n`, 'x.csv', 'sha256', false)).toBe(hex);
    expect(findChecksum(`${hex}  ./sub/x.csv\n`, 'x.csv', 'sha256', false)).toBe(hex);
  });

  it('ignores digests of the wrong length and listings that do not name the file', () => {
    expect(findChecksum(`${'a'.repeat(32)}  x.csv\n`, 'x.csv', 'sha256', true)).toBeUndefined();
    expect(findChecksum(`${hex}  other.csv\n${hex}  third.csv\n`, 'x.csv', 'sha256', false)).toBeUndefined();
    expect(findChecksum('# comment only\n', 'x.csv', 'md5', true)).toBeUndefined();
  });

  it('names candidates and recognises companions', () => {
    expect(companionCandidates('x.csv', 'md5')).toEqual(['x.csv.md5', 'MD5SUMS']);
    expect(isChecksumCompanion('in/x.csv.sha256')).toBe(true);
    expect(isChecksumCompanion('in/SHA256SUMS')).toBe(true);
    expect(isChecksumCompanion('in/x.csv')).toBe(false);
    expect(isChecksumCompanion('in/sha256.csv')).toBe(false);
  });
});
