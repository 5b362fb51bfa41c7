import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceError } from '../../core/errors.js';
import { silentLogger } from '../../core/observe/logger.js';
import type { SinkInstance, SourceInstance } from '../../core/plugin-api.js';
import { ftpSink } from '../../plugins/ftp/sink.js';
import { ftpSource } from '../../plugins/ftp/source.js';
import { makePluginContext } from '../helpers/context.js';
import {
  describeFtpTransport,
  type FtpSinkConfig,
  type FtpSourceConfig,
  listAll,
} from '../helpers/ftp-suite.js';
import { listTree, writeRequest, writeTree } from '../helpers/remote-fs-fixtures.js';
import { startVsftpd, type VsftpdHandle } from '../servers/vsftpd.js';

// Explicit and implicit TLS run the same suite in ftps.test.ts (a file each keeps them parallel).
describeFtpTransport(undefined);

describe('ftp behaviours (explicit TLS server)', () => {
  let server: VsftpdHandle;
  let uid: number;
  let gid: number;
  const opened: Array<SourceInstance | SinkInstance> = [];
  const base = () => ({
    host: server.host,
    port: server.port,
    username: server.username,
    password: server.password,
    secure: false as const,
    insecure_tls: false,
    path: '.',
    max_connections: 2,
    timeout: '10s',
    keepalive_interval: '60s',
  });

  beforeAll(async () => {
    server = await startVsftpd({ tls: 'explicit', username: 'sluice-ftp2' });
    uid = Number(execFileSync('id', ['-u', server.username]).toString());
    gid = Number(execFileSync('id', ['-g', server.username]).toString());
  });
  afterAll(async () => {
    await Promise.allSettled(opened.map((o) => o.close?.()));
    await server?.stop();
  });

  const source = async (overrides: Partial<FtpSourceConfig>, ctx = makePluginContext()) => {
    const instance = await ftpSource.create(
      {
        ...base(),
        secure: 'explicit',
        ca_file: server.caFile,
        recursive: true,
        ...overrides,
      } as FtpSourceConfig,
      ctx,
    );
    opened.push(instance);
    return instance;
  };
  const sink = async (overrides: Partial<FtpSinkConfig>) => {
    const instance = await ftpSink.create(
      {
        ...base(),
        secure: 'explicit',
        ca_file: server.caFile,
        if_exists: 'overwrite',
        ...overrides,
      } as FtpSinkConfig,
      makePluginContext(),
    );
    opened.push(instance);
    return instance;
  };

  it('refuses an untrusted certificate unless insecure_tls, which warns', async () => {
    writeTree(join(server.rootDir, 'tls'), { 'a.txt': Buffer.from('a') }, uid, gid);
    const untrusted = await source({ path: 'tls', ca_file: undefined });
    const err = (await listAll(untrusted).catch((e: unknown) => e)) as SluiceError;
    expect(err.message).toMatch(/not trusted.*ca_file/);
    expect(untrusted.isRetryable!(err)).toBe(false);

    const warnings: string[] = [];
    const log = { ...silentLogger, warn: (a: unknown, b?: string) => warnings.push(String(b ?? a)) };
    const insecure = await source(
      { path: 'tls', ca_file: undefined, insecure_tls: true },
      makePluginContext({ log }),
    );
    expect((await listAll(insecure)).map((i) => i.path)).toEqual(['a.txt']);
    expect(warnings.join('\n')).toMatch(/NOT verified/);
  });

  it('reports a wrong password as not retryable, without the password', async () => {
    const src = await source({ path: 'tls', password: 'wrong-password-456' });
    const err = (await listAll(src).catch((e: unknown) => e)) as SluiceError;
    expect(err.message).toMatch(/login failed/);
    expect(err.message).not.toContain('wrong-password-456');
    expect(src.isRetryable!(err)).toBe(false);
  });

  it('removes and moves items, replacing an existing file at the target', async () => {
    const dir = join(server.rootDir, 'tidy');
    writeTree(
      dir,
      { 'a.txt': Buffer.from('A'), 'x y/b #1.txt': Buffer.from('B-new'), 'c.txt': Buffer.from('C') },
      uid,
      gid,
    );
    writeTree(join(server.rootDir, 'processed'), { 'x y/b #1.txt': Buffer.from('B-old') }, uid, gid);
    const src = await source({ path: 'tidy' });
    const byPath = new Map((await listAll(src)).map((i) => [i.path, i]));
    await src.remove!(byPath.get('a.txt')!);
    await src.move!(byPath.get('x y/b #1.txt')!, 'processed');
    await src.move!(byPath.get('c.txt')!, join(server.rootDir, 'processed', 'new', 'deeper'));
    expect(listTree(dir)).toEqual([]);
    expect(readFileSync(join(server.rootDir, 'processed', 'x y/b #1.txt'), 'utf8')).toBe('B-new');
    expect(readFileSync(join(server.rootDir, 'processed/new/deeper/c.txt'), 'utf8')).toBe('C');
    // A file already gone is not an error (the tidy-up contract: a redo may find it done).
    await expect(src.remove!(byPath.get('a.txt')!)).resolves.toBeUndefined();
  });

  it('honours if_exists overwrite, skip, fail and rename', async () => {
    const dir = join(server.rootDir, 'exists');
    const overwrite = await sink({ path: 'exists' });
    await overwrite.write(writeRequest('r.txt', Buffer.from('one')));
    await overwrite.write(writeRequest('r.txt', Buffer.from('two')));
    expect(readFileSync(join(dir, 'r.txt'), 'utf8')).toBe('two');

    const skip = await sink({ path: 'exists', if_exists: 'skip' });
    expect((await skip.write(writeRequest('r.txt', Buffer.from('three')))).skipped).toBe(true);
    expect(readFileSync(join(dir, 'r.txt'), 'utf8')).toBe('two');

    const fail = await sink({ path: 'exists', if_exists: 'fail' });
    const err = await fail.write(writeRequest('r.txt', Buffer.from('four'))).catch((e: unknown) => e);
    expect((err as SluiceError).code).toBe('SLUICE_E_EXISTS');
    expect((await fail.write(writeRequest('r.txt', Buffer.from('two')))).size).toBe(3);

    const rename = await sink({ path: 'exists', if_exists: 'rename' });
    expect((await rename.write(writeRequest('r.txt', Buffer.from('five')))).location).toMatch(
      /r \(1\)\.txt$/,
    );
    expect((await rename.write(writeRequest('r.txt', Buffer.from('six')))).location).toMatch(/r \(2\)\.txt$/);
    expect(listTree(dir)).toEqual(['r (1).txt', 'r (2).txt', 'r.txt']);
    expect(readFileSync(join(dir, 'r (2).txt'), 'utf8')).toBe('six');
    await rename.remove!('r (2).txt');
    expect(existsSync(join(dir, 'r (2).txt'))).toBe(false);
  });
});
