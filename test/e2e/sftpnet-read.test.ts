/**
 * The SFTP source's pipelined reader (many READ requests in flight, issue 16.2) against a real
 * sshd: byte-exact files at the chunk edges, a file changing size while read (caught by the
 * runtime's listed-size check), no handle left open after an abort, read errors naming the file.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SourceInstance } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { createSftpPool, sftpSettings } from '../../plugins/sftp/client.js';
import { sftpSource } from '../../plugins/sftp/source.js';
import { makePluginContext } from '../helpers/context.js';
import { randomData, readAll, sha256 } from '../helpers/remote-fs-fixtures.js';
import { listAll } from '../helpers/source-probe.js';
import { testRegistry } from '../helpers/test-plugins.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { type FaultProxy, startFaultProxy } from '../servers/fault-proxy.js';
import { type SshdHandle, startSshd } from '../servers/sshd.js';

const KiB = 1024;
const SIZES = [0, 1, 32 * KiB - 1, 32 * KiB, 32 * KiB + 1, 5 * 1024 * KiB + 3];

let server: SshdHandle;
let ws: Workspace;
let uid: number;
let gid: number;
const opened: SourceInstance[] = [];

function put(dir: string, files: Record<string, Buffer>): string {
  const abs = join(server.rootDir, dir);
  mkdirSync(abs, { recursive: true });
  chownSync(abs, uid, gid);
  for (const [name, body] of Object.entries(files)) {
    writeFileSync(join(abs, name), body);
    chownSync(join(abs, name), uid, gid);
  }
  return abs;
}

async function source(
  path: string,
  extra: Record<string, unknown> = {},
  via?: { host: string; port: number },
) {
  const instance = await sftpSource.create(
    { ...server.sftpConfig(), ...via, path, recursive: true, max_connections: 2, ...extra } as never,
    makePluginContext(),
  );
  opened.push(instance);
  return instance;
}

/** Waits until no server process holds `path` open; returns how many still do. */
async function openHandlesAfterSettling(path: string): Promise<number> {
  for (let i = 0; i < 100 && server.openHandles(path) > 0; i++) await sleep(20);
  return server.openHandles(path);
}

beforeAll(async () => {
  server = await startSshd('sluice-sftpnet');
  uid = Number(execFileSync('id', ['-u', server.username]).toString());
  gid = Number(execFileSync('id', ['-g', server.username]).toString());
  ws = makeWorkspace();
});

afterAll(async () => {
  await Promise.allSettled(opened.map((o) => o.close?.()));
  ws?.cleanup();
  await server?.stop();
});

describe('sftp source: many reads in flight', () => {
  it.each([64, 3, 1])(
    'reads files of 0 B to 5 MiB byte for byte (%i requests in flight)',
    async (inFlight) => {
      const files = Object.fromEntries(SIZES.map((size) => [`f-${size}.bin`, randomData(size)]));
      const dir = put(`sizes-${inFlight}`, files);
      const src = await source(dir, { requests_in_flight: inFlight });
      const listed = await listAll(src);
      expect(listed.map((i) => i.path).sort()).toEqual(Object.keys(files).sort());
      for (const item of listed) {
        const bytes = await readAll(await item.open());
        expect(bytes.length, item.path).toBe(files[item.path].length);
        expect(sha256(bytes), item.path).toBe(sha256(files[item.path]));
      }
      // Every handle opened was closed again.
      for (const name of Object.keys(files))
        expect(await openHandlesAfterSettling(join(dir, name)), name).toBe(0);
    },
  );

  it('a file that grows or shrinks after listing is not delivered (the listed-size check)', async () => {
    const big = 3 * 1024 * KiB;
    const dir = put('changing', { 'grows.bin': randomData(big), 'shrinks.bin': randomData(big) });
    for (const [name, toBytes] of [
      ['grows.bin', big + 100_000],
      ['shrinks.bin', 100_000],
    ] as const) {
      const file = ws.pipeline(
        [
          `name: changing-${name.replace('.bin', '')}`,
          'source:',
          '  sftp:',
          ...server.sftpYaml(),
          `    path: ${dir}`,
          `    include: ["${name}"]`,
          'steps:',
          `  - truncate_source: { root: ${dir}, to_bytes: ${toBytes} }`,
          '  - compress: { format: gzip }',
          'sink:',
          '  local: { path: ./out-changing }',
          'policy:',
          '  retry: { max_attempts: 1 }',
        ].join('\n'),
        `changing-${name}.yaml`,
      );
      const summary = await runPipelineFile(file, { registry: testRegistry() });
      expect(summary, name).toMatchObject({ ok: 0, failed: 1 });
      expect(summary.failures[0].code).toBe('SLUICE_E_CHANGED');
      expect(summary.failures[0].error).toMatch(/read \d+ bytes but the source listed \d+/);
    }
  });

  it('an abort mid-file closes the handle on the server and frees the session', async () => {
    const dir = put('abort', { 'big.bin': randomData(16 * 1024 * KiB), 'after.bin': randomData(70_000) });
    const src = await source(dir, { max_connections: 1 });
    const listed = await listAll(src);
    const big = listed.find((i) => i.path === 'big.bin')!;
    const controller = new AbortController();
    const stream = await big.open(controller.signal);
    let received = 0;
    await new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        // While the file is being read, the server holds it open.
        expect(server.openHandles(join(dir, 'big.bin'))).toBe(1);
        received += chunk.length;
        if (received >= 256 * KiB) {
          stream.pause();
          resolve();
        }
      });
    });
    const closed = new Promise((resolve) => stream.once('close', resolve));
    stream.on('error', () => {});
    controller.abort(new Error('test abort'));
    await closed;
    // The handle's CLOSE was answered before the stream closed: nothing left to wait for.
    expect(server.openHandles(join(dir, 'big.bin'))).toBe(0);
    // The one session went back to the pool in working order.
    const after = listed.find((i) => i.path === 'after.bin')!;
    expect((await readAll(await after.open())).length).toBe(70_000);
  });

  it('a read error from the server names the file, ends the stream and frees the session', async () => {
    // The server opens a folder for reading and then fails its first READ (EISDIR).
    const dir = put('errors', {});
    mkdirSync(join(dir, 'folder.bin'));
    const settings = await sftpSettings(
      { ...server.sftpConfig(), path: dir, max_connections: 1, requests_in_flight: 64 } as never,
      makePluginContext(),
      'SLUICE_E_SOURCE',
    );
    const pool = await createSftpPool(settings, 1);
    try {
      const { connection } = await pool.acquire();
      let done: Error | undefined | null = null;
      const stream = await connection.openRead(join(dir, 'folder.bin'), (err) => {
        done = err;
      });
      const failure = await readAll(stream).catch((err: unknown) => err);
      expect((failure as Error).message).toMatch(
        new RegExp(`^SFTP read ${join(dir, 'folder.bin')} failed: `),
      );
      expect((failure as { code?: string }).code).toBe('SLUICE_E_SOURCE');
      expect(done).toBe(failure);
      expect(server.openHandles(join(dir, 'folder.bin'))).toBe(0);
      pool.release(connection);
    } finally {
      await pool.close();
    }
  });
});

describe('sftp source: a connection reset mid-file', () => {
  let proxy: FaultProxy;

  beforeAll(async () => {
    proxy = await startFaultProxy({
      target: { host: server.host, port: server.port },
      faults: { resetAfterBytes: 3 * 1024 * KiB },
      enabled: false,
    });
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  it('fails the read with the file named, as retryable, and reads it whole on a fresh session', async () => {
    const body = randomData(8 * 1024 * KiB);
    const dir = put('reset', { 'big.bin': body });
    const src = await source(dir, { max_connections: 1 }, proxy);
    const [item] = await listAll(src);
    proxy.enabled = true;
    const failure = await readAll(await item.open()).catch((err: unknown) => err);
    proxy.enabled = false;
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toContain(join(dir, 'big.bin'));
    expect(src.isRetryable?.(failure)).toBe(true);
    expect(sha256(await readAll(await item.open()))).toBe(sha256(body));
  });
});
