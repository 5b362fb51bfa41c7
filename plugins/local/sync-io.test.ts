import { statSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { localDiskDevice, SYNC_MAX_BYTES, SyncGate } from './sync-io.js';

afterEach(() => vi.useRealTimers());

describe('calls on the calling thread: where and when', () => {
  it('only on local disk file systems, and only for files on the device of their folder', async () => {
    expect(await localDiskDevice('/dev/shm')).toBe(statSync('/dev/shm').dev); // tmpfs
    expect(await localDiskDevice('/proc')).toBeUndefined(); // procfs: not a disk
    expect(await localDiskDevice('/no/such/folder')).toBeUndefined();
  });

  it('only for small files of a known size, and not for a while after one slow sequence', () => {
    vi.useFakeTimers({ toFake: ['Date', 'performance'] });
    const gate = new SyncGate();
    expect(gate.allows(4096)).toBe(true);
    expect(gate.allows(SYNC_MAX_BYTES)).toBe(true);
    expect(gate.allows(SYNC_MAX_BYTES + 1)).toBe(false);
    expect(gate.allows(undefined)).toBe(false);
    const took = (ms: number) => {
      const start = performance.now();
      vi.advanceTimersByTime(ms);
      gate.took(start);
    };
    for (let i = 0; i < 100; i++) took(0.2);
    for (const ms of [8, 4, 4]) took(ms); // a few files that waited (a journal commit): not a slow disk
    for (let i = 0; i < 100; i++) took(0.2);
    expect(gate.allows(4096)).toBe(true);
    for (let i = 0; i < 20; i++) took(10); // a disk that seeks for every file
    expect(gate.allows(4096)).toBe(false);
    vi.advanceTimersByTime(10_000);
    expect(gate.allows(4096)).toBe(true);
  });
});
