/** The FTP connector suite run once per transport (plain, explicit TLS, implicit TLS). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Static } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Item, SinkInstance, SourceInstance } from '../../core/plugin-api.js';
import { ftpSink } from '../../plugins/ftp/sink.js';
import { ftpSource } from '../../plugins/ftp/source.js';
import { childPids } from '../servers/remote-fs-net.js';
import { startVsftpd, type VsftpdHandle } from '../servers/vsftpd.js';
import { makePluginContext } from './context.js';
import {
  failingBody,
  listTree,
  ODD_NAMES,
  randomData,
  readAll,
  sha256,
  writeRequest,
  writeTree,
} from './remote-fs-fixtures.js';

export type FtpSourceConfig = Static<typeof ftpSource.config>;
export type FtpSinkConfig = Static<typeof ftpSink.config>;

export async function listAll(src: SourceInstance): Promise<Item[]> {
  const items: Item[] = [];
  for await (const item of src.list(new AbortController().signal)) items.push(item);
  return items;
}

export function describeFtpTransport(tls: 'explicit' | 'implicit' | undefined): void {
  const secure = tls ?? false;
  describe(`ftp (${tls ? `${tls} TLS` : 'plain'})`, () => {
    let server: VsftpdHandle;
    let uid: number;
    let gid: number;
    const opened: Array<SourceInstance | SinkInstance> = [];
    const sourceFiles: Record<string, Buffer> = {};

    const base = () => ({
      host: server.host,
      port: server.port,
      username: server.username,
      password: server.password,
      secure,
      ca_file: server.caFile,
      insecure_tls: false,
      path: 'in',
      max_connections: 4,
      timeout: '10s',
      keepalive_interval: '60s',
    });
    const source = async (overrides: Partial<FtpSourceConfig> = {}, ctx = makePluginContext()) => {
      const instance = await ftpSource.create(
        { ...base(), recursive: true, ...overrides } as FtpSourceConfig,
        ctx,
      );
      opened.push(instance);
      return instance;
    };
    const sink = async (overrides: Partial<FtpSinkConfig> = {}) => {
      const instance = await ftpSink.create(
        { ...base(), path: 'out', if_exists: 'overwrite', ...overrides } as FtpSinkConfig,
        makePluginContext(),
      );
      opened.push(instance);
      return instance;
    };
    const closeAll = async () => {
      await Promise.allSettled(opened.splice(0).map((o) => o.close?.()));
    };

    beforeAll(async () => {
      server = await startVsftpd({ tls });
      uid = Number(execFileSync('id', ['-u', server.username]).toString());
      gid = Number(execFileSync('id', ['-g', server.username]).toString());
      for (const [i, name] of ODD_NAMES.entries()) sourceFiles[name] = randomData(1000 + i * 777);
      sourceFiles['big/blob.bin'] = randomData(4 * 1024 * 1024 + 5);
      writeTree(join(server.rootDir, 'in'), sourceFiles, uid, gid);
      writeTree(
        join(server.rootDir, 'in'),
        { '.partial.csv.sluice-tmp-0123456789ab': Buffer.from('x') },
        uid,
        gid,
      );
    });

    afterAll(async () => {
      await closeAll();
      await server?.stop();
    });

    it('lists recursively (odd names, LIST + MDTM) and reads every file intact', async () => {
      const src = await source();
      const items = await listAll(src);
      expect(items.map((i) => i.path).sort()).toEqual(Object.keys(sourceFiles).sort());
      for (const item of items) {
        expect(item.size).toBe(sourceFiles[item.path].length);
        // MDTM gives whole seconds in UTC: it must match the file's real mtime.
        const real = Math.floor(
          Number(execFileSync('stat', ['-c', '%Y', join(server.rootDir, 'in', item.path)])),
        );
        expect(item.mtime!.getTime() / 1000, item.path).toBe(real);
        expect(sha256(await readAll(await item.open())), item.path).toBe(sha256(sourceFiles[item.path]));
      }
      const second = await listAll(await source({ recursive: false }));
      expect(second.map((i) => i.path).sort()).toEqual(ODD_NAMES.filter((n) => !n.includes('/')).sort());
    });

    it('opens siblings by path and returns null for missing ones', async () => {
      const src = await source();
      const stream = await src.openPath!('sub dir/deep/nested file.bin');
      expect(sha256(await readAll(stream!))).toBe(sha256(sourceFiles['sub dir/deep/nested file.bin']));
      expect(await src.openPath!('nope.sig')).toBeNull();
      expect(await src.openPath!('sub dir')).toBeNull();
    });

    it('writes small and multi-MiB files under odd names, leaving no temp files', async () => {
      const snk = await sink();
      const files: Record<string, Buffer> = {};
      for (const name of ODD_NAMES) files[`w/${name}`] = randomData(2048);
      files['w/large.bin'] = randomData(5 * 1024 * 1024 + 1);
      for (const [dest, data] of Object.entries(files)) {
        const commit = await snk.write(writeRequest(dest, data));
        expect(commit.size).toBe(data.length);
        expect(commit.location).toBe(`${secure ? 'ftps' : 'ftp'}://127.0.0.1:${server.port}/~/out/${dest}`);
        expect(sha256(await readAll(await snk.readBack!(dest, new AbortController().signal)))).toBe(
          sha256(data),
        );
      }
      expect(listTree(join(server.rootDir, 'out', 'w'))).toEqual(
        Object.keys(files)
          .map((f) => f.slice(2))
          .sort(),
      );
    });

    it('leaves nothing behind when the body fails mid-stream, and keeps working', async () => {
      const snk = await sink({ max_connections: 1 });
      const err = await snk
        .write(writeRequest('broken/f.csv', failingBody(randomData(300_000))))
        .catch((e: unknown) => e);
      expect((err as Error).message).toMatch(/integrity/);
      expect(listTree(join(server.rootDir, 'out', 'broken'))).toEqual([]);
      expect((await snk.write(writeRequest('broken/ok.csv', Buffer.from('fine')))).size).toBe(4);
    });

    it('runs 8 uploads at once over a pool of 3 connections', async () => {
      await closeAll();
      await new Promise((r) => setTimeout(r, 300));
      const snk = await sink({ max_connections: 3 });
      const files = Array.from(
        { length: 8 },
        (_, i) => [`pool/f${i}.bin`, randomData(768 * 1024 + i)] as const,
      );
      let maxSessions = 0;
      const sampler = setInterval(() => {
        maxSessions = Math.max(maxSessions, childPids(server.pid).length);
      }, 5);
      try {
        const commits = await Promise.all(files.map(([dest, data]) => snk.write(writeRequest(dest, data))));
        expect(commits.map((c) => c.size)).toEqual(files.map(([, d]) => d.length));
      } finally {
        clearInterval(sampler);
      }
      for (const [dest, data] of files)
        expect(sha256(readFileSync(join(server.rootDir, 'out', dest)))).toBe(sha256(data));
      expect(maxSessions).toBeGreaterThanOrEqual(2);
      expect(maxSessions).toBeLessThanOrEqual(3);
    });

    it('reconnects after the server kills its sessions', async () => {
      const src = await source({ max_connections: 2 });
      const snk = await sink({ max_connections: 2 });
      expect((await listAll(src)).length).toBe(8);
      await snk.write(writeRequest('again/a.txt', Buffer.from('a')));
      server.killSessions();
      await new Promise((r) => setTimeout(r, 200));
      expect((await listAll(src)).length).toBe(8);
      expect((await snk.write(writeRequest('again/b.txt', Buffer.from('bb')))).size).toBe(2);
      const stream = await src.openPath!('plain.txt');
      expect(sha256(await readAll(stream!))).toBe(sha256(sourceFiles['plain.txt']));
    });
  });
}
