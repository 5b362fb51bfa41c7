import { describe, expect, it } from 'vitest';
import { checkEntryPath, decodeCp437, decodeZipName, placeEntry } from './entry-path.js';

describe('checkEntryPath', () => {
  it.each([
    ['a/b.csv', 'a/b.csv'],
    ['./a/./b.csv', 'a/b.csv'],
    ['a//b.csv', 'a/b.csv'],
    ['a/../b.csv', 'b.csv'],
    ['dir\\file.txt', 'dir/file.txt'],
    ['./', ''],
    ['ünï/日本.txt', 'ünï/日本.txt'],
  ])('keeps %j as %j', (raw, expected) => {
    expect(checkEntryPath(raw)).toEqual({ ok: true, path: expected });
  });

  it.each([
    ['../evil.txt', '..'],
    ['a/../../x', '..'],
    ['/abs', 'absolute'],
    ['\\abs', 'absolute'],
    ['..\\win', '..'],
    ['C:/x', 'drive letter'],
    ['c:x', 'drive letter'],
    ['a\0b', 'NUL'],
  ])('refuses %j', (raw, reason) => {
    const verdict = checkEntryPath(raw);
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.reason).toContain(reason);
  });
});

describe('placeEntry', () => {
  it('keeps the entry path beside the archive', () => {
    expect(placeEntry('dir/x.zip', 'x', 'a/b.csv', 'keep')).toBe('dir/a/b.csv');
    expect(placeEntry('x.zip', 'x', 'a/b.csv', 'keep')).toBe('a/b.csv');
  });
  it('nests under the archive stem', () => {
    expect(placeEntry('dir/x.tar.gz', 'x', 'a/b.csv', 'nest')).toBe('dir/x/a/b.csv');
  });
  it('flattens to the basename', () => {
    expect(placeEntry('dir/x.zip', 'x', 'a/b.csv', 'flatten')).toBe('dir/b.csv');
    expect(placeEntry('x.zip', 'x', 'a/b.csv', 'flatten')).toBe('b.csv');
  });
});

describe('zip name decoding', () => {
  it('maps all 256 CP437 bytes to one character each', () => {
    const all = decodeCp437(Uint8Array.from({ length: 256 }, (_, i) => i));
    expect([...all]).toHaveLength(256);
    expect(all.slice(0x80, 0x83)).toBe('Çüé');
    expect(all.at(-1)).toBe('\u00a0');
  });
  it('reads flagged names as UTF-8', () => {
    expect(decodeZipName(Buffer.from('café.txt'), true)).toBe('café.txt');
  });
  it('reads unflagged valid UTF-8 (Info-ZIP) as UTF-8', () => {
    expect(decodeZipName(Buffer.from('日本/café.txt'), false)).toBe('日本/café.txt');
  });
  it('falls back to CP437 for unflagged bytes that are not UTF-8', () => {
    expect(decodeZipName(Uint8Array.from([0x63, 0x61, 0x66, 0x82, 0x2e, 0x74]), false)).toBe('café.t');
  });
});
