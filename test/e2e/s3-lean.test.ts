/**
 * The s3 connector's lean requests (plugins/s3/lean-head.ts) against s3rver: a small object's
 * PutObject, a server-side copy (and its source's HeadObject) and a tidy-up's HeadObject go
 * SigV4-signed straight over HTTP, not through the SDK; the SDK keeps what the lean path does not do as it would (metadata that is not printable
 * ASCII) and everything with `lean_requests: false`. Told apart by the user-agent s3rver saw.
 * (That the signatures are the SDK's own is proven in plugins/s3/lean-head.test.ts: s3rver does
 * not check them.)
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MTIME_METADATA } from '../../plugins/object-store/mtime.js';
import {
  connectS3,
  copyObject,
  isS3Retryable,
  S3_SHA256_METADATA,
  type S3Connection,
  s3ObjectAccess,
  s3Reason,
} from '../../plugins/s3/client.js';
import { PartBufferPool, uploadObject } from '../../plugins/s3/multipart.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-lean';
let server: S3rverHandle;
const conns: S3Connection[] = [];

const connect = async (extra: { lean_requests?: boolean; bucket?: string } = {}) => {
  const conn = await connectS3({
    bucket: extra.bucket ?? BUCKET,
    endpoint: server.endpoint,
    access_key_id: server.credentials.accessKeyId,
    secret_access_key: server.credentials.secretAccessKey,
    ...(extra.lean_requests !== undefined ? { lean_requests: extra.lean_requests } : {}),
  });
  conns.push(conn);
  return conn;
};

beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket(BUCKET);
});

afterAll(async () => {
  for (const conn of conns) conn.client.destroy();
  await server?.stop();
});

async function put(conn: S3Connection, key: string, body: Buffer, metadata: Record<string, string> = {}) {
  await server.clearRequests();
  const etag = await uploadObject(conn, Readable.from([body]), {
    key,
    metadata,
    exclusive: false,
    size: body.length,
    queueSize: 2,
    pool: new PartBufferPool(5 * 1024 * 1024, 3),
    signal: new AbortController().signal,
  });
  const puts = (await server.requests()).filter((r) => r.method === 'PUT');
  return { etag, puts };
}

const stored = (conn: S3Connection, key: string) =>
  conn.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));

describe('s3 lean requests', () => {
  it('a small object is one PutObject sent without the SDK, with its metadata and its MD5 as ETag', async () => {
    const conn = await connect();
    const body = Buffer.from('id,amount\n1,2\n');
    const { etag, puts } = await put(conn, 'odd/a  file (1)+ü.csv', body, {
      'Sluice-Mtime': '2026-01-02T03:04:05Z',
    });
    expect(puts).toHaveLength(1);
    expect(puts[0]).toMatchObject({ sdk: false });
    expect(etag).toBe(createHash('md5').update(body).digest('hex'));
    const head = await stored(conn, 'odd/a  file (1)+ü.csv');
    expect(head.ContentLength).toBe(body.length);
    expect(head.ETag?.replace(/"/g, '')).toBe(etag);
    expect(head.Metadata).toEqual({ 'sluice-mtime': '2026-01-02T03:04:05Z' });
  });

  it('metadata that is not printable ASCII, and every request with lean_requests: false, go through the SDK', async () => {
    const lean = await connect();
    const odd = await put(lean, 'meta/ü.csv', Buffer.from('x'), { note: 'naïve' });
    expect(odd.puts.map((r) => r.sdk)).toEqual([true]);
    const sdkOnly = await connect({ lean_requests: false });
    expect(sdkOnly.leanHead).toBeUndefined();
    const plain = await put(sdkOnly, 'meta/plain.csv', Buffer.from('x'), { note: 'plain' });
    expect(plain.puts.map((r) => r.sdk)).toEqual([true]);
  });

  it("a service's refusal is the SDK's error: its code, its message, not retried", async () => {
    const conn = await connect({ bucket: 'no-such-bucket' });
    const failed = await put(conn, 'a.csv', Buffer.from('x')).catch((err: unknown) => err);
    expect(failed).toMatchObject({ name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } });
    expect(s3Reason(failed)).toMatch(/NoSuchBucket/);
    expect(isS3Retryable(failed)).toBe(false);
  });

  it('a server-side copy is lean: a REPLACE copy keeps the source content headers and takes the new metadata', async () => {
    for (const lean of [true, false]) {
      const conn = await connect({ lean_requests: lean });
      await conn.client.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: `copy-${lean}/from (1).csv`,
          Body: 'a,b\n',
          ContentType: 'text/csv',
          Metadata: { origin: 'partner' },
        }),
      );
      await server.clearRequests();
      const from = { bucket: BUCKET, key: `copy-${lean}/from (1).csv` };
      const plain = await copyObject(conn, from, `copy-${lean}/plain.csv`);
      const replaced = await copyObject(conn, from, `copy-${lean}/replaced.csv`, {
        metadata: { 'sluice-mtime': '2026-01-02T03:04:05Z' },
      });
      const sent = (await server.requests()).map((r) => [r.method, r.copy, r.sdk]);
      // The plain copy; the REPLACE copy's HeadObject of its source, then the copy.
      expect(sent).toEqual([
        ['PUT', true, !lean],
        ['HEAD', false, !lean],
        ['PUT', true, !lean],
      ]);
      const source = await stored(conn, from.key);
      expect(plain).toBe(source.ETag?.replace(/"/g, ''));
      expect(replaced).toBe(source.ETag?.replace(/"/g, ''));
      expect(await stored(conn, `copy-${lean}/plain.csv`)).toMatchObject({
        ContentType: 'text/csv',
        Metadata: { origin: 'partner' },
      });
      expect(await stored(conn, `copy-${lean}/replaced.csv`)).toMatchObject({
        ContentType: 'text/csv',
        Metadata: { origin: 'partner', 'sluice-mtime': '2026-01-02T03:04:05Z' },
      });
      const missing = await copyObject(conn, { bucket: BUCKET, key: 'copy/none.csv' }, 'copy/x.csv').catch(
        (err: unknown) => err,
      );
      expect(missing).toMatchObject({ name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } });
    }
  });

  it("the sink's read-back of what it stored is lean and reads the same as the SDK's", async () => {
    const seen: unknown[] = [];
    for (const lean of [true, false]) {
      const conn = await connect({ lean_requests: lean });
      await put(conn, 'stat/a.csv', Buffer.from('12345'), {
        [S3_SHA256_METADATA]: 'ab'.repeat(32),
        [MTIME_METADATA]: '2026-01-02T03:04:05.678Z',
      });
      await server.clearRequests();
      seen.push(await s3ObjectAccess(conn).stat('stat/a.csv'));
      expect(await s3ObjectAccess(conn).stat('stat/none.csv')).toBeNull();
      expect((await server.requests()).map((r) => [r.method, r.sdk])).toEqual([
        ['HEAD', !lean],
        ['HEAD', !lean],
      ]);
    }
    expect(seen[0]).toEqual({
      size: 5,
      md5: createHash('md5').update('12345').digest('hex'),
      sha256: 'ab'.repeat(32),
      mtime: new Date('2026-01-02T03:04:05.678Z'),
    });
    expect(seen[1]).toEqual(seen[0]);
  });

  it('a HeadObject of the tidy-up is lean too: size and ETag, null when there is none', async () => {
    const conn = await connect();
    const { etag } = await put(conn, 'head/a.csv', Buffer.from('12345'));
    await server.clearRequests();
    expect(await conn.leanHead!('head/a.csv')).toEqual({ size: 5, etag });
    expect(await conn.leanHead!('head/none.csv')).toBeNull();
    expect((await server.requests()).map((r) => [r.method, r.sdk])).toEqual([
      ['HEAD', false],
      ['HEAD', false],
    ]);
  });
});

/**
 * A server that answers as a misbehaving S3-compatible store would: `answer` decides per request.
 * (s3rver cannot be made to do these.)
 */
async function partnerServer(answer: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    seen.push(req);
    req.resume();
    req.once('end', () => answer(req, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const conn = await connectS3({
    bucket: 'b',
    endpoint: `http://127.0.0.1:${port}`,
    access_key_id: 'AKID',
    secret_access_key: 'SECRET',
  });
  conns.push(conn);
  return { conn, seen, close: () => new Promise((r) => server.close(r)) };
}

describe('s3 lean requests against a misbehaving server', () => {
  it('a copy answered 200 with no result, or with an error after keep-alive spaces, is an error, never a copy', async () => {
    for (const body of ['', `${' '.repeat(70 * 1024)}<Error><Code>InternalError</Code></Error>`]) {
      const partner = await partnerServer((_req, res) => res.writeHead(200).end(body));
      try {
        const failed = await copyObject(partner.conn, { bucket: 'b', key: 'a.csv' }, 'c.csv').catch(
          (err: unknown) => err,
        );
        expect(failed).toMatchObject({ name: 'InternalError' });
        expect(isS3Retryable(failed)).toBe(true);
        expect(partner.seen.length).toBe(3); // the SDK client's maxAttempts
      } finally {
        await partner.close();
      }
    }
  });

  it("a host clock an hour behind is corrected from the server's Date, as the SDK does", async () => {
    const ahead = 3600_000;
    const partner = await partnerServer((req, res) => {
      const sent = String(req.headers['x-amz-date']).replace(
        /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/,
        '$1-$2-$3T$4:$5:$6Z',
      );
      const serverNow = Date.now() + ahead;
      res.setHeader('date', new Date(serverNow).toUTCString());
      if (Math.abs(Date.parse(sent) - serverNow) > 15 * 60_000) {
        res.writeHead(403).end('<Error><Code>RequestTimeTooSkewed</Code></Error>');
      } else res.writeHead(200, { etag: '"0123456789abcdef0123456789abcdef"' }).end();
    });
    try {
      const etag = await partner.conn.leanPut!({ key: 'a.html', body: Buffer.from('<p>x</p>') });
      expect(etag).toBe('0123456789abcdef0123456789abcdef');
      expect(partner.seen.map((r) => r.headers['content-type'])).toEqual([
        'application/octet-stream',
        'application/octet-stream',
      ]);
    } finally {
      await partner.close();
    }
  });
});
