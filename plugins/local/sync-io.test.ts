import { afterEach, describe, expect, it, vi } from 'vitest';
import { onLocalDisk, SYNC_MAX_BYTES, SyncGate } from './sync-io.js';

afterEach(() => vi.useRealTimers());

describe('calls on the calling thread: where and when', () => {
  it('only on local disk file systems', async () => {
    expect(await onLocalDisk('/dev/shm')).toBe(true); // tmpfs
    expect(await onLocalDisk('/proc')).toBe(false); // procfs: not a disk
    expect(await onLocalDisk('/no/such/folder')).toBe(false);
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
