/**
 * Timestamps kept (issue 14.3) on the SFTP and FTP sinks, against real sshd and vsftpd: the
 * upload gets the item's mtime before the rename makes it visible, the commit reports the time
 * read back from the server, `preserve_mtime: false` leaves the server's own time, and sources
 * list mtimes to the second.
 */
import { statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createItem } from '../../core/item.js';
import type { SinkWriteRequest } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { REMOTE_CONNECTORS, type RemoteServer } from '../helpers/remote-fs-connectors.js';
import { listTree } from '../helpers/remote-fs-fixtures.js';
import { listAll } from '../helpers/source-probe.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';

const KEPT = new Date('2021-03-04T05:06:07.891Z');
const KEPT_SECOND = new Date('2021-03-04T05:06:07.000Z');

/** A write of `data` as an item listed with `mtime`. */
function writeOf(destination: string, data: string, mtime?: Date): SinkWriteRequest {
  return {
    item: createItem({ source: 'test', path: destination, mtime, open: async () => Readable.from([]) }),
    destination,
    body: Readable.from([Buffer.from(data)]),
    size: data.length,
    signal: new AbortController().signal,
  };
}

const mtimeOn = (server: RemoteServer, rel: string) => statSync(join(server.rootDir, rel)).mtime;

for (const connector of REMOTE_CONNECTORS) {
  describe(`${connector.protocol}: timestamps kept`, () => {
    let server: RemoteServer;
    let ws: Workspace;

    beforeAll(async () => {
      server = await connector.start('sluice-mtime');
      ws = makeWorkspace();
    });
    afterAll(async () => {
      ws?.cleanup();
      await server?.stop();
    });

    it('sets the item mtime before the rename and reports it read back, in every if_exists mode', async () => {
      for (const ifExists of ['overwrite', 'skip', 'fail', 'rename'] as const) {
        const sink = await server.sink(`keep-${ifExists}`, { if_exists: ifExists });
        expect(sink.mtimePrecisionMs).toBe(1000);
        const commit = await sink.write(writeOf('a/b.csv', 'kept', KEPT));
        // Read back from the server: whole seconds, not the item's own value echoed.
        expect(commit.mtime, ifExists).toEqual(KEPT_SECOND);
        expect(mtimeOn(server, `keep-${ifExists}/a/b.csv`), ifExists).toEqual(KEPT_SECOND);
        expect(listTree(join(server.rootDir, `keep-${ifExists}`))).toEqual(['a/b.csv']);
      }
      // A replaced file takes the new item's time (posix-rename / RNFR-RNTO over it).
      const sink = await server.sink('keep-overwrite');
      const later = new Date('2022-07-08T09:10:11.000Z');
      expect((await sink.write(writeOf('a/b.csv', 'newer', later))).mtime).toEqual(later);
      expect(mtimeOn(server, 'keep-overwrite/a/b.csv')).toEqual(later);
    });

    it('preserve_mtime: false leaves the server its own time and reports none', async () => {
      const sink = await server.sink('no-keep', { preserve_mtime: false });
      const before = Date.now();
      const commit = await sink.write(writeOf('f.txt', 'now', KEPT));
      expect(commit.mtime).toBeUndefined();
      const stored = mtimeOn(server, 'no-keep/f.txt').getTime();
      expect(stored).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
      expect(stored).toBeLessThanOrEqual(Date.now());
    });

    it('an item without an mtime gets the server time and no mtime is reported', async () => {
      const sink = await server.sink('no-mtime');
      expect((await sink.write(writeOf('f.txt', 'x'))).mtime).toBeUndefined();
    });

    it('local → remote pipeline keeps every file mtime to the second', async () => {
      const files = { 'one.csv': new Date('2020-01-02T03:04:05.678Z'), 'sub/two.csv': KEPT };
      for (const [rel, mtime] of Object.entries(files)) {
        ws.write(`in/${rel}`, `bytes of ${rel}`);
        utimesSync(ws.path('in', rel), mtime, mtime);
      }
      const file = ws.pipeline(
        [
          'name: keep-times',
          'source:',
          `  local: { path: ${ws.path('in')} }`,
          'sink:',
          `  ${connector.protocol}:`,
          ...server.yaml(),
          `    path: "${server.path('pipeline')}"`,
          '',
        ].join('\n'),
        'keep-times.yaml',
      );
      const result = await runPipelineFile(file);
      expect(result).toMatchObject({ ok: 2, failed: 0 });
      for (const [rel, mtime] of Object.entries(files)) {
        expect(mtimeOn(server, `pipeline/${rel}`).getTime(), rel).toBe(
          Math.floor(mtime.getTime() / 1000) * 1000,
        );
      }
    });

    it('lists items with the file mtime to the second', async () => {
      server.put('listed/x.bin', 'x', new Date('2019-05-06T07:08:09.999Z'));
      const [item] = await listAll(await server.source('listed'));
      expect(item.mtime).toEqual(new Date('2019-05-06T07:08:09.000Z'));
    });
  });
}

describe('sftp: an mtime the server cannot hold is reported as stored, not as asked', () => {
  let server: RemoteServer;
  beforeAll(async () => {
    server = await REMOTE_CONNECTORS.find((c) => c.protocol === 'sftp')!.start('sluice-mtime2');
  });
  afterAll(async () => server?.stop());

  it('year 2200 does not fit SFTP v3 (32-bit seconds): the commit says what the server keeps', async () => {
    const sink = await server.sink('wide');
    const far = new Date('2200-01-01T00:00:00.000Z');
    const commit = await sink.write(writeOf('far.txt', 'far', far));
    const stored = mtimeOn(server, 'wide/far.txt');
    expect(stored.getTime()).not.toBe(far.getTime());
    expect(commit.mtime).toEqual(stored);
  });
});

describe('ftp: a server that cannot set times (vsftpd mdtm_write=NO)', () => {
  let server: RemoteServer;
  beforeAll(async () => {
    server = await REMOTE_CONNECTORS.find((c) => c.protocol === 'ftp')!.start('sluice-mtime3', {
      vsftpd: { extraConfig: ['mdtm_write=NO'] },
    });
  });
  afterAll(async () => server?.stop());

  it('keeps the upload time, reports no mtime, and still commits', async () => {
    const sink = await server.sink('plain');
    const before = Date.now();
    for (const name of ['a.txt', 'b.txt']) {
      const commit = await sink.write(writeOf(name, 'data', KEPT));
      expect(commit).toMatchObject({ size: 4 });
      expect(commit.mtime).toBeUndefined();
      expect(mtimeOn(server, `plain/${name}`).getTime()).toBeGreaterThanOrEqual(
        Math.floor(before / 1000) * 1000,
      );
    }
    expect(listTree(join(server.rootDir, 'plain'))).toEqual(['a.txt', 'b.txt']);
  });
});
