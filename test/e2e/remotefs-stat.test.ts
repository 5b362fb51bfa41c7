/**
 * `stat(destination)` on the SFTP and FTP sinks (what the runtime asks before reading a source
 * with `if_exists: skip`/`fail`), against real sshd and vsftpd: size and mtime of a file, null
 * when nothing is there, a clear error for a folder, nothing outside the sink's root.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SinkInstance } from '../../core/plugin-api.js';
import { REMOTE_CONNECTORS, type RemoteServer } from '../helpers/remote-fs-connectors.js';
import { writeRequest } from '../helpers/remote-fs-fixtures.js';
import { codeOf } from '../helpers/source-probe.js';

const signal = () => new AbortController().signal;

for (const connector of REMOTE_CONNECTORS) {
  describe(`${connector.protocol} sink: stat`, () => {
    let server: RemoteServer;
    let sink: SinkInstance;

    beforeAll(async () => {
      server = await connector.start('sluice-stat');
      server.put('dest/a/there.csv', 'twelve bytes', new Date('2024-02-03T04:05:06.000Z'));
      server.put('outside.txt', 'not for the sink');
      sink = await server.sink('dest');
    });
    afterAll(async () => server?.stop());

    it('gives size and mtime (whole seconds) of an existing file, and no checksums', async () => {
      expect(await sink.stat!('a/there.csv', signal())).toEqual({
        size: 12,
        mtime: new Date('2024-02-03T04:05:06.000Z'),
      });
    });

    it('is null when nothing is there, also under a missing folder', async () => {
      expect(await sink.stat!('a/absent.csv', signal())).toBeNull();
      expect(await sink.stat!('no/such/folder/x.csv', signal())).toBeNull();
    });

    it('matches what a write committed', async () => {
      const commit = await sink.write(writeRequest('b/new.bin', Buffer.from('0123456789')));
      const stat = await sink.stat!('b/new.bin', signal());
      expect(stat?.size).toBe(commit.size);
      expect(stat?.mtime?.getTime()).toBe(
        Math.floor(statSync(join(server.rootDir, 'dest/b/new.bin')).mtimeMs / 1000) * 1000,
      );
    });

    it('a folder at the destination is a clear, non-retryable error', async () => {
      mkdirSync(join(server.rootDir, 'dest/a/folder.csv'));
      const err = await sink.stat!('a/folder.csv', signal()).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'SLUICE_E_SINK', retryable: false });
      expect((err as Error).message).toMatch(/folder\.csv is a folder: a file cannot be written there/);
    });

    it('never looks outside the root', async () => {
      for (const outside of ['../outside.txt', 'a/../../outside.txt', '/outside.txt', 'a//there.csv']) {
        expect(await codeOf(sink.stat!(outside, signal())), outside).toBe('SLUICE_E_NAME');
      }
    });

    it('stops when aborted', async () => {
      const aborted = AbortSignal.abort(new Error('stop now'));
      await expect(sink.stat!('a/there.csv', aborted)).rejects.toThrow(/stop now/);
    });
  });
}
