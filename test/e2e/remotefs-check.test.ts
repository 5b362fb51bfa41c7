/**
 * Pre-flight checks (issue 15.6) of the SFTP and FTP sources and sinks against real sshd and
 * vsftpd: what `cheap` and `full` prove, and one clear message per way they fail.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import type { PreflightRequest } from '../../core/plugin-api.js';
import { REMOTE_CONNECTORS, type RemoteServer } from '../helpers/remote-fs-connectors.js';
import { freePort } from '../servers/remote-fs-net.js';

const cheap = (): PreflightRequest => ({ depth: 'cheap', signal: new AbortController().signal });
const full = (): PreflightRequest => ({ depth: 'full', signal: new AbortController().signal });

async function failure(promise: Promise<unknown>): Promise<SluiceError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SluiceError);
  return err as SluiceError;
}

for (const connector of REMOTE_CONNECTORS) {
  const { protocol } = connector;
  const code = { source: 'SLUICE_E_SOURCE', sink: 'SLUICE_E_SINK' } as const;

  describe(`${protocol}: pre-flight check`, () => {
    let server: RemoteServer;

    beforeAll(async () => {
      server = await connector.start('sluice-check');
      server.put('in/a.csv', 'a');
      server.put('in/sub/b.csv', 'b');
      server.put('in/c.csv', 'c');
      server.put('file.txt', 'not a folder');
      server.put('ro/keep.txt', 'read only folder');
      chmodSync(join(server.rootDir, 'ro'), 0o555);
    });
    afterAll(async () => server?.stop());

    it('source: cheap proves login and folder, full lists it; nothing changes', async () => {
      const src = await server.source('in');
      expect((await src.check!(cheap())).detail).toMatch(
        new RegExp(`^logged in as ${server.username}@127\\.0\\.0\\.1:${server.port}, .*in exists$`),
      );
      expect((await src.check!(full())).detail).toMatch(/in listed \(3 entries\)$/);
      expect(readdirSync(join(server.rootDir, 'in')).sort()).toEqual(['a.csv', 'c.csv', 'sub']);
    });

    it('sink: full writes a probe and removes it', async () => {
      const sink = await server.sink('in');
      expect((await sink.check!(cheap())).detail).toMatch(/in exists$/);
      expect((await sink.check!(full())).detail).toMatch(/in exists, wrote and removed a probe file in it$/);
      expect(readdirSync(join(server.rootDir, 'in')).sort()).toEqual(['a.csv', 'c.csv', 'sub']);
    });

    it('a missing folder: the source fails, the sink says the first write creates it', async () => {
      const src = await server.source('nope/deeper');
      const err = await failure(src.check!(cheap()));
      expect(err.code).toBe(code.source);
      expect(err.message).toMatch(/^folder \S+nope\/deeper does not exist/);
      expect(err.context.hint).toMatch(/path/);

      const sink = await server.sink('nope/deeper');
      expect((await sink.check!(cheap())).detail).toMatch(
        /nope\/deeper does not exist yet \(the first write creates it\)$/,
      );
      expect((await sink.check!(full())).detail).toMatch(/wrote and removed a probe file in \S+$/);
      expect(existsSync(join(server.rootDir, 'nope'))).toBe(false);
      expect(readdirSync(server.rootDir).filter((n) => n.startsWith('.sluice-check-'))).toEqual([]);
    });

    it('a file where the folder should be', async () => {
      for (const instance of [await server.source('file.txt'), await server.sink('file.txt')]) {
        const err = await failure(instance.check!(cheap()));
        expect(err.message).toMatch(/file\.txt is a file, not a folder$/);
      }
    });

    it('permission denied on write: the full sink check fails, the cheap one passes', async () => {
      const sink = await server.sink('ro');
      await sink.check!(cheap());
      const err = await failure(sink.check!(full()));
      expect(err.code).toBe(code.sink);
      expect(err.message).toMatch(/^cannot write in \S+ro: permission denied$/);
      expect(err.context.hint).toMatch(/create, rename and delete/);
      expect(err.retryable).toBe(false);
      expect(readdirSync(join(server.rootDir, 'ro'))).toEqual(['keep.txt']);
    });

    it('a refused login', async () => {
      const wrong = { password: 'not-the-password', private_key_file: undefined };
      const err = await failure((await server.source('in', wrong)).check!(cheap()));
      expect(err.code).toBe(code.source);
      expect(err.message).toMatch(
        new RegExp(
          `(authentication|login) failed for user "${server.username}" at 127\\.0\\.0\\.1:${server.port}`,
        ),
      );
      expect(err.message).not.toContain('not-the-password');
      expect(err.retryable).toBe(false);
    });

    it('an unreachable host', async () => {
      const port = await freePort();
      const err = await failure((await server.sink('in', { port })).check!(cheap()));
      expect(err.code).toBe(code.sink);
      expect(err.message).toMatch(
        new RegExp(`^cannot connect to S?FTP server 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`),
      );
    });
  });
}

describe('sftp: pre-flight check of the host key', () => {
  let server: RemoteServer;
  beforeAll(async () => {
    server = await REMOTE_CONNECTORS.find((c) => c.protocol === 'sftp')!.start('sluice-check2');
    mkdirSync(join(server.rootDir, 'in'));
  });
  afterAll(async () => server?.stop());

  it('a changed host key names the pinned and the presented fingerprint', async () => {
    const pinned = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';
    const err = await failure((await server.source('in', { host_key_sha256: pinned })).check!(cheap()));
    expect(err.message).toContain(pinned);
    expect(err.message).toContain(server.hostKey!);
    expect(err.message).toMatch(/key changed/);
    expect(err.retryable).toBe(false);
  });

  it('an unreadable folder fails the full source check (permission denied)', async () => {
    server.put('locked/x.txt', 'x');
    chmodSync(join(server.rootDir, 'locked'), 0o311);
    const src = await server.source('locked');
    await src.check!(cheap());
    const err = await failure(src.check!(full()));
    expect(err.message).toMatch(/^cannot list \S+locked: permission denied$/);
  });
});
