/**
 * FTP round trips per uploaded file, counted in vsftpd's protocol log: a file into a folder
 * that exists proves the folder with one CWD instead of walking it from `/`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REMOTE_CONNECTORS, type RemoteServer } from '../helpers/remote-fs-connectors.js';
import { writeRequest } from '../helpers/remote-fs-fixtures.js';

describe('ftp sink: commands per file', () => {
  let server: RemoteServer;
  beforeAll(async () => {
    server = await REMOTE_CONNECTORS.find((c) => c.protocol === 'ftp')!.start('sluice-ftpcmd', {
      vsftpd: { extraConfig: ['log_ftp_protocol=YES'] },
    });
  });
  afterAll(async () => server?.stop());

  const commands = () =>
    readFileSync(join(server.rootDir, '..', 'vsftpd.log'), 'utf8')
      .split('\n')
      .map((line) => /FTP command: Client "[^"]+", "([A-Z]+)/.exec(line)?.[1])
      .filter((c): c is string => c !== undefined);

  it('one CWD proves an existing folder; a missing one is still created', async () => {
    const sink = await server.sink('a/b/c/d', { max_connections: 1 });
    await sink.write(writeRequest('e/first.bin', Buffer.from('creates the folders')));
    const before = commands().length;
    for (let i = 0; i < 5; i++) await sink.write(writeRequest(`e/f${i}.bin`, Buffer.from(`file ${i}`)));
    const perFile = commands().slice(before);
    expect(perFile.filter((c) => c === 'STOR')).toHaveLength(5);
    expect(perFile.filter((c) => c === 'CWD')).toHaveLength(5);
    expect(perFile.filter((c) => c === 'MKD')).toHaveLength(0);
    expect(readFileSync(join(server.rootDir, 'a/b/c/d/e/f4.bin'), 'utf8')).toBe('file 4');
  });
});
