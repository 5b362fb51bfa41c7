/**
 * The SFTP sink's pipelined writer (many WRITE requests in flight, issue 16.2) against a real
 * sshd: byte-exact uploads at the chunk edges, no handle or temp file left after an abort or a
 * connection reset, errors naming the file.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SinkInstance } from '../../core/plugin-api.js';
import { sftpSink } from '../../plugins/sftp/sink.js';
import { makePluginContext } from '../helpers/context.js';
import { randomData, sha256, writeRequest } from '../helpers/remote-fs-fixtures.js';
import { type FaultProxy, startFaultProxy } from '../servers/fault-proxy.js';
import { type SshdHandle, startSshd } from '../servers/sshd.js';

const KiB = 1024;
const SIZES = [0, 1, 32 * KiB - 1, 32 * KiB, 32 * KiB + 1, 5 * 1024 * KiB + 3];

let server: SshdHandle;
let uid: number;
let gid: number;
const opened: SinkInstance[] = [];

function folder(name: string): string {
  const abs = join(server.rootDir, name);
  mkdirSync(abs, { recursive: true });
  chownSync(abs, uid, gid);
  return abs;
}

async function sink(path: string, extra: Record<string, unknown> = {}, via?: { host: string; port: number }) {
  const instance = await sftpSink.create(
    {
      ...server.sftpConfig(),
      max_connections: 2,
      if_exists: 'overwrite',
      ...via,
      path,
      ...extra,
    } as never,
    makePluginContext(),
  );
  opened.push(instance);
  return instance;
}

/** Open descriptors the server holds on any file in `dir`, once settled. */
async function openInside(dir: string, on: SshdHandle = server): Promise<number> {
  const count = () => readdirSync(dir).reduce((n, name) => n + on.openHandles(join(dir, name)), 0);
  for (let i = 0; i < 100 && count() > 0; i++) await sleep(20);
  return count();
}

/** A body that sends `first` bytes, then waits until destroyed. */
function stalledBody(first: number): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) this.push(randomData(first));
      sent = true;
    },
  });
}

beforeAll(async () => {
  server = await startSshd('sluice-sftpnet');
  uid = Number(execFileSync('id', ['-u', server.username]).toString());
  gid = Number(execFileSync('id', ['-g', server.username]).toString());
});

afterAll(async () => {
  await Promise.allSettled(opened.map((o) => o.close?.()));
  await server?.stop();
});

describe('sftp sink: many writes in flight', () => {
  it.each([64, 1])(
    'uploads files of 0 B to 5 MiB byte for byte (%i requests in flight)',
    async (inFlight) => {
      const dir = folder(`sizes-${inFlight}`);
      const out = await sink(dir, { requests_in_flight: inFlight });
      for (const size of SIZES) {
        const data = randomData(size);
        const commit = await out.write(writeRequest(`f-${size}.bin`, data));
        expect(commit.size, `${size}`).toBe(size);
        expect(sha256(readFileSync(join(dir, `f-${size}.bin`))), `${size}`).toBe(sha256(data));
      }
      expect(readdirSync(dir).sort()).toEqual(SIZES.map((s) => `f-${s}.bin`).sort());
      expect(await openInside(dir)).toBe(0);
    },
  );

  it("sends the packets of one event-loop turn together: the session's socket is corked for the turn, then uncorked", async () => {
    const dir = folder('corked');
    const out = await sink(dir);
    const corks: Socket[] = [];
    const spy = vi.spyOn(Socket.prototype, 'cork').mockImplementation(function (this: Socket) {
      if (this.remotePort === server.port) corks.push(this);
      Writable.prototype.cork.call(this);
    });
    try {
      const data = randomData(1024 * KiB);
      await out.write(writeRequest('corked.bin', data));
      expect(sha256(readFileSync(join(dir, 'corked.bin')))).toBe(sha256(data));
    } finally {
      spy.mockRestore();
    }
    // 32 WRITE requests of 32 KiB and the open, stat, close and rename around them: fewer turns.
    expect(corks.length).toBeGreaterThan(0);
    expect(corks.length).toBeLessThan(32);
    expect(corks.every((sock) => sock.writableCorked === 0)).toBe(true);
  });

  it('an abort mid-upload leaves no temp file and no open handle', async () => {
    const dir = folder('abort');
    const out = await sink(dir, { max_connections: 1 });
    const controller = new AbortController();
    const request = { ...writeRequest('big.bin', stalledBody(3 * 1024 * KiB)), signal: controller.signal };
    const writing = out.write(request);
    // Wait until the temp file holds bytes: the upload is under way.
    for (let i = 0; i < 200 && !readdirSync(dir).some((n) => n.includes('sluice-tmp')); i++) await sleep(20);
    const [temp] = readdirSync(dir);
    expect(temp).toMatch(/^\.big\.bin\.sluice-tmp-/);
    expect(server.openHandles(join(dir, temp))).toBe(1);
    controller.abort(new Error('test abort'));
    await expect(writing).rejects.toThrow();
    expect(await openInside(dir)).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
    // The session is usable again.
    await out.write(writeRequest('after.bin', randomData(1000)));
    expect(readdirSync(dir)).toEqual(['after.bin']);
  });

  it('a refused open names the file and is not retried', async () => {
    const dir = folder('locked');
    chmodSync(dir, 0o555);
    const out = await sink(dir);
    const err = await out.write(writeRequest('x.bin', randomData(10))).then(
      () => new Error('expected a failure'),
      (e: unknown) => e as Error,
    );
    expect(err.message).toMatch(
      new RegExp(`^SFTP open ${dir}/\\.x\\.bin\\.sluice-tmp-[0-9a-f]+ failed: permission denied`),
    );
    expect(out.isRetryable?.(err)).toBe(false);
  });
});

describe('sftp sink: a connection reset mid-upload', () => {
  let proxy: FaultProxy;

  beforeAll(async () => {
    proxy = await startFaultProxy({
      target: { host: server.host, port: server.port },
      faults: { resetAfterBytes: 2 * 1024 * KiB, direction: 'upstream' },
      enabled: false,
    });
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  it('fails the upload with the file named, as retryable, then uploads it whole', async () => {
    const dir = folder('reset');
    const out = await sink(dir, { max_connections: 1 }, proxy);
    const data = randomData(6 * 1024 * KiB);
    proxy.enabled = true;
    const err = await out.write(writeRequest('big.bin', data)).then(
      () => new Error('expected a failure'),
      (e: unknown) => e as Error,
    );
    proxy.enabled = false;
    expect(err.message).toMatch(
      new RegExp(`^SFTP write ${dir}/\\.big\\.bin\\.sluice-tmp-[0-9a-f]+ failed: `),
    );
    expect(out.isRetryable?.(err)).toBe(true);
    await out.write(writeRequest('big.bin', data));
    expect(sha256(readFileSync(join(dir, 'big.bin')))).toBe(sha256(data));
    expect(readdirSync(dir).filter((n) => n.includes('sluice-tmp'))).toEqual([]);
  });
});

describe('sftp sink: a big upload over several channels (upload_channels)', () => {
  let logged: SshdHandle;
  let limited: SshdHandle;

  beforeAll(async () => {
    [logged, limited] = await Promise.all([
      startSshd('sluice-sftpnet-lanes', { logReads: true }),
      startSshd('sluice-sftpnet-lane1', { logReads: true, maxSessions: 1 }),
    ]);
  });

  afterAll(async () => {
    await Promise.allSettled(opened.map((o) => o.close?.()));
    await Promise.allSettled([logged?.stop(), limited?.stop()]);
  });

  async function laneSink(on: SshdHandle, extra: Record<string, unknown>) {
    const dir = join(on.rootDir, 'out');
    mkdirSync(dir, { recursive: true });
    const owner = {
      uid: Number(execFileSync('id', ['-u', on.username]).toString()),
      gid: Number(execFileSync('id', ['-g', on.username]).toString()),
    };
    chownSync(dir, owner.uid, owner.gid);
    const instance = await sftpSink.create(
      {
        ...on.sftpConfig(),
        max_connections: 1,
        if_exists: 'overwrite',
        path: dir,
        // Few requests per round: on loopback the upload waits on the server early and surely.
        requests_in_flight: 4,
        ...extra,
      } as never,
      makePluginContext(),
    );
    opened.push(instance);
    return { dir, out: instance };
  }

  /** The temp file's OPENs, in order. */
  const tempOpens = (on: SshdHandle, dir: string, name: string) =>
    on.opens().filter((o) => o.path.startsWith(`${dir}/.${name}.sluice-tmp-`));

  it('opens the temp file on a second channel (write only: no create, no truncate) and writes it byte for byte', async () => {
    const { dir, out } = await laneSink(logged, {});
    const data = randomData(24 * 1024 * KiB + 5);
    const commit = await out.write(writeRequest('big.bin', data));
    expect(commit.size).toBe(data.length);
    expect(sha256(readFileSync(join(dir, 'big.bin')))).toBe(sha256(data));
    expect(tempOpens(logged, dir, 'big.bin').map((o) => o.flags)).toEqual(['WRITE,CREATE,TRUNCATE', 'WRITE']);
    expect(await openInside(dir, logged)).toBe(0);
    // A small file stays on one channel; the next big one reuses the connection's second channel.
    await out.write(writeRequest('small.bin', randomData(100 * KiB)));
    expect(tempOpens(logged, dir, 'small.bin')).toHaveLength(1);
    const again = randomData(16 * 1024 * KiB);
    await out.write(writeRequest('again.bin', again));
    expect(sha256(readFileSync(join(dir, 'again.bin')))).toBe(sha256(again));
    expect(tempOpens(logged, dir, 'again.bin')).toHaveLength(2);
  });

  it('upload_channels: 1 keeps one channel', async () => {
    const { dir, out } = await laneSink(logged, { upload_channels: 1 });
    const data = randomData(16 * 1024 * KiB);
    await out.write(writeRequest('one.bin', data));
    expect(sha256(readFileSync(join(dir, 'one.bin')))).toBe(sha256(data));
    expect(tempOpens(logged, dir, 'one.bin')).toHaveLength(1);
  });

  it('a server that refuses another channel (MaxSessions 1) gets the upload over the one it gave', async () => {
    const { dir, out } = await laneSink(limited, {});
    const data = randomData(16 * 1024 * KiB);
    await out.write(writeRequest('big.bin', data));
    expect(sha256(readFileSync(join(dir, 'big.bin')))).toBe(sha256(data));
    expect(tempOpens(limited, dir, 'big.bin')).toHaveLength(1);
    expect(await openInside(dir, limited)).toBe(0);
  });
});
