import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createItem } from '../item.js';
import { describeItem, reviveItem } from './described.js';
import type { PluginDriver } from './driver.js';

/** A driver whose one source opens any path, recording which (and the version asked). */
function recordingDriver(opened: string[], versions: unknown[] = []): PluginDriver {
  const source = { name: 'sftp', ref: { name: 'sftp' }, instance: { openPath: async () => null } };
  return {
    source: () => source,
    openPath: async (_s: unknown, path: string, _signal: unknown, _root: unknown, version: unknown) => {
      opened.push(path);
      versions.push(version);
      return Readable.from([Buffer.from('bytes')]);
    },
  } as unknown as PluginDriver;
}

describe('items as job data', () => {
  it('re-opens a file left aside where it is, not at the path it is listed under', async () => {
    const item = createItem({
      source: 'sftp',
      path: 'in/f.dat',
      size: 5,
      storedAt: 'in/.f.dat.sluice-tidy-0123456789ab',
      open: async () => Readable.from([]),
    });
    const opened: string[] = [];
    const revived = reviveItem(recordingDriver(opened), describeItem({ source: 'sftp', item }));
    expect(revived.item.path).toBe('in/f.dat');
    expect(revived.item.storedAt).toBe('in/.f.dat.sluice-tidy-0123456789ab');
    await revived.item.open();
    expect(opened).toEqual(['in/.f.dat.sluice-tidy-0123456789ab']);
  });

  it('re-opens any other file at its path', async () => {
    const item = createItem({
      source: 'sftp',
      path: 'in/g.dat',
      size: 5,
      open: async () => Readable.from([]),
    });
    const opened: string[] = [];
    await reviveItem(recordingDriver(opened), describeItem({ source: 'sftp', item })).item.open();
    expect(opened).toEqual(['in/g.dat']);
  });

  it('re-opens an item pinned to its listed etag at that version only', async () => {
    const item = createItem({
      source: 's3',
      path: 'k/o.bin',
      size: 5,
      etag: 'abc123',
      open: async () => Readable.from([]),
    });
    const opened: string[] = [];
    const versions: unknown[] = [];
    await reviveItem(recordingDriver(opened, versions), describeItem({ source: 's3', item })).item.open();
    expect(opened).toEqual(['k/o.bin']);
    expect(versions).toEqual([{ etag: 'abc123' }]);
  });
});
