/** s3 source and sink against a real s3rver (child process, see test/servers/s3rver.ts). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import type { Item, SinkInstance, SourceInstance } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { s3Sink } from '../../plugins/s3/sink.js';
import { s3Source } from '../../plugins/s3/source.js';
import { makePluginContext } from '../helpers/context.js';
import {
  chunksOf,
  collect,
  configure,
  failingBody,
  ODD_NAMES,
  patternBytes,
  readAll,
  sha256,
  writeTo,
} from '../helpers/object-store.js';
import { makeWorkspace } from '../helpers/workspace.js';
import { type S3rverHandle, s3Client, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-e2e';
const MiB = 1024 * 1024;
let server: S3rverHandle;
let client: S3Client;

beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket(BUCKET);
  client = s3Client(server);
});

afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

function connection() {
  return {
    bucket: BUCKET,
    endpoint: server.endpoint,
    access_key_id: server.credentials.accessKeyId,
    secret_access_key: server.credentials.secretAccessKey,
  };
}

async function source(extra: Record<string, unknown>): Promise<SourceInstance> {
  return s3Source.create(configure(s3Source, { ...connection(), ...extra }), makePluginContext());
}

async function sink(extra: Record<string, unknown> = {}): Promise<SinkInstance> {
  return s3Sink.create(configure(s3Sink, { ...connection(), ...extra }), makePluginContext());
}

async function put(key: string, body: string | Buffer): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
}

async function get(key: string): Promise<Buffer> {
  const res = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return readAll(res.Body as Readable);
}

async function exists(key: string): Promise<boolean> {
  try {
    await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    return true;
  } catch {
    return false;
  }
}

async function keysUnder(prefix: string): Promise<string[]> {
  const res = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (res.Contents ?? []).map((o) => o.Key!).sort();
}

describe('s3 source', () => {
  beforeAll(async () => {
    for (let i = 0; i < 7; i++) await put(`list/flat-${i}.txt`, `flat ${i}`);
    await put('list/sub/deep-1.txt', 'deep 1');
    await put('list/sub/deeper/deep-2.txt', 'deep 2');
    await put('list/sub/', ''); // a console-made folder marker
    await put('other/one.txt', 'one');
    await put('other/one.txt.sig', 'signature');
    for (const name of ODD_NAMES) await put(`odd/${name}`, `content of ${name}`);
  });

  it('lists every key under the prefix across pages (recursive)', async () => {
    await server.clearRequests();
    const items = await collect(
      (await source({ prefix: 'list/', page_size: 2 })).list(new AbortController().signal),
    );
    expect(items.map((i) => i.path).sort()).toEqual([
      'flat-0.txt',
      'flat-1.txt',
      'flat-2.txt',
      'flat-3.txt',
      'flat-4.txt',
      'flat-5.txt',
      'flat-6.txt',
      'sub/deep-1.txt',
      'sub/deeper/deep-2.txt',
    ]);
    const listCalls = (await server.requests()).filter(
      (r) => r.method === 'GET' && r.url.includes('list-type=2'),
    );
    expect(listCalls.length).toBe(5); // 10 keys (marker included) at 2 per page
    const first = items.find((i) => i.path === 'flat-0.txt')!;
    expect(first.size).toBe(6);
    expect(first.etag).toMatch(/^[0-9a-f]{32}$/);
    expect(first.mtime).toBeInstanceOf(Date);
    expect(first.source).toBe('s3');
    expect(first.origin).toEqual({
      kind: 's3',
      endpoint: server.endpoint,
      location: { bucket: BUCKET, key: 'list/flat-0.txt' },
    });
  });

  it('lists only keys directly under the prefix when recursive is false', async () => {
    const items = await collect(
      (await source({ prefix: 'list', recursive: false, page_size: 3 })).list(new AbortController().signal),
    );
    expect(items.map((i) => i.path).sort()).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `flat-${i}.txt`));
  });

  it('lists several prefixes in order, each item relative to its own prefix, overlaps once', async () => {
    const src = await source({ prefixes: ['other/', 'list/sub/', 'list/'], name: 'multi' });
    const items = await collect(src.list(new AbortController().signal));
    const paths = items.map((i) => i.path);
    expect(paths.slice(0, 4)).toEqual(['one.txt', 'one.txt.sig', 'deep-1.txt', 'deeper/deep-2.txt']);
    expect(paths.filter((p) => p.includes('deep'))).toEqual(['deep-1.txt', 'deeper/deep-2.txt']);
    expect(paths).toHaveLength(4 + 7);
    expect(items[0].source).toBe('multi');
  });

  it('opens a fresh stream each call, and companions by path', async () => {
    const src = await source({ prefix: 'other/' });
    const [one] = (await collect(src.list(new AbortController().signal))).filter((i) => i.path === 'one.txt');
    expect((await readAll(await one.open())).toString()).toBe('one');
    expect((await readAll(await one.open())).toString()).toBe('one');
    const sig = await src.openPath!('one.txt.sig');
    expect((await readAll(sig!)).toString()).toBe('signature');
    expect(await src.openPath!('missing.sig')).toBeNull();
  });

  it('lists, reads, moves and deletes keys with spaces, quotes, %, +, #, & and non-ASCII', async () => {
    const src = await source({ prefix: 'odd/' });
    const items = await collect(src.list(new AbortController().signal));
    expect(items.map((i) => i.path).sort()).toEqual([...ODD_NAMES].sort());
    for (const item of items) {
      expect((await readAll(await item.open())).toString()).toBe(`content of ${item.path}`);
    }
    for (const item of items) await src.move!(item, 'odd-done/');
    expect(await keysUnder('odd/')).toEqual([]);
    for (const name of ODD_NAMES)
      expect((await get(`odd-done/${name}`)).toString()).toBe(`content of ${name}`);
    const done = await source({ prefix: 'odd-done/' });
    for (const item of await collect(done.list(new AbortController().signal))) await done.remove!(item);
    expect(await keysUnder('odd-done/')).toEqual([]);
  });

  it('rejects prefix together with prefixes as a config error', async () => {
    await expect(source({ prefix: 'a/', prefixes: ['b/'] })).rejects.toMatchObject({
      code: 'SLUICE_E_CONFIG',
      context: { jsonPath: '/prefixes' },
    });
  });

  it('reports a missing bucket as a non-retryable source error', async () => {
    const src = await s3Source.create(
      configure(s3Source, { ...connection(), bucket: 'no-such-bucket' }),
      makePluginContext(),
    );
    const err = await collect(src.list(new AbortController().signal)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SluiceError);
    expect((err as SluiceError).code).toBe('SLUICE_E_SOURCE');
    expect((err as SluiceError).message).toContain('NoSuchBucket');
    expect(src.isRetryable!(err)).toBe(false);
  });
});

describe('s3 sink', () => {
  it('writes a small object and reads it back', async () => {
    const target = await sink({ prefix: 'out' });
    const commit = await writeTo(target, 'small/hello.txt', Buffer.from('hello'));
    expect(commit).toEqual({ location: `s3://${BUCKET}/out/small/hello.txt`, size: 5 });
    expect((await get('out/small/hello.txt')).toString()).toBe('hello');
    expect(
      (await readAll(await target.readBack!('small/hello.txt', new AbortController().signal))).toString(),
    ).toBe('hello');
  });

  it('verifies a single-part upload by its ETag (the MD5 of the bytes), else with a HeadObject', async () => {
    const target = await sink({ prefix: 'etag', part_size: '5MiB' });
    const heads = async () => (await server.requests()).filter((r) => r.method === 'HEAD').length;
    await server.clearRequests();
    // Size known and below part_size: one PutObject whose ETag is checked, no HeadObject.
    expect(await writeTo(target, 'known.txt', Buffer.from('hello etag'), { size: 10 })).toEqual({
      location: `s3://${BUCKET}/etag/known.txt`,
      size: 10,
    });
    expect(await heads()).toBe(0);
    // Size unknown: the stored size is read back with a HeadObject.
    expect((await writeTo(target, 'unknown.txt', Buffer.from('hello etag'))).size).toBe(10);
    expect(await heads()).toBe(1);
    // Multipart (its ETag is not the MD5 of the bytes): HeadObject.
    const data = patternBytes(6 * MiB, 7);
    expect(
      (await writeTo(target, 'multi.bin', Readable.from(chunksOf(data, 256 * 1024)), { size: data.length }))
        .size,
    ).toBe(data.length);
    expect(await heads()).toBe(2);
  });

  it('writes a multi-part object whose bytes read back identical', async () => {
    const data = patternBytes(12 * MiB + 123, 42);
    await server.clearRequests();
    const target = await sink({ prefix: 'out', part_size: '5MiB', queue_size: 2 });
    const commit = await writeTo(target, 'big/data.bin', Readable.from(chunksOf(data, 256 * 1024)));
    expect(commit.size).toBe(data.length);
    const back = await readAll(await target.readBack!('big/data.bin', new AbortController().signal));
    expect(sha256(back)).toBe(sha256(data));
    const parts = (await server.requests()).filter(
      (r) => r.method === 'PUT' && r.url.includes('partNumber='),
    );
    expect(parts).toHaveLength(3);
  });

  it('leaves no object when the body fails mid-upload, and rejects with the body error', async () => {
    await server.clearRequests();
    const target = await sink({ part_size: '5MiB' });
    const boom = new Error('integrity check failed at the end');
    await expect(writeTo(target, 'broken/multi.bin', failingBody(11 * MiB, boom))).rejects.toBe(boom);
    await expect(writeTo(target, 'broken/single.bin', failingBody(1 * MiB, boom))).rejects.toBe(boom);
    expect(await exists('broken/multi.bin')).toBe(false);
    expect(await exists('broken/single.bin')).toBe(false);
    const requests = await server.requests();
    // The multipart upload was started, parts sent, then aborted (s3rver itself does not implement
    // AbortMultipartUpload, nor ListMultipartUploads to check; real S3 does).
    expect(requests.some((r) => r.method === 'POST' && r.url.includes('broken/multi.bin?uploads'))).toBe(
      true,
    );
    expect(requests.some((r) => r.method === 'DELETE' && r.url.includes('broken/multi.bin?uploadId='))).toBe(
      true,
    );
    expect(requests.some((r) => r.method === 'POST' && r.url.includes('broken/multi.bin?uploadId='))).toBe(
      false,
    );
    expect(requests.some((r) => r.url.includes('broken/single.bin') && r.method !== 'HEAD')).toBe(false);
  });

  it('if_exists: overwrite replaces, skip keeps, rename numbers', async () => {
    await put('exists/a.txt', 'old');
    const overwrite = await sink({ prefix: 'exists', if_exists: 'overwrite' });
    await writeTo(overwrite, 'a.txt', Buffer.from('new!'));
    expect((await get('exists/a.txt')).toString()).toBe('new!');

    const skip = await sink({ prefix: 'exists', if_exists: 'skip' });
    const skipped = await writeTo(skip, 'a.txt', Buffer.from('ignored'));
    expect(skipped).toEqual({ location: `s3://${BUCKET}/exists/a.txt`, size: 4, skipped: true });
    expect((await get('exists/a.txt')).toString()).toBe('new!');

    const rename = await sink({ prefix: 'exists', if_exists: 'rename' });
    const first = await writeTo(rename, 'a.txt', Buffer.from('one'));
    const second = await writeTo(rename, 'a.txt', Buffer.from('two'));
    expect(first.location).toBe(`s3://${BUCKET}/exists/a (1).txt`);
    expect(second.location).toBe(`s3://${BUCKET}/exists/a (2).txt`);
    expect((await get('exists/a (2).txt')).toString()).toBe('two');
  });

  it('if_exists: fail accepts an earlier copy of the same bytes and refuses different ones', async () => {
    const fail = await sink({ prefix: 'fail', if_exists: 'fail' });
    const data = Buffer.from('the same bytes');
    await writeTo(fail, 'x.txt', data, { sha256: sha256(data) });
    const again = await writeTo(fail, 'x.txt', data);
    expect(again).toMatchObject({ size: data.length, sha256: sha256(data), skipped: true });
    // An object written by someone else (no sluice-sha256 metadata) is compared by reading it.
    await put('fail/foreign.txt', data);
    expect(await writeTo(fail, 'foreign.txt', data)).toMatchObject({ sha256: sha256(data), skipped: true });
    const err = await writeTo(fail, 'x.txt', Buffer.from('different bytes')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SLUICE_E_EXISTS' });
    expect(fail.isRetryable!(err)).toBe(false);
    expect((await get('fail/x.txt')).toString()).toBe('the same bytes');
  });

  it('stores metadata templates, computing the sha256 first when the runtime does not know it', async () => {
    const data = patternBytes(300_000, 9);
    const target = await sink({
      prefix: 'meta',
      metadata: { 'source-sha256': '{sha256}', 'uploaded-at': '{now:%Y-%m-%dT%H:%M:%SZ}', file: '{name}' },
    });
    const before = Date.now();
    await writeTo(target, 'unknown.bin', data);
    await writeTo(target, 'known.bin', data, { sha256: sha256(data) });
    for (const name of ['unknown.bin', 'known.bin']) {
      const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `meta/${name}` }));
      expect(head.Metadata).toMatchObject({
        'source-sha256': sha256(data),
        'sluice-sha256': sha256(data),
        file: name,
      });
      const uploadedAt = Date.parse(head.Metadata!['uploaded-at']);
      expect(head.Metadata!['uploaded-at']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect(uploadedAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
      expect(sha256(await get(`meta/${name}`))).toBe(sha256(data));
    }
  });

  it('reports a bad metadata template as a config error at its JSON path', async () => {
    await expect(sink({ metadata: { team: '{nope}' } })).rejects.toMatchObject({
      code: 'SLUICE_E_CONFIG',
      context: { jsonPath: '/metadata/team' },
    });
  });

  it('rejects metadata names S3 cannot carry', () => {
    expect(() => configure(s3Sink, { ...connection(), metadata: { 'a b': 'x' } })).toThrow(/metadata/);
  });

  it('removes a committed object', async () => {
    const target = await sink({ prefix: 'rm' });
    await writeTo(target, 'gone.txt', Buffer.from('bye'));
    await target.remove!('gone.txt');
    expect(await exists('rm/gone.txt')).toBe(false);
  });

  it('rejects a part_size below the S3 minimum', async () => {
    await expect(sink({ part_size: '1MiB' })).rejects.toMatchObject({
      code: 'SLUICE_E_CONFIG',
      context: { jsonPath: '/part_size' },
    });
  });
});

describe('s3 → s3 on the same endpoint', () => {
  it('moves objects into date folders with server-side copies only (no GetObject)', async () => {
    const names = [
      'CHARGINGCDR_A-20240131-07.dat',
      'CHARGINGCDR_B-20240201-23.dat',
      'CHARGINGCDR_ü #1+2%.dat',
    ];
    for (const name of names) await put(`incoming/${name}`, `cdr ${name}`);
    await put('incoming/nested/ignored.dat', 'not listed: recursive is false');
    const src = await source({ prefix: 'incoming/', recursive: false, after_success: 'delete' });
    // preserve_mtime reads the stored mtime back with a HeadObject (objstore-mtime.test.ts);
    // without it, nothing but the copy itself is needed.
    const target = await sink({ preserve_mtime: false });
    await server.clearRequests();

    const items = await collect(src.list(new AbortController().signal));
    expect(items).toHaveLength(3);
    for (const item of items) {
      const commit = await target.copy!(
        item,
        `segregated/2024/01/31/07/${item.path}`,
        new AbortController().signal,
      );
      expect(commit).toEqual({
        location: `s3://${BUCKET}/segregated/2024/01/31/07/${item.path}`,
        size: item.size,
      });
      await src.remove!(item);
    }

    const requests = await server.requests();
    const objectGets = requests.filter((r) => r.method === 'GET' && !r.url.includes('list-type=2'));
    expect(objectGets).toEqual([]);
    // 3 copies, plus one retry in s3rver's decodeURI spelling for the key with `#` and `+`.
    expect(requests.filter((r) => r.copy)).toHaveLength(4);
    // Each copy reported the listed ETag (MD5 of the bytes): no HeadObject to check its size.
    // The only HeadObjects are remove()'s version checks of the sources (s3rver ignores If-Match).
    const heads = requests.filter((r) => r.method === 'HEAD');
    expect(heads.filter((r) => !r.url.startsWith(`/${BUCKET}/incoming/`))).toEqual([]);
    expect(heads).toHaveLength(3);
    for (const name of names) {
      expect((await get(`segregated/2024/01/31/07/${name}`)).toString()).toBe(`cdr ${name}`);
      expect(await exists(`incoming/${name}`)).toBe(false);
    }
    expect(await exists('incoming/nested/ignored.dat')).toBe(true);
  });

  it('checks a copy with a HeadObject when the ETag cannot vouch for the bytes (multipart source)', async () => {
    await put('mp/part.dat', 'twelve bytes');
    const src = await source({ prefix: 'mp/' });
    // Without preserve_mtime: the HeadObject counted below is then the size check alone.
    const target = await sink({ preserve_mtime: false });
    const [item] = await collect(src.list(new AbortController().signal));
    await server.clearRequests();
    // A multipart object's ETag ("<md5 of part md5s>-N") is not the MD5 of its bytes.
    const commit = await target.copy!(
      { ...item, etag: `${item.etag}-2`, size: 999 },
      'mp-copy/part.dat',
      new AbortController().signal,
    );
    expect(commit).toEqual({ location: `s3://${BUCKET}/mp-copy/part.dat`, size: 12 });
    expect((await server.requests()).filter((r) => r.method === 'HEAD')).toHaveLength(1);
  });

  it('declines to copy items from another endpoint or with changed bytes', async () => {
    const target = await sink();
    const foreign = {
      source: 'x',
      path: 'a',
      checksums: {},
      meta: {},
      origin: { kind: 's3', endpoint: 'aws', location: { bucket: BUCKET, key: 'a' } },
      open: async () => Readable.from([]),
    } as Item;
    expect(await target.copy!(foreign, 'a', new AbortController().signal)).toBeNull();
    expect(
      await target.copy!({ ...foreign, origin: undefined }, 'a', new AbortController().signal),
    ).toBeNull();
  });

  it('refuses to copy an object onto itself', async () => {
    await put('self/x.txt', 'x');
    const [item] = await collect((await source({ prefix: 'self/' })).list(new AbortController().signal));
    const target = await sink({ prefix: 'self' });
    await expect(target.copy!(item, 'x.txt', new AbortController().signal)).rejects.toMatchObject({
      code: 'SLUICE_E_DESTINATION',
    });
  });
});

describe('s3 pipelines through the runtime', () => {
  it('runs the cdr-s3-segregation example: objects reach hourly folders by server-side copy only', async () => {
    const ws = makeWorkspace();
    try {
      const names = ['CHARGINGCDR_X-20240131-07.dat', 'CHARGINGCDR_Y-2024020123_z.dat', 'OTHER_no_date.dat'];
      for (const name of names) await put(`incoming/${name}`, `payload of ${name}`);
      // The shared example, pointed at s3rver: endpoint and credentials after each `bucket:` line.
      const example = readFileSync(
        join(import.meta.dirname, '../../../shared/examples/cdr-s3-segregation.yaml'),
        'utf8',
      );
      const yaml = example.replace(/^(\s+)bucket: \$\{CDR_BUCKET\}$/gm, (line, indent: string) =>
        [
          line,
          `${indent}endpoint: \${S3_ENDPOINT}`,
          `${indent}access_key_id: S3RVER`,
          `${indent}secret_access_key: S3RVER`,
        ].join('\n'),
      );
      expect(yaml.match(/endpoint:/g)).toHaveLength(2);
      const file = ws.pipeline(yaml, 'cdr.yaml');
      await server.clearRequests();
      const summary = await runPipelineFile(file, {
        env: { ...process.env, CDR_BUCKET: BUCKET, S3_ENDPOINT: server.endpoint },
      });
      expect(summary).toMatchObject({ ok: 3, failed: 0, filesWritten: 3 });
      const requests = await server.requests();
      expect(requests.filter((r) => r.method === 'GET' && !r.url.includes('list-type=2'))).toEqual([]);
      expect(requests.filter((r) => r.copy)).toHaveLength(3);
      expect((await get('segregated/2024/01/31/07/CHARGINGCDR_X-20240131-07.dat')).toString()).toBe(
        'payload of CHARGINGCDR_X-20240131-07.dat',
      );
      expect(await exists('segregated/2024/02/01/23/CHARGINGCDR_Y-2024020123_z.dat')).toBe(true);
      expect(await exists('errors/OTHER_no_date.dat')).toBe(true);
      for (const name of names) expect(await exists(`incoming/${name}`)).toBe(false);
    } finally {
      ws.cleanup();
    }
  });

  it('uploads local files with checksum metadata and sha256 read-back verification', async () => {
    const ws = makeWorkspace();
    try {
      const data = patternBytes(2 * MiB + 5, 3);
      ws.write('results/2024-05.bin', data);
      const file = ws.pipeline(
        [
          'name: results-up',
          'source:',
          '  local: { path: ./results }',
          'sink:',
          '  s3:',
          `    bucket: ${BUCKET}`,
          `    endpoint: ${server.endpoint}`,
          '    access_key_id: S3RVER',
          '    secret_access_key: S3RVER',
          '    prefix: processed-data/',
          '    metadata:',
          '      source-sha256: "{sha256}"',
          '    verify: sha256',
        ].join('\n'),
      );
      await server.clearRequests();
      expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 0 });
      const head = await client.send(
        new HeadObjectCommand({ Bucket: BUCKET, Key: 'processed-data/2024-05.bin' }),
      );
      expect(head.Metadata?.['source-sha256']).toBe(sha256(data));
      const reads = (await server.requests()).filter(
        (r) => r.method === 'GET' && r.url.includes('2024-05.bin'),
      );
      expect(reads).toHaveLength(1); // the read-back
    } finally {
      ws.cleanup();
    }
  });
});
