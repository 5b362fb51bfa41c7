import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Static } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { silentLogger } from '../../core/observe/logger.js';
import type { Item, SinkInstance, SourceInstance } from '../../core/plugin-api.js';
import { sftpSink } from '../../plugins/sftp/sink.js';
import { sftpSource } from '../../plugins/sftp/source.js';
import { makePluginContext } from '../helpers/context.js';
import {
  failingBody,
  listTree,
  ODD_NAMES,
  randomData,
  readAll,
  sha256,
  writeRequest,
  writeTree,
} from '../helpers/remote-fs-fixtures.js';
import { type SshdHandle, sessionPids, startSshd } from '../servers/sshd.js';

type SourceConfig = Static<typeof sftpSource.config>;
type SinkConfig = Static<typeof sftpSink.config>;

let server: SshdHandle;
let uid: number;
let gid: number;
const opened: Array<SourceInstance | SinkInstance> = [];
const sourceFiles: Record<string, Buffer> = {};

function base() {
  return {
    host: server.host,
    port: server.port,
    username: server.username,
    password: server.password,
    host_key_sha256: server.hostKeySha256,
    insecure_accept_any_host_key: false,
    path: '.',
    max_connections: 4,
    connect_timeout: '10s',
    keepalive_interval: '15s',
  };
}

async function source(overrides: Partial<SourceConfig> = {}, ctx = makePluginContext()) {
  const instance = await sftpSource.create({ ...base(), recursive: true, ...overrides } as SourceConfig, ctx);
  opened.push(instance);
  return instance;
}

async function sink(overrides: Partial<SinkConfig> = {}) {
  const instance = await sftpSink.create(
    { ...base(), if_exists: 'overwrite', ...overrides } as SinkConfig,
    makePluginContext(),
  );
  opened.push(instance);
  return instance;
}

async function listAll(src: SourceInstance): Promise<Item[]> {
  const items: Item[] = [];
  for await (const item of src.list(new AbortController().signal)) items.push(item);
  return items;
}

beforeAll(async () => {
  server = await startSshd();
  uid = Number(execFileSync('id', ['-u', server.username]).toString());
  gid = Number(execFileSync('id', ['-g', server.username]).toString());
  for (const [i, name] of ODD_NAMES.entries()) sourceFiles[name] = randomData(1000 + i * 777);
  // Larger than the read-ahead of a paused stream, so killing the session mid-read is seen.
  sourceFiles['big/blob.bin'] = randomData(12 * 1024 * 1024 + 17);
  writeTree(join(server.rootDir, 'in'), sourceFiles, uid, gid);
  // An upload in progress by another sluice: listing must not pick it up.
  writeTree(
    join(server.rootDir, 'in'),
    { '.partial.csv.sluice-tmp-0123456789ab': Buffer.from('x') },
    uid,
    gid,
  );
});

afterAll(async () => {
  await Promise.allSettled(opened.map((o) => o.close?.()));
  await server?.stop();
});

describe('sftp source', () => {
  it('lists recursively with password auth and reads every file intact', async () => {
    const src = await source({ path: join(server.rootDir, 'in') });
    const items = await listAll(src);
    expect(items.map((i) => i.path).sort()).toEqual(Object.keys(sourceFiles).sort());
    for (const item of items) {
      expect(item.source).toBe('sftp');
      expect(item.size).toBe(sourceFiles[item.path].length);
      expect(item.mtime).toBeInstanceOf(Date);
      const bytes = await readAll(await item.open());
      expect(sha256(bytes), item.path).toBe(sha256(sourceFiles[item.path]));
    }
    // open() gives a fresh stream each call
    const first = items.find((i) => i.path === 'plain.txt')!;
    expect(sha256(await readAll(await first.open()))).toBe(sha256(sourceFiles['plain.txt']));
  });

  it('authenticates with a private key file, lists one level when not recursive', async () => {
    const src = await source({
      password: undefined,
      private_key_file: server.privateKeyFile,
      path: join(server.rootDir, 'in'),
      recursive: false,
      name: 'partner_b',
    });
    const items = await listAll(src);
    expect(items.map((i) => i.path).sort()).toEqual(ODD_NAMES.filter((n) => !n.includes('/')).sort());
    expect(items[0].source).toBe('partner_b');
  });

  it('refuses a wrong host key and shows the fingerprint the server presented', async () => {
    const src = await source({
      path: join(server.rootDir, 'in'),
      host_key_sha256: 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU',
    });
    const err = await listAll(src).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SluiceError);
    expect((err as SluiceError).message).toContain(server.hostKeySha256);
    expect((err as SluiceError).message).toContain('not the pinned');
    expect(src.isRetryable!(err)).toBe(false);
  });

  it('refuses an unpinned host, and the insecure flag connects with a loud warning', async () => {
    const unpinned = await source({ path: join(server.rootDir, 'in'), host_key_sha256: undefined });
    const err = (await listAll(unpinned).catch((e: unknown) => e)) as SluiceError;
    expect(err.message).toContain(`host_key_sha256: "${server.hostKeySha256}"`);

    const warnings: string[] = [];
    const log = { ...silentLogger, warn: (a: unknown, b?: string) => warnings.push(String(b ?? a)) };
    const insecure = await source(
      {
        path: join(server.rootDir, 'in'),
        host_key_sha256: undefined,
        insecure_accept_any_host_key: true,
        recursive: false,
      },
      makePluginContext({ log }),
    );
    expect((await listAll(insecure)).length).toBe(6);
    expect(warnings.join('\n')).toMatch(/NOT checked/);
  });

  it('accepts the pin as bare base64 or hex', async () => {
    const bare = server.hostKeySha256.replace(/^SHA256:/, '');
    const hex = Buffer.from(bare, 'base64').toString('hex');
    for (const pin of [bare, hex]) {
      const src = await source({ path: join(server.rootDir, 'in'), host_key_sha256: pin, recursive: false });
      expect((await listAll(src)).length).toBe(6);
    }
  });

  it('reports a wrong password as not retryable, without the password', async () => {
    const src = await source({ path: join(server.rootDir, 'in'), password: 'wrong-password-123' });
    const err = (await listAll(src).catch((e: unknown) => e)) as SluiceError;
    expect(err.message).toMatch(/authentication failed/);
    expect(err.message).not.toContain('wrong-password-123');
    expect(src.isRetryable!(err)).toBe(false);
  });

  it('opens siblings by path and returns null for missing ones', async () => {
    const src = await source({ path: join(server.rootDir, 'in') });
    const stream = await src.openPath!('sub dir/deep/nested file.bin');
    expect(sha256(await readAll(stream!))).toBe(sha256(sourceFiles['sub dir/deep/nested file.bin']));
    expect(await src.openPath!('nope.sig')).toBeNull();
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
    const src = await source({ path: dir });
    const items = await listAll(src);
    const byPath = new Map(items.map((i) => [i.path, i]));
    await src.remove!(byPath.get('a.txt')!);
    await src.move!(byPath.get('x y/b #1.txt')!, join(server.rootDir, 'processed'));
    await src.move!(byPath.get('c.txt')!, join(server.rootDir, 'processed', 'new', 'deeper'));
    expect(listTree(dir)).toEqual([]);
    expect(readFileSync(join(server.rootDir, 'processed', 'x y/b #1.txt'), 'utf8')).toBe('B-new');
    expect(readFileSync(join(server.rootDir, 'processed/new/deeper/c.txt'), 'utf8')).toBe('C');
    // A file already gone is not an error (the tidy-up contract: a redo may find it done).
    await expect(src.remove!(byPath.get('a.txt')!)).resolves.toBeUndefined();
  });

  it('reconnects after the server kills its sessions', async () => {
    const src = await source({ path: join(server.rootDir, 'in'), max_connections: 1 });
    expect((await listAll(src)).length).toBe(8);
    server.killSessions();
    await new Promise((r) => setTimeout(r, 200));
    expect((await listAll(src)).length).toBe(8);
    const stream = await src.openPath!('plain.txt');
    expect(sha256(await readAll(stream!))).toBe(sha256(sourceFiles['plain.txt']));
    // A session killed mid-read fails that read (retryable), and the next one works.
    const item = (await listAll(src)).find((i) => i.path === 'big/blob.bin')!;
    const reading = await item.open();
    await new Promise((r) => reading.once('readable', r));
    expect(sessionPids(server.pid).length).toBe(1);
    server.killSessions();
    const err = await readAll(reading).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SluiceError);
    expect(src.isRetryable!(err)).toBe(true);
    expect(sha256(await readAll(await item.open()))).toBe(sha256(sourceFiles['big/blob.bin']));
  });
});

describe('sftp sink', () => {
  const outDir = () => join(server.rootDir, 'out');

  it('writes small and multi-MiB files under odd names atomically, leaving no temp files', async () => {
    const snk = await sink({ path: outDir() });
    const files: Record<string, Buffer> = {};
    for (const name of ODD_NAMES) files[`w/${name}`] = randomData(2048);
    files['w/large.bin'] = randomData(6 * 1024 * 1024 + 3);
    for (const [dest, data] of Object.entries(files)) {
      const commit = await snk.write(writeRequest(dest, data));
      expect(commit.size).toBe(data.length);
      expect(commit.location).toBe(`sftp://127.0.0.1:${server.port}${join(outDir(), dest)}`);
      expect(sha256(await readAll(await snk.readBack!(dest, new AbortController().signal)))).toBe(
        sha256(data),
      );
    }
    expect(listTree(join(outDir(), 'w'))).toEqual(
      Object.keys(files)
        .map((f) => f.slice(2))
        .sort(),
    );
  });

  it('leaves nothing behind when the body fails mid-stream', async () => {
    const snk = await sink({ path: outDir() });
    const err = await snk
      .write(writeRequest('broken/f.csv', failingBody(randomData(300_000))))
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/integrity/);
    expect(listTree(join(outDir(), 'broken'))).toEqual([]);
  });

  it('honours if_exists overwrite, skip, fail and rename', async () => {
    const dir = 'exists';
    const overwrite = await sink({ path: outDir() });
    await overwrite.write(writeRequest(`${dir}/r.txt`, Buffer.from('one')));
    await overwrite.write(writeRequest(`${dir}/r.txt`, Buffer.from('two')));
    expect(readFileSync(join(outDir(), dir, 'r.txt'), 'utf8')).toBe('two');

    const skip = await sink({ path: outDir(), if_exists: 'skip' });
    const skipped = await skip.write(writeRequest(`${dir}/r.txt`, Buffer.from('three')));
    expect(skipped.skipped).toBe(true);
    expect(readFileSync(join(outDir(), dir, 'r.txt'), 'utf8')).toBe('two');

    const fail = await sink({ path: outDir(), if_exists: 'fail' });
    const err = await fail.write(writeRequest(`${dir}/r.txt`, Buffer.from('four'))).catch((e: unknown) => e);
    expect((err as SluiceError).code).toBe('SLUICE_E_EXISTS');
    expect(fail.isRetryable!(err)).toBe(false);
    const same = await fail.write(writeRequest(`${dir}/r.txt`, Buffer.from('two')));
    expect(same.size).toBe(3);
    expect(readFileSync(join(outDir(), dir, 'r.txt'), 'utf8')).toBe('two');

    const rename = await sink({ path: outDir(), if_exists: 'rename' });
    const first = await rename.write(writeRequest(`${dir}/r.txt`, Buffer.from('five')));
    const second = await rename.write(writeRequest(`${dir}/r.txt`, Buffer.from('six')));
    expect(first.location).toMatch(/r \(1\)\.txt$/);
    expect(second.location).toMatch(/r \(2\)\.txt$/);
    expect(listTree(join(outDir(), dir))).toEqual(['r (1).txt', 'r (2).txt', 'r.txt']);
    expect(readFileSync(join(outDir(), dir, 'r (2).txt'), 'utf8')).toBe('six');
  });

  it('runs 8 uploads at once over a pool of 3 sessions', async () => {
    // Close earlier instances so the server's session count is this sink's alone.
    await Promise.allSettled(opened.splice(0).map((o) => o.close?.()));
    await new Promise((r) => setTimeout(r, 300));
    const snk = await sink({ path: outDir(), max_connections: 3 });
    const files = Array.from(
      { length: 8 },
      (_, i) => [`pool/f${i}.bin`, randomData(512 * 1024 + i)] as const,
    );
    let maxSessions = 0;
    const sampler = setInterval(() => {
      maxSessions = Math.max(maxSessions, sessionPids(server.pid).length);
    }, 5);
    try {
      const commits = await Promise.all(files.map(([dest, data]) => snk.write(writeRequest(dest, data))));
      expect(commits.map((c) => c.size)).toEqual(files.map(([, d]) => d.length));
    } finally {
      clearInterval(sampler);
    }
    for (const [dest, data] of files) expect(sha256(readFileSync(join(outDir(), dest)))).toBe(sha256(data));
    expect(maxSessions).toBeGreaterThanOrEqual(2);
    expect(maxSessions).toBeLessThanOrEqual(3);
  });

  it('writes again after its sessions were killed, and removes committed files', async () => {
    const snk = await sink({ path: outDir(), max_connections: 2 });
    await snk.write(writeRequest('again/a.txt', Buffer.from('a')));
    server.killSessions();
    await new Promise((r) => setTimeout(r, 200));
    const commit = await snk.write(writeRequest('again/b.txt', Buffer.from('bb')));
    expect(commit.size).toBe(2);
    await snk.remove!('again/a.txt');
    expect(existsSync(join(outDir(), 'again/a.txt'))).toBe(false);
    writeFileSync(join(outDir(), 'again/c.txt'), 'c');
  });
});
