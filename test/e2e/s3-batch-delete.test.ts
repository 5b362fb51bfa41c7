/**
 * The s3 source's tidy-up deletes go out batched (DeleteObjects) against a real s3rver: fewer
 * requests, each key still checked and settled on its own, nothing left hanging at close.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SourceInstance } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import {
  connectS3,
  deleteObjectVersion,
  deleteTransport,
  type S3Connection,
} from '../../plugins/s3/client.js';
import { DeleteBatcher } from '../../plugins/s3/delete-batch.js';
import { s3Source } from '../../plugins/s3/source.js';
import { makePluginContext } from '../helpers/context.js';
import { collect, configure, ODD_NAMES, readAll } from '../helpers/object-store.js';
import { makeWorkspace } from '../helpers/workspace.js';
import { type S3rverHandle, s3Client, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-batch-delete';
let server: S3rverHandle;
let client: S3Client;

beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket(BUCKET);
  client = s3Client(server);
}, 60_000);

afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

const connection = () => ({
  bucket: BUCKET,
  endpoint: server.endpoint,
  access_key_id: server.credentials.accessKeyId,
  secret_access_key: server.credentials.secretAccessKey,
});

const signal = () => new AbortController().signal;

async function source(prefix: string): Promise<SourceInstance> {
  return s3Source.create(
    configure(s3Source, { ...connection(), prefix, after_success: 'delete' }),
    makePluginContext(),
  );
}

async function put(key: string, body: string): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
}

async function get(key: string): Promise<string | null> {
  try {
    const res = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    return (await readAll(res.Body as Readable)).toString();
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return null;
    throw err;
  }
}

/** The requests since the last clear that are DeleteObjects / DeleteObject. */
async function deleteRequests() {
  const requests = await server.requests();
  return {
    batches: requests.filter((r) => r.method === 'POST' && /[?&]delete(=|&|$)/.test(r.url)),
    singles: requests.filter((r) => r.method === 'DELETE'),
  };
}

describe('s3 source: batched after_success deletes', () => {
  it('a pipeline deletes many sources with far fewer requests than keys, and none one by one', async () => {
    const names = Array.from({ length: 40 }, (_, i) => `f-${String(i).padStart(2, '0')}.dat`);
    for (const name of names) await put(`many/${name}`, `payload ${name}`);
    const ws = makeWorkspace();
    try {
      const file = ws.pipeline(
        [
          'name: batch-delete',
          'source:',
          '  s3:',
          ...Object.entries(connection()).map(([k, v]) => `    ${k}: ${v}`),
          '    prefix: many/',
          '    after_success: delete',
          'sink:',
          '  s3:',
          ...Object.entries(connection()).map(([k, v]) => `    ${k}: ${v}`),
          '    prefix: many-out/',
          'policy:',
          '  concurrency: 16',
        ].join('\n'),
      );
      await server.clearRequests();
      const summary = await runPipelineFile(file);
      expect(summary).toMatchObject({ ok: 40, failed: 0 });
      const { batches, singles } = await deleteRequests();
      expect(singles).toEqual([]);
      // Without batching: 40 DeleteObject requests. How the 40 split depends on timing.
      expect(batches.length).toBeGreaterThanOrEqual(1);
      expect(batches.length).toBeLessThan(40);
      for (const name of names) {
        expect(await get(`many/${name}`)).toBeNull();
        expect(await get(`many-out/${name}`)).toBe(`payload ${name}`);
      }
    } finally {
      ws.cleanup();
    }
  });

  it('keeps a key that changed after it was listed (SLUICE_E_CHANGED), deletes the others of its batch', async () => {
    const names = ['a.txt', 'b.txt', 'changed.txt', ...ODD_NAMES];
    for (const name of names) await put(`changed/${name}`, `version 1 of ${name}`);
    const src = await source('changed/');
    const items = await collect(src.list(signal()));
    expect(items).toHaveLength(names.length);
    await put('changed/changed.txt', 'version 2, never delivered');
    await server.clearRequests();
    const results = await Promise.allSettled(items.map((item) => src.remove!(item)));
    await src.close?.();
    for (const [i, item] of items.entries()) {
      if (item.path === 'changed.txt') {
        expect(results[i]).toMatchObject({ status: 'rejected', reason: { code: 'SLUICE_E_CHANGED' } });
      } else {
        expect(results[i].status, item.path).toBe('fulfilled');
        expect(await get(`changed/${item.path}`), item.path).toBeNull();
      }
    }
    expect(await get('changed/changed.txt')).toBe('version 2, never delivered');
    const { batches, singles } = await deleteRequests();
    expect(singles).toEqual([]);
    expect(batches.length).toBeLessThan(names.length - 1);
  });

  it("fails only the key the service's answer reports as an error, with an error naming it", async () => {
    const keys = ['perkey/a.txt', 'perkey/denied.txt', 'perkey/c.txt', 'perkey/d.txt'];
    for (const key of keys) await put(key, `bytes of ${key}`);
    const conn: S3Connection = await connectS3(connection());
    const sent: Record<string, string>[] = [];
    conn.client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers: Record<string, string>; body?: unknown };
        if (typeof request.body === 'string' && request.body.includes('<Delete')) {
          sent.push({ ...request.headers, body: request.body });
        }
        return next(args);
      },
      { step: 'finalizeRequest' },
    );
    const real = deleteTransport(conn);
    // The service refuses one key of the batch (as AWS does per key: AccessDenied), the
    // request itself is real and deletes the rest.
    const batcher = new DeleteBatcher({
      ...real,
      async deleteMany(objects) {
        const others = objects.filter((o) => o.key !== 'perkey/denied.txt');
        const answer = others.length > 0 ? await real.deleteMany(others) : { deleted: [], errors: [] };
        const refused = objects.some((o) => o.key === 'perkey/denied.txt');
        return {
          deleted: answer.deleted,
          errors: [
            ...answer.errors,
            ...(refused
              ? [{ Key: 'perkey/denied.txt', Code: 'AccessDenied', Message: 'Access Denied' }]
              : []),
          ],
        };
      },
    });
    try {
      const results = await Promise.allSettled(
        keys.map((key) => deleteObjectVersion(conn, key, { size: `bytes of ${key}`.length }, batcher)),
      );
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      expect((results[1] as PromiseRejectedResult).reason).toMatchObject({
        name: 'AccessDenied',
        message: 'Access Denied',
      });
      expect(await get('perkey/denied.txt')).toBe('bytes of perkey/denied.txt');
      for (const key of ['perkey/a.txt', 'perkey/c.txt', 'perkey/d.txt']) expect(await get(key)).toBeNull();
      // Each DeleteObjects carried a Content-MD5 of its body (S3-compatible stores demand one).
      expect(sent.length).toBeGreaterThan(0);
      for (const request of sent) {
        expect(request['content-md5']).toBe(createHash('md5').update(request.body).digest('base64'));
      }
    } finally {
      await batcher.close();
      conn.client.destroy();
    }
  });

  it('close() sends the deletes still waiting and settles every one: none left hanging', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `c-${i}.txt`);
    for (const name of names) await put(`closing/${name}`, `bytes ${name}`);
    const src = await source('closing/');
    const items = await collect(src.list(signal()));
    const removals = Promise.allSettled(items.map((item) => src.remove!(item)));
    // Closed while the version checks are still on their way.
    await new Promise((r) => setImmediate(r));
    await src.close?.();
    const results = await removals;
    // Each removal either went through or was refused as the source closed; none hangs.
    for (const [i, result] of results.entries()) {
      const key = `closing/${items[i].path}`;
      if (result.status === 'fulfilled') expect(await get(key)).toBeNull();
      else expect(result.reason).toMatchObject({ code: 'SLUICE_E_SOURCE' });
    }
  });
});
