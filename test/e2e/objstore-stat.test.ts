/**
 * `SinkInstance.stat` on the s3 and azure_blob sinks, against real s3rver and Azurite: what is
 * at a destination (size, the stored or the service's mtime, the checksums the service holds),
 * null when nothing is, and any other failure thrown naming the location.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import type { Item, SinkInstance } from '../../core/plugin-api.js';
import { azureBlobSink } from '../../plugins/azure-blob/sink.js';
import { s3Sink } from '../../plugins/s3/sink.js';
import { makePluginContext } from '../helpers/context.js';
import { configure, sha256 } from '../helpers/object-store.js';
import { useObjectStoreServers } from '../helpers/object-store-servers.js';

const BUCKET = 'sluice-stat';
const CONTAINER = 'sluice-stat';
const MTIME = new Date('2022-02-22T22:22:22.222Z');
const signal = () => new AbortController().signal;
const md5 = (text: string) => createHash('md5').update(text).digest('hex');

const servers = useObjectStoreServers({ bucket: BUCKET, container: CONTAINER });

/** Writes `text` through the sink as the runtime would, for an item with MTIME and its sha256. */
function write(sink: SinkInstance, destination: string, text: string) {
  const item = { source: 't', path: destination, mtime: MTIME, checksums: {}, meta: {} } as unknown as Item;
  return sink.write({
    item,
    destination,
    body: Readable.from([Buffer.from(text)]),
    size: text.length,
    sha256: sha256(text),
    signal: signal(),
  });
}

describe('s3 sink stat', () => {
  const connection = (extra: Record<string, unknown> = {}) => ({
    bucket: BUCKET,
    endpoint: servers.s3.endpoint,
    access_key_id: 'S3RVER',
    secret_access_key: 'S3RVER',
    prefix: 'st/',
    ...extra,
  });

  it('tells size, stored mtime and checksums; null when nothing is there', async () => {
    const sink = await s3Sink.create(configure(s3Sink, connection()), makePluginContext());
    await write(sink, 'a.txt', 'hello');
    expect(await sink.stat!('a.txt', signal())).toEqual({
      size: 5,
      mtime: MTIME,
      checksums: { md5: md5('hello'), sha256: sha256('hello') },
    });
    expect(await sink.stat!('missing.txt', signal())).toBeNull();
    await sink.close?.();
  });

  it('falls back to LastModified; a multipart object’s md5 only where the service says it is one', async () => {
    await servers.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'st/plain.txt', Body: 'plain' }));
    const modified = (
      await servers.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'st/plain.txt' }))
    ).LastModified;
    const sink = await s3Sink.create(configure(s3Sink, connection()), makePluginContext());
    expect(await sink.stat!('plain.txt', signal())).toEqual({
      size: 5,
      mtime: modified,
      checksums: { md5: md5('plain') },
    });
    // 6 MiB in 5 MiB parts: the sink makes it a multipart upload ("…-2").
    const big = await s3Sink.create(
      configure(s3Sink, connection({ part_size: '5MiB' })),
      makePluginContext(),
    );
    const body = Buffer.alloc(6 * 1024 * 1024, 7);
    await big.write({
      item: { source: 't', path: 'big.bin', checksums: {}, meta: {} } as unknown as Item,
      destination: 'big.bin',
      body: Readable.from([body]),
      signal: signal(),
    });
    // AWS answers a multipart object's HEAD with "<md5 of part md5s>-2" (no md5: see
    // plugins/s3/servers.client.test.ts); s3rver with the MD5 of the whole object, which is one.
    const stat = await big.stat!('big.bin', signal());
    expect(stat).toMatchObject({
      size: body.length,
      checksums: { md5: createHash('md5').update(body).digest('hex') },
    });
    await Promise.all([sink.close?.(), big.close?.()]);
  });

  it('throws other failures with the location (refused credentials)', async () => {
    const sink = await s3Sink.create(
      configure(s3Sink, connection({ access_key_id: 'NOT-S3RVER' })),
      makePluginContext(),
    );
    await expect(sink.stat!('a.txt', signal())).rejects.toMatchObject({
      code: 'SLUICE_E_SINK',
      message: expect.stringContaining(`s3://${BUCKET}/st/a.txt`),
    });
    await sink.close?.();
  });
});

describe('azure_blob sink stat', () => {
  const connection = (extra: Record<string, unknown> = {}) => ({
    connection_string: servers.azurite.connectionString,
    container: CONTAINER,
    prefix: 'st/',
    ...extra,
  });

  it('tells size, stored mtime and checksums; null when nothing is there', async () => {
    const sink = await azureBlobSink.create(configure(azureBlobSink, connection()), makePluginContext());
    await write(sink, 'a.txt', 'hello');
    expect(await sink.stat!('a.txt', signal())).toEqual({
      size: 5,
      mtime: MTIME,
      checksums: { sha256: sha256('hello') },
    });
    expect(await sink.stat!('missing.txt', signal())).toBeNull();
  });

  it('falls back to Last-Modified and reports the Content-MD5', async () => {
    const blob = servers.container.getBlockBlobClient('st/plain.txt');
    await blob.upload('plain', 5, { blobHTTPHeaders: { blobContentMD5: Buffer.from(md5('plain'), 'hex') } });
    const modified = (await blob.getProperties()).lastModified;
    const sink = await azureBlobSink.create(configure(azureBlobSink, connection()), makePluginContext());
    expect(await sink.stat!('plain.txt', signal())).toEqual({
      size: 5,
      mtime: modified,
      checksums: { md5: md5('plain') },
    });
  });

  it('throws other failures with the location (a missing container is not an absent blob)', async () => {
    const sink = await azureBlobSink.create(
      configure(azureBlobSink, connection({ container: 'no-such-container' })),
      makePluginContext(),
    );
    await expect(sink.stat!('a.txt', signal())).rejects.toMatchObject({
      code: 'SLUICE_E_SINK',
      message: expect.stringContaining('azure://devstoreaccount1/no-such-container/st/a.txt'),
    });
  });
});
