/**
 * `preserve_mtime` on the s3 and azure_blob sinks, against real s3rver and Azurite: the source
 * file's mtime is stored as metadata `mtime` in rclone's spelling, read back after the write and
 * reported as `SinkCommit.mtime`; the sources take it as the item's mtime.
 */
import { utimesSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Item, SinkInstance } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { azureBlobSink } from '../../plugins/azure-blob/sink.js';
import { azureBlobSource } from '../../plugins/azure-blob/source.js';
import { azureMtimeValue, parseStoredMtime, s3MtimeValue } from '../../plugins/object-store/mtime.js';
import { s3Sink } from '../../plugins/s3/sink.js';
import { s3Source } from '../../plugins/s3/source.js';
import { makePluginContext } from '../helpers/context.js';
import { collect, configure } from '../helpers/object-store.js';
import { makeWorkspace } from '../helpers/workspace.js';
import { type AzuriteHandle, startAzurite } from '../servers/azurite.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-mtime';
const CONTAINER = 'sluice-mtime';
/** A source mtime with milliseconds, as rclone writes it on S3 and on Azure. */
const MTIME = new Date('2021-03-04T05:06:07.891Z');
const S3_MTIME = '1614834367.891';
const AZURE_MTIME = '2021-03-04T05:06:07.891000000Z';

let s3: S3rverHandle;
let azurite: AzuriteHandle;
let client: S3Client;
let container: ContainerClient;

beforeAll(async () => {
  [s3, azurite] = await Promise.all([startS3rver(), startAzurite()]);
  await s3.createBucket(BUCKET);
  client = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: s3.credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(CONTAINER);
  await container.create();
});

afterAll(async () => {
  client?.destroy();
  await Promise.all([s3?.stop(), azurite?.stop()]);
});

function s3Yaml(endpoint = s3.endpoint): string[] {
  return [
    `    bucket: ${BUCKET}`,
    `    endpoint: ${endpoint}`,
    '    access_key_id: S3RVER',
    '    secret_access_key: S3RVER',
  ];
}

async function headMetadata(key: string): Promise<Record<string, string>> {
  return (await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).Metadata ?? {};
}

/** An item as a source lists it, with an mtime. */
function itemAt(path: string, mtime: Date | undefined): Item {
  return {
    source: 'test',
    path,
    mtime,
    checksums: {},
    meta: {},
    open: async () => Readable.from([]),
  } as Item;
}

function write(sink: SinkInstance, item: Item, body: string) {
  return sink.write({
    item,
    destination: item.path,
    body: Readable.from([Buffer.from(body)]),
    size: body.length,
    signal: new AbortController().signal,
  });
}

/**
 * An HTTP reverse proxy in front of a real server that rewrites one response header (HEAD and
 * GET alike): a backend that reports another stored mtime than the one it was sent. Requests
 * pass untouched (their signatures stay valid).
 */
async function startRewritingProxy(
  target: string,
  header: string,
  value: string,
): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const upstream = new URL(target);
  const server: Server = createServer((req, res) => {
    const forwarded = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        const headers = { ...answer.headers };
        if (headers[header] !== undefined) headers[header] = value;
        res.writeHead(answer.statusCode ?? 502, headers);
        answer.pipe(res);
      },
    );
    forwarded.on('error', () => res.destroy());
    req.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}${upstream.pathname.replace(/\/$/, '')}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('stored mtime spelling (rclone compatible)', () => {
  it('writes S3 seconds as a decimal and Azure RFC 3339 with nanoseconds, and reads both', () => {
    expect(s3MtimeValue(MTIME)).toBe(S3_MTIME);
    expect(s3MtimeValue(new Date(1_600_000_000_000))).toBe('1600000000');
    expect(s3MtimeValue(new Date(1_600_000_000_050))).toBe('1600000000.05');
    expect(azureMtimeValue(MTIME)).toBe(AZURE_MTIME);
    expect(parseStoredMtime(S3_MTIME)).toEqual(MTIME);
    expect(parseStoredMtime('1614834367.891234567')).toEqual(MTIME);
    expect(parseStoredMtime(AZURE_MTIME)).toEqual(MTIME);
    expect(parseStoredMtime('2021-03-04T07:06:07.891+02:00')).toEqual(MTIME);
    expect(parseStoredMtime('2021-03-04T05:06:07Z')).toEqual(new Date('2021-03-04T05:06:07Z'));
    for (const bad of ['', 'yesterday', '1e9', '2021-03-04', undefined])
      expect(parseStoredMtime(bad)).toBeUndefined();
  });
});

describe('preserve_mtime on s3', () => {
  it('keeps a local file’s mtime (local → s3), and the s3 source reads it back with read_metadata', async () => {
    const ws = makeWorkspace();
    try {
      utimesSync(ws.write('in/report.csv', 'a,b\n1,2\n'), MTIME, MTIME);
      const file = ws.pipeline(
        [
          'name: up',
          'source:',
          '  local: { path: ./in }',
          'sink:',
          '  s3:',
          ...s3Yaml(),
          '    prefix: up/',
        ].join('\n'),
      );
      expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 0 });
      expect((await headMetadata('up/report.csv')).mtime).toBe(S3_MTIME);

      const connection = {
        bucket: BUCKET,
        endpoint: s3.endpoint,
        access_key_id: 'S3RVER',
        secret_access_key: 'S3RVER',
      };
      const withMetadata = await s3Source.create(
        configure(s3Source, { ...connection, prefix: 'up/', read_metadata: true }),
        makePluginContext(),
      );
      const [listed] = await collect(withMetadata.list(new AbortController().signal));
      expect(listed.mtime).toEqual(MTIME);
      // Without the HeadObject an item has the object's LastModified (the upload's time).
      const plain = await s3Source.create(
        configure(s3Source, { ...connection, prefix: 'up/' }),
        makePluginContext(),
      );
      const [bare] = await collect(plain.list(new AbortController().signal));
      expect(bare.mtime!.getTime()).toBeGreaterThan(Date.now() - 120_000);
      await Promise.all([withMetadata.close?.(), plain.close?.()]);
    } finally {
      ws.cleanup();
    }
  });

  it('keeps the mtime through a server-side copy (s3 → s3), from metadata or from LastModified', async () => {
    // One object written by rclone (metadata mtime), one by a tool that stores none.
    await client.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'copy-in/rclone.txt',
        Body: 'r',
        Metadata: { mtime: S3_MTIME },
      }),
    );
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'copy-in/plain.txt', Body: 'p' }));
    const plainModified = (
      await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'copy-in/plain.txt' }))
    ).LastModified!;
    const ws = makeWorkspace();
    try {
      const file = ws.pipeline(
        [
          'name: copy',
          'source:',
          '  s3:',
          ...s3Yaml(),
          '    prefix: copy-in/',
          '    read_metadata: true',
          'sink:',
          '  s3:',
          ...s3Yaml(),
          '    prefix: copy-out/',
        ].join('\n'),
      );
      await s3.clearRequests();
      expect(await runPipelineFile(file)).toMatchObject({ ok: 2, failed: 0 });
      expect((await s3.requests()).filter((r) => r.copy)).toHaveLength(2);
      expect((await headMetadata('copy-out/rclone.txt')).mtime).toBe(S3_MTIME);
      expect((await headMetadata('copy-out/plain.txt')).mtime).toBe(s3MtimeValue(plainModified));
    } finally {
      ws.cleanup();
    }
  });

  it('reports the mtime it read back, none with preserve_mtime: false, and refuses metadata named mtime', async () => {
    const connection = {
      bucket: BUCKET,
      endpoint: s3.endpoint,
      access_key_id: 'S3RVER',
      secret_access_key: 'S3RVER',
    };
    const keeping = await s3Sink.create(
      configure(s3Sink, { ...connection, prefix: 'direct/' }),
      makePluginContext(),
    );
    const commit = await write(keeping, itemAt('kept.txt', MTIME), 'kept');
    expect(commit.mtime).toEqual(MTIME);
    expect(keeping.mtimePrecisionMs).toBe(1);
    expect(await keeping.stat!('kept.txt', new AbortController().signal)).toMatchObject({
      size: 4,
      mtime: MTIME,
    });

    const notKeeping = await s3Sink.create(
      configure(s3Sink, { ...connection, prefix: 'direct/', preserve_mtime: false }),
      makePluginContext(),
    );
    const bare = await write(notKeeping, itemAt('bare.txt', MTIME), 'bare');
    expect(bare.mtime).toBeUndefined();
    expect((await headMetadata('direct/bare.txt')).mtime).toBeUndefined();
    await Promise.all([keeping.close?.(), notKeeping.close?.()]);

    expect(() =>
      s3Sink.validate!(configure(s3Sink, { ...connection, metadata: { MTime: '{name}' } })),
    ).toThrow(/metadata "MTime" is where preserve_mtime stores/);
    expect(() =>
      s3Sink.validate!(
        configure(s3Sink, { ...connection, preserve_mtime: false, metadata: { mtime: '{name}' } }),
      ),
    ).not.toThrow();
  });

  it('reports the mtime the service holds when it differs from the one sent', async () => {
    const proxy = await startRewritingProxy(s3.endpoint, 'x-amz-meta-mtime', '1000000000');
    try {
      const sink = await s3Sink.create(
        configure(s3Sink, {
          bucket: BUCKET,
          endpoint: proxy.endpoint,
          access_key_id: 'S3RVER',
          secret_access_key: 'S3RVER',
          prefix: 'rewritten/',
        }),
        makePluginContext(),
      );
      const commit = await write(sink, itemAt('a.txt', MTIME), 'aaa');
      expect(commit.mtime).toEqual(new Date(1_000_000_000_000));
      await sink.close?.();
      // What reached the server is the real mtime: only the report differs.
      expect((await headMetadata('rewritten/a.txt')).mtime).toBe(S3_MTIME);
    } finally {
      await proxy.stop();
    }
  });
});

describe('preserve_mtime on azure_blob', () => {
  const connection = () => ({ connection_string: azurite.connectionString, container: CONTAINER });

  it('keeps a local file’s mtime (local → azure), and the azure source lists it', async () => {
    const ws = makeWorkspace();
    try {
      utimesSync(ws.write('in/report.csv', 'a,b\n1,2\n'), MTIME, MTIME);
      const file = ws.pipeline(
        [
          'name: up',
          'source:',
          '  local: { path: ./in }',
          'sink:',
          '  azure_blob:',
          `    connection_string: "${azurite.connectionString}"`,
          `    container: ${CONTAINER}`,
          '    prefix: up/',
        ].join('\n'),
      );
      expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 0 });
      const props = await container.getBlobClient('up/report.csv').getProperties();
      expect(props.metadata?.mtime).toBe(AZURE_MTIME);
      const source = await azureBlobSource.create(
        configure(azureBlobSource, { ...connection(), prefix: 'up/' }),
        makePluginContext(),
      );
      const [listed] = await collect(source.list(new AbortController().signal));
      expect(listed.mtime).toEqual(MTIME);
    } finally {
      ws.cleanup();
    }
  });

  it('keeps the mtime through a server-side copy (azure → azure)', async () => {
    await container
      .getBlockBlobClient('copy-in/rclone.txt')
      .upload('r', 1, { metadata: { mtime: AZURE_MTIME } });
    const ws = makeWorkspace();
    try {
      const lines = [`    connection_string: "${azurite.connectionString}"`, `    container: ${CONTAINER}`];
      const file = ws.pipeline(
        [
          'name: copy',
          'source:',
          '  azure_blob:',
          ...lines,
          '    prefix: copy-in/',
          'sink:',
          '  azure_blob:',
          ...lines,
          '    prefix: copy-out/',
        ].join('\n'),
      );
      expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 0 });
      const props = await container.getBlobClient('copy-out/rclone.txt').getProperties();
      expect(props.metadata?.mtime).toBe(AZURE_MTIME);
    } finally {
      ws.cleanup();
    }
  });

  it('reports the mtime it read back, and none with preserve_mtime: false', async () => {
    const keeping = await azureBlobSink.create(
      configure(azureBlobSink, { ...connection(), prefix: 'direct/' }),
      makePluginContext(),
    );
    expect((await write(keeping, itemAt('kept.txt', MTIME), 'kept')).mtime).toEqual(MTIME);
    expect(await keeping.stat!('kept.txt', new AbortController().signal)).toMatchObject({
      size: 4,
      mtime: MTIME,
    });
    const notKeeping = await azureBlobSink.create(
      configure(azureBlobSink, { ...connection(), prefix: 'direct/', preserve_mtime: false }),
      makePluginContext(),
    );
    expect((await write(notKeeping, itemAt('bare.txt', MTIME), 'bare')).mtime).toBeUndefined();
    expect(
      (await container.getBlobClient('direct/bare.txt').getProperties()).metadata?.mtime,
    ).toBeUndefined();
  });

  it('reports the mtime the service holds when it differs from the one sent', async () => {
    const proxy = await startRewritingProxy(
      azurite.accountUrl,
      'x-ms-meta-mtime',
      '2001-09-09T01:46:40.000000000Z',
    );
    try {
      const sink = await azureBlobSink.create(
        configure(azureBlobSink, {
          account: azurite.account,
          account_key: azurite.accountKey,
          endpoint: proxy.endpoint,
          container: CONTAINER,
          prefix: 'rewritten/',
        }),
        makePluginContext(),
      );
      const commit = await write(sink, itemAt('a.txt', MTIME), 'aaa');
      expect(commit.mtime).toEqual(new Date(1_000_000_000_000));
      expect((await container.getBlobClient('rewritten/a.txt').getProperties()).metadata?.mtime).toBe(
        AZURE_MTIME,
      );
    } finally {
      await proxy.stop();
    }
  });
});
