/**
 * One s3rver (with a bucket) and one Azurite (with a container) for a test file: started before
 * its tests, stopped after them, each with a client for arranging and inspecting objects.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll } from 'vitest';
import { type AzuriteHandle, startAzurite } from '../servers/azurite.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

export interface ObjectStoreServers {
  readonly s3: S3rverHandle;
  readonly azurite: AzuriteHandle;
  /** An S3 client for the bucket, with s3rver's credentials. */
  readonly client: S3Client;
  readonly container: ContainerClient;
}

export function useObjectStoreServers(names: { bucket: string; container: string }): ObjectStoreServers {
  const servers = {} as { -readonly [K in keyof ObjectStoreServers]: ObjectStoreServers[K] };
  beforeAll(async () => {
    [servers.s3, servers.azurite] = await Promise.all([startS3rver(), startAzurite()]);
    await servers.s3.createBucket(names.bucket);
    servers.client = new S3Client({
      endpoint: servers.s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: servers.s3.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    servers.container = BlobServiceClient.fromConnectionString(
      servers.azurite.connectionString,
    ).getContainerClient(names.container);
    await servers.container.create();
  });
  afterAll(async () => {
    servers.client?.destroy();
    await Promise.all([servers.s3?.stop(), servers.azurite?.stop()]);
  });
  return servers;
}
