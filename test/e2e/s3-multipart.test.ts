/**
 * The s3 sink's own multipart upload (plugins/s3/multipart.ts) against s3rver: part boundaries,
 * the single-PutObject cases, and the bound on memory — part buffers are reused, so an upload
 * of many parts never holds more than `queue_size` + 1 of them (parts sending, one filling).
 */
import { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectS3, type S3Connection } from '../../plugins/s3/client.js';
import { PartBufferPool, uploadObject } from '../../plugins/s3/multipart.js';
import { chunksOf, patternBytes, readAll, sha256 } from '../helpers/object-store.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-multipart';
const MiB = 1024 * 1024;
const PART = 5 * MiB;
let server: S3rverHandle;
let conn: S3Connection;

beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket(BUCKET);
  conn = await connectS3({
    bucket: BUCKET,
    endpoint: server.endpoint,
    access_key_id: server.credentials.accessKeyId,
    secret_access_key: server.credentials.secretAccessKey,
  });
});

afterAll(async () => {
  conn?.client.destroy();
  await server?.stop();
});

async function upload(key: string, data: Buffer, queueSize: number, size?: number) {
  const pool = new PartBufferPool(PART, queueSize + 1);
  await server.clearRequests();
  const etag = await uploadObject(conn, Readable.from(chunksOf(data, 64 * 1024)), {
    key,
    metadata: { origin: 'test' },
    exclusive: false,
    size,
    queueSize,
    pool,
    signal: new AbortController().signal,
  });
  const requests = await server.requests();
  const res = await conn.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return {
    etag,
    pool,
    stored: await readAll(res.Body as Readable),
    metadata: res.Metadata,
    parts: requests.filter((r) => r.method === 'PUT' && r.url.includes('partNumber=')).length,
    puts: requests.filter((r) => r.method === 'PUT' && !r.url.includes('partNumber=')).length,
  };
}

describe('s3 multipart upload', () => {
  it('uploads many parts through at most queue_size + 1 reused part buffers', async () => {
    const data = patternBytes(6 * PART + 12345, 3);
    for (const size of [undefined, data.length]) {
      const r = await upload(`many-${size ?? 'unknown'}.bin`, data, 2, size);
      expect(sha256(r.stored)).toBe(sha256(data));
      expect(r.metadata).toEqual({ origin: 'test' });
      expect(r.parts).toBe(7);
      expect(r.puts).toBe(0);
      // 7 parts sent, never more than 3 buffers at once (two sending, one filling).
      expect(r.pool.peak).toBeLessThanOrEqual(3);
    }
  });

  it('sends a body of exactly one part as one PutObject, and two parts as two (no empty third)', async () => {
    const one = patternBytes(PART, 5);
    const single = await upload('one-part.bin', one, 4);
    expect(single.stored.equals(one)).toBe(true);
    expect([single.parts, single.puts]).toEqual([0, 1]);
    expect(single.pool.peak).toBe(0);

    const two = patternBytes(2 * PART, 6);
    const multi = await upload('two-parts.bin', two, 4, two.length);
    expect(multi.stored.equals(two)).toBe(true);
    expect([multi.parts, multi.puts]).toEqual([2, 0]);
  });

  it('uploads an empty body as an empty object', async () => {
    const r = await upload('empty.bin', Buffer.alloc(0), 4, 0);
    expect(r.stored.length).toBe(0);
    expect([r.parts, r.puts]).toEqual([0, 1]);
  });
});
