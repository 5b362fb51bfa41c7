import { describe, expect, it } from 'vitest';
import { mtimePrecisionOf } from './sink.js';

const ASKED = 1_600_000_001_234;

describe('mtimePrecisionOf (what a file system keeps of a file time)', () => {
  it('is 1 ms where the time is kept whole (ext4, xfs, btrfs, tmpfs)', () => {
    expect(mtimePrecisionOf(ASKED, ASKED)).toBe(1);
  });
  it('is 1 s where milliseconds are dropped (ext3, HFS+, some NFS/SMB mounts)', () => {
    expect(mtimePrecisionOf(ASKED, 1_600_000_001_000)).toBe(1000);
  });
  it('is 2 s where odd seconds are dropped too (FAT)', () => {
    expect(mtimePrecisionOf(ASKED, 1_600_000_000_000)).toBe(2000);
  });
  it('falls back to the coarsest for a file system that rounds its own way', () => {
    expect(mtimePrecisionOf(ASKED, 1_600_000_003_000)).toBe(2000);
  });
});
