/**
 * Pre-flight checks of the s3 and azure_blob sources and sinks, against real s3rver and Azurite:
 * `cheap` proves the bucket/container and the credentials, `full` also lists (sources) or writes
 * and removes a probe (sinks); every failure says which of missing / refused credentials /
 * denied / unreachable it is.
 */
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  BlobServiceClient,
  type ContainerClient,
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PreflightRequest, SinkInstance, SourceInstance } from '../../core/plugin-api.js';
import { azureBlobSink } from '../../plugins/azure-blob/sink.js';
import { azureBlobSource } from '../../plugins/azure-blob/source.js';
import { s3Sink } from '../../plugins/s3/sink.js';
import { s3Source } from '../../plugins/s3/source.js';
import { makePluginContext } from '../helpers/context.js';
import { configure } from '../helpers/object-store.js';
import { type AzuriteHandle, startAzurite } from '../servers/azurite.js';
import { freePort } from '../servers/remote-fs-net.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-check';
const CONTAINER = 'sluice-check';

let s3: S3rverHandle;
let azurite: AzuriteHandle;
let client: S3Client;
let container: ContainerClient;
/** A port nothing listens on. */
let closedPort: number;

const cheap = (): PreflightRequest => ({ depth: 'cheap', signal: new AbortController().signal });
const full = (): PreflightRequest => ({ depth: 'full', signal: new AbortController().signal });

beforeAll(async () => {
  [s3, azurite, closedPort] = await Promise.all([startS3rver(), startAzurite(), freePort()]);
  await s3.createBucket(BUCKET);
  client = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: s3.credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'in/a.txt', Body: 'a' }));
  container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(CONTAINER);
  await container.create();
  await container.getBlockBlobClient('in/a.txt').upload('a', 1);
});

afterAll(async () => {
  client?.destroy();
  await Promise.all([s3?.stop(), azurite?.stop()]);
});

describe('s3 pre-flight', () => {
  const s3Config = (extra: Record<string, unknown> = {}) => ({
    bucket: BUCKET,
    endpoint: s3.endpoint,
    access_key_id: 'S3RVER',
    secret_access_key: 'S3RVER',
    prefix: 'in/',
    ...extra,
  });
  const source = (extra?: Record<string, unknown>) =>
    s3Source.create(configure(s3Source, s3Config(extra)), makePluginContext());
  const sink = (extra?: Record<string, unknown>) =>
    s3Sink.create(configure(s3Sink, s3Config({ prefix: 'out/', ...extra })), makePluginContext());

  it('passes cheap and full checks, and a full sink check leaves nothing behind', async () => {
    const src = await source();
    expect((await src.check!(cheap())).detail).toBe(
      `bucket "${BUCKET}" at ${s3.endpoint} exists, credentials accepted`,
    );
    expect((await src.check!(full())).detail).toMatch(
      /s3:\/\/sluice-check\/in\/ listed \(1 on the first page\)$/,
    );
    const dst = await sink();
    await s3.clearRequests();
    expect((await dst.check!(full())).detail).toMatch(
      /wrote and removed s3:\/\/sluice-check\/out\/\.sluice-check-[0-9a-f]{16}$/,
    );
    const requests = await s3.requests();
    expect(requests.filter((r) => r.method === 'PUT' && r.url.includes('/out/.sluice-check-'))).toHaveLength(
      1,
    );
    expect(
      requests.filter((r) => r.method === 'DELETE' && r.url.includes('/out/.sluice-check-')),
    ).toHaveLength(1);
    const left = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'out/' }));
    expect(left.Contents ?? []).toEqual([]);
    await Promise.all([src.close?.(), dst.close?.()]);
  });

  it('names a missing bucket', async () => {
    for (const instance of [
      await source({ bucket: 'no-such-bucket' }),
      await sink({ bucket: 'no-such-bucket' }),
    ]) {
      await expect(instance.check!(cheap())).rejects.toMatchObject({
        message: `bucket "no-such-bucket" does not exist at ${s3.endpoint}`,
        context: { hint: expect.stringContaining('bucket name') },
      });
      await instance.close?.();
    }
  });

  it('names refused credentials', async () => {
    const src = await source({ access_key_id: 'NOT-S3RVER' });
    await expect(src.check!(cheap())).rejects.toMatchObject({
      code: 'SLUICE_E_SOURCE',
      message: expect.stringMatching(
        new RegExp(`^the credentials were refused by ${s3.endpoint} \\(InvalidAccessKeyId`),
      ),
      context: { hint: expect.stringContaining('access_key_id') },
    });
    await src.close?.();
  });

  it('names an endpoint it cannot reach', async () => {
    const dst = await sink({ endpoint: `http://127.0.0.1:${closedPort}` });
    await expect(dst.check!(cheap())).rejects.toMatchObject({
      code: 'SLUICE_E_SINK',
      message: expect.stringMatching(
        new RegExp(`^cannot reach http://127.0.0.1:${closedPort} \\(.*ECONNREFUSED`),
      ),
    });
    await dst.close?.();
  });
});

describe('azure_blob pre-flight', () => {
  const connection = { connection_string: '', container: CONTAINER };
  const azConfig = (extra: Record<string, unknown> = {}) => ({
    ...connection,
    connection_string: azurite.connectionString,
    prefix: 'in/',
    ...extra,
  });
  const source = (extra?: Record<string, unknown>) =>
    azureBlobSource.create(configure(azureBlobSource, azConfig(extra)), makePluginContext());
  const sink = (extra?: Record<string, unknown>) =>
    azureBlobSink.create(
      configure(azureBlobSink, azConfig({ prefix: 'out/', ...extra })),
      makePluginContext(),
    );
  /** A container SAS URL (service SAS, which may not read container properties). */
  const containerSas = (permissions: string) => {
    const query = generateBlobSASQueryParameters(
      {
        containerName: CONTAINER,
        permissions: ContainerSASPermissions.parse(permissions),
        expiresOn: new Date(Date.now() + 3_600_000),
      },
      new StorageSharedKeyCredential(azurite.account, azurite.accountKey),
    ).toString();
    return `${azurite.accountUrl}/${CONTAINER}?${query}`;
  };

  it('passes cheap and full checks (account key and container SAS), and a full sink check leaves nothing behind', async () => {
    const src = await source();
    expect((await src.check!(cheap())).detail).toBe(
      `container "${CONTAINER}" at ${azurite.accountUrl} exists, credentials accepted`,
    );
    expect((await src.check!(full())).detail).toMatch(/in\/ listed \(1 on the first page\)$/);
    const viaSas = await azureBlobSink.create(
      configure(azureBlobSink, { sas_url: containerSas('racwdl'), prefix: 'out/' }),
      makePluginContext(),
    );
    for (const dst of [await sink(), viaSas]) {
      expect((await dst.check!(full())).detail).toMatch(
        /wrote and removed azure:\/\/.*\/out\/\.sluice-check-[0-9a-f]{16}$/,
      );
    }
    const left: string[] = [];
    for await (const blob of container.listBlobsFlat({ prefix: 'out/' })) left.push(blob.name);
    expect(left).toEqual([]);
  });

  it('names a missing container', async () => {
    for (const instance of [
      await source({ container: 'no-such-container' }),
      await sink({ container: 'no-such-container' }),
    ] as Array<SourceInstance | SinkInstance>) {
      await expect(instance.check!(cheap())).rejects.toMatchObject({
        message: `container "no-such-container" does not exist at ${azurite.accountUrl}`,
      });
    }
  });

  it('names refused credentials', async () => {
    const src = await azureBlobSource.create(
      configure(azureBlobSource, {
        account: azurite.account,
        account_key: Buffer.from('not the key').toString('base64'),
        endpoint: azurite.accountUrl,
        container: CONTAINER,
      }),
      makePluginContext(),
    );
    await expect(src.check!(cheap())).rejects.toMatchObject({
      message: expect.stringMatching(
        /^the credentials were refused by .* \(403 \w+: Server failed to authenticate/,
      ),
      context: { hint: expect.stringContaining('account_key') },
    });
  });

  it('names access the credentials do not have (a read-only SAS asked to write)', async () => {
    const dst = await azureBlobSink.create(
      configure(azureBlobSink, { sas_url: containerSas('rl'), prefix: 'out/' }),
      makePluginContext(),
    );
    expect((await dst.check!(cheap())).detail).toMatch(/credentials accepted/);
    await expect(dst.check!(full())).rejects.toMatchObject({
      message: expect.stringMatching(
        /^access denied to container "sluice-check" at .*: the credentials are valid but may not write to it/,
      ),
      context: { hint: expect.stringContaining('SAS permissions c and w') },
    });
  });

  it('names an endpoint it cannot reach', async () => {
    const src = await source({
      connection_string: azurite.connectionString.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${closedPort}`),
    });
    await expect(src.check!(cheap())).rejects.toMatchObject({
      message: expect.stringMatching(
        new RegExp(`^cannot reach http://127.0.0.1:${closedPort}/devstoreaccount1 \\(`),
      ),
    });
  }, 60_000);
});
