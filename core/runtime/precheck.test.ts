import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createItem } from '../item.js';
import { comparePresence } from './precheck.js';

const mtime = new Date('2024-05-06T07:08:09.500Z');
const item = (checksums: Record<string, string> = {}, m: Date | null = mtime) =>
  createItem({
    source: 's',
    path: 'a',
    size: 10,
    mtime: m ?? undefined,
    checksums,
    open: async () => Readable.from([]),
  });

describe('comparePresence', () => {
  it('needs the same size', () => {
    expect(comparePresence(item(), { size: 11, mtime })).toBe('different');
  });
  it('compares mtimes at the sink precision (size + modtime)', () => {
    expect(comparePresence(item(), { size: 10, mtime })).toBe('mtime');
    expect(comparePresence(item(), { size: 10, mtime: new Date('2024-05-06T07:08:09Z') }, 1000)).toBe(
      'mtime',
    );
    expect(comparePresence(item(), { size: 10, mtime: new Date('2024-05-06T07:08:09Z') })).toBe('unsure');
  });
  it('knows only the size when either side has no mtime', () => {
    expect(comparePresence(item(), { size: 10 })).toBe('size');
    expect(comparePresence(item({}, null), { size: 10, mtime })).toBe('size');
  });
  it('lets a checksum both sides know decide, whatever the mtimes', () => {
    const other = new Date(0);
    expect(comparePresence(item({ md5: 'ABC' }), { size: 10, mtime: other, checksums: { md5: 'abc' } })).toBe(
      'checksum',
    );
    expect(comparePresence(item({ md5: 'abc' }), { size: 10, mtime, checksums: { md5: 'abd' } })).toBe(
      'different',
    );
    expect(comparePresence(item({ sha256: 'x' }), { size: 10, checksums: { md5: 'abd' } })).toBe('size');
  });
});
