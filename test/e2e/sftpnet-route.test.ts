/**
 * Reaching the SFTP server another way (issue 15.5): through an SSH jump host (a second sshd),
 * through an HTTP CONNECT or SOCKS5 proxy (test/servers/proxy-servers.ts), or a proxy to the
 * jump host. Each test checks the traffic took that way, and that each hop's errors name it.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceError } from '../../core/errors.js';
import { redact } from '../../core/observe/redact.js';
import type { SinkInstance, SourceInstance } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { sftpSink } from '../../plugins/sftp/sink.js';
import { sftpSource } from '../../plugins/sftp/source.js';
import { makePluginContext } from '../helpers/context.js';
import { randomData, readAll, sha256, writeRequest } from '../helpers/remote-fs-fixtures.js';
import { listAll } from '../helpers/source-probe.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { startConnectProxy, startSocks5Proxy, type TestProxy } from '../servers/proxy-servers.js';
import { type SshdHandle, sessionPids, startSshd } from '../servers/sshd.js';

let target: SshdHandle;
let jump: SshdHandle;
let ws: Workspace;
const body = randomData(3 * 1024 * 1024 + 5);
const opened: Array<SourceInstance | SinkInstance> = [];

/** A login block for `jump:` (its timeouts are the target's). */
function login(server: SshdHandle) {
  const { connect_timeout: _, keepalive_interval: __, ...keys } = server.sftpConfig();
  return keys;
}

const common = { max_connections: 2 };

async function source(extra: Record<string, unknown>) {
  const instance = await sftpSource.create(
    {
      ...target.sftpConfig(),
      ...common,
      path: join(target.rootDir, 'in'),
      recursive: true,
      ...extra,
    } as never,
    makePluginContext(),
  );
  opened.push(instance);
  return instance;
}

/** Logins the sshd accepted so far. */
const logins = (server: SshdHandle) =>
  readFileSync(server.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Accepted ')).length;

async function noSessionsLeft(server: SshdHandle): Promise<number> {
  for (let i = 0; i < 100 && sessionPids(server.pid).length > 0; i++) await sleep(20);
  return sessionPids(server.pid).length;
}

const failureOf = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: unknown) => err as SluiceError,
  );

beforeAll(async () => {
  [target, jump] = await Promise.all([startSshd('sluice-sftpnet-t'), startSshd('sluice-sftpnet-j')]);
  const uid = Number(execFileSync('id', ['-u', target.username]).toString());
  const gid = Number(execFileSync('id', ['-g', target.username]).toString());
  const dir = join(target.rootDir, 'in');
  mkdirSync(dir);
  chownSync(dir, uid, gid);
  writeFileSync(join(dir, 'data.bin'), body);
  chownSync(join(dir, 'data.bin'), uid, gid);
  mkdirSync(join(target.rootDir, 'out'));
  chownSync(join(target.rootDir, 'out'), uid, gid);
  ws = makeWorkspace();
});

afterAll(async () => {
  await Promise.allSettled(opened.map((o) => o.close?.()));
  ws?.cleanup();
  await Promise.allSettled([target?.stop(), jump?.stop()]);
});

describe('sftp through a jump host', () => {
  it('reads and writes through the jump host, and closes both hops with the pool', async () => {
    const jumpLogins = logins(jump);
    const src = await source({ jump: login(jump) });
    const [item] = await listAll(src);
    expect(sha256(await readAll(await item.open()))).toBe(sha256(body));
    // The session went through the jump host: it logged a login and holds a session process.
    expect(logins(jump)).toBe(jumpLogins + 1);
    expect(sessionPids(jump.pid).length).toBeGreaterThan(0);

    const sink = await sftpSink.create(
      {
        ...target.sftpConfig(),
        ...common,
        path: join(target.rootDir, 'out'),
        if_exists: 'overwrite',
        jump: login(jump),
      } as never,
      makePluginContext(),
    );
    opened.push(sink);
    await sink.write(writeRequest('copy.bin', body));
    expect(sha256(readFileSync(join(target.rootDir, 'out/copy.bin')))).toBe(sha256(body));
    expect(logins(jump)).toBe(jumpLogins + 2);

    await src.close?.();
    await sink.close?.();
    expect(await noSessionsLeft(jump)).toBe(0);
    expect(await noSessionsLeft(target)).toBe(0);
  });

  it('runs a pipeline whose sftp source names a jump host in YAML', async () => {
    const jumpLogins = logins(jump);
    const file = ws.pipeline(
      [
        'name: via-jump',
        'source:',
        '  sftp:',
        ...target.sftpYaml(),
        `    path: ${join(target.rootDir, 'in')}`,
        '    jump:',
        ...jump.sftpYaml().map((line) => `  ${line}`),
        'sink:',
        '  local: { path: ./out-jump }',
      ].join('\n'),
    );
    expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 0 });
    expect(sha256(readFileSync(ws.path('out-jump/data.bin')))).toBe(sha256(body));
    expect(logins(jump)).toBeGreaterThan(jumpLogins);
  });

  it("checks the jump host's key and the target's key, and says which one was refused", async () => {
    const otherKey = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';
    const atJump = await failureOf(
      (await source({ jump: { ...login(jump), host_key_sha256: otherKey } }))
        .list(new AbortController().signal)
        [Symbol.asyncIterator]()
        .next(),
    );
    expect(atJump.message).toContain(
      `host key of SSH jump host ${jump.host}:${jump.port} is ${jump.hostKeySha256}`,
    );
    expect(atJump.retryable).toBe(false);
    const atTarget = await failureOf(
      (await source({ host_key_sha256: otherKey, jump: login(jump) }))
        .list(new AbortController().signal)
        [Symbol.asyncIterator]()
        .next(),
    );
    expect(atTarget.message).toContain(
      `host key of SFTP server ${target.host}:${target.port} is ${target.hostKeySha256}`,
    );
    const unpinned = await failureOf(
      (await source({ jump: { ...login(jump), host_key_sha256: undefined } }))
        .list(new AbortController().signal)
        [Symbol.asyncIterator]()
        .next(),
    );
    expect(unpinned.message).toContain(
      `SSH jump host ${jump.host}:${jump.port} presented host key ${jump.hostKeySha256}`,
    );
  });

  it('names the hop that refused the login or could not reach the next one', async () => {
    const badLogin = await failureOf(
      (
        await source({
          jump: { ...login(jump), private_key_file: undefined, password: 'not-the-password' },
        })
      )
        .list(new AbortController().signal)
        [Symbol.asyncIterator]()
        .next(),
    );
    expect(badLogin.message).toBe(
      `SSH jump host: authentication failed for user "${jump.username}" at ${jump.host}:${jump.port}`,
    );
    expect(badLogin.retryable).toBe(false);
    expect(redact(badLogin.message)).not.toContain('not-the-password');

    const closedPort = jump.port === 9 ? 10 : 9;
    const unreachable = await failureOf(
      (await source({ port: closedPort, jump: login(jump) }))
        .list(new AbortController().signal)
        [Symbol.asyncIterator]()
        .next(),
    );
    expect(unreachable.message).toMatch(
      new RegExp(
        `^SSH jump host ${jump.host}:${jump.port} could not open a connection to ${target.host}:${closedPort}: `,
      ),
    );
  });
});

describe('sftp through a proxy', () => {
  const proxies: Array<[string, () => Promise<TestProxy>]> = [
    ['HTTP CONNECT', () => startConnectProxy({ username: 'px-user', password: 'px-secret-1' })],
    ['SOCKS5', () => startSocks5Proxy({ username: 'px-user', password: 'px-secret-1' })],
  ];
  for (const [kind, start] of proxies) {
    describe(kind, () => {
      let proxy: TestProxy;
      beforeAll(async () => {
        proxy = await start();
      });
      afterAll(async () => {
        await proxy?.stop();
      });

      it('reads through the proxy', async () => {
        const src = await source({ proxy: { url: proxy.url } });
        const [item] = await listAll(src);
        expect(sha256(await readAll(await item.open()))).toBe(sha256(body));
        expect(proxy.stats.tunnels).toBeGreaterThanOrEqual(1);
      });

      it('reaches the jump host through the proxy', async () => {
        const before = { tunnels: proxy.stats.tunnels, logins: logins(jump) };
        const src = await source({ proxy: { url: proxy.url }, jump: login(jump), max_connections: 1 });
        const [item] = await listAll(src);
        expect(sha256(await readAll(await item.open()))).toBe(sha256(body));
        expect(proxy.stats.tunnels).toBe(before.tunnels + 1);
        expect(logins(jump)).toBe(before.logins + 1);
      });

      it('a refused proxy login names the proxy without its credentials, and is not retried', async () => {
        const wrong = proxy.url.replace('px-secret-1', 'px-wrong-2');
        const err = await failureOf(
          (await source({ proxy: { url: wrong } }))
            .list(new AbortController().signal)
            [Symbol.asyncIterator]()
            .next(),
        );
        const where = wrong.replace(/\/\/[^@]+@/, '//');
        expect(err.message).toMatch(
          new RegExp(
            `^cannot reach SFTP server ${target.host}:${target.port} through proxy ${where.replace(/[/.]/g, '\\$&')}: `,
          ),
        );
        expect(err.message).not.toContain('px-wrong-2');
        expect(err.retryable).toBe(false);
        expect(proxy.stats.refused).toBeGreaterThan(0);
      });
    });
  }

  it('refuses a proxy URL it cannot use, pointing at the field, without echoing it', async () => {
    const err = await failureOf(source({ proxy: { url: 'ftp://u:pw-hidden-9@127.0.0.1:21' } }));
    expect(err.message).toBe('proxy url scheme "ftp" is not supported (socks5:// or http://)');
    expect(err.context?.jsonPath).toBe('/proxy/url');
  });
});
