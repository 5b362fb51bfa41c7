/**
 * Backend checksums on object-store items, against real s3rver and Azurite: S3 items carry the
 * single-part ETag as md5 (and the stored `sluice-sha256` with `read_metadata`), Azure items
 * their Content-MD5 and stored `sluice_sha256`; `checksum: {expect: metadata}` checks the bytes
 * against them, and a mismatch fails the item before any sink commits it.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { azureBlobSource } from '../../plugins/azure-blob/source.js';
import { s3Source } from '../../plugins/s3/source.js';
import { makePluginContext } from '../helpers/context.js';
import { collect, configure, sha256 } from '../helpers/object-store.js';
import { makeWorkspace } from '../helpers/workspace.js';
import { type AzuriteHandle, startAzurite } from '../servers/azurite.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-sums';
const CONTAINER = 'sluice-sums';
const FILES = { 'a.csv': 'alpha,1\n', 'b.csv': 'bravo,2\n', 'c.csv': 'charlie,3\n' };

let s3: S3rverHandle;
let azurite: AzuriteHandle;
let client: S3Client;
let container: ContainerClient;

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

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

const s3Connection = () => ({
  bucket: BUCKET,
  endpoint: s3.endpoint,
  access_key_id: 'S3RVER',
  secret_access_key: 'S3RVER',
});

/** A pipeline from `source` through `checksum: {algorithm, expect: metadata}` to a local folder. */
function verifyingPipeline(source: string[], algorithm: 'md5' | 'sha256'): string {
  return [
    'name: sums',
    'source:',
    ...source,
    'steps:',
    `  - checksum: { algorithm: ${algorithm}, expect: metadata }`,
    'sink:',
    '  local: { path: ./out }',
  ].join('\n');
}

describe('s3 items carry backend checksums', () => {
  it('fails an object whose bytes were altered on the server behind its ETag; the others deliver', async () => {
    for (const [name, text] of Object.entries(FILES))
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `etag/${name}`, Body: text }));
    // s3rver keeps each object's bytes in a file and its ETag in another: rot the bytes only.
    writeFileSync(join(s3.dir, BUCKET, 'etag', 'b.csv._S3rver_object'), 'bravo,X\n');

    const source = await s3Source.create(
      configure(s3Source, { ...s3Connection(), prefix: 'etag/' }),
      makePluginContext(),
    );
    const items = await collect(source.list(new AbortController().signal));
    expect(Object.fromEntries(items.map((i) => [i.path, i.checksums]))).toEqual({
      'a.csv': { md5: md5(FILES['a.csv']) },
      'b.csv': { md5: md5(FILES['b.csv']) },
      'c.csv': { md5: md5(FILES['c.csv']) },
    });
    await source.close?.();

    const ws = makeWorkspace();
    try {
      const file = ws.pipeline(
        verifyingPipeline(
          ['  s3:', ...Object.entries(s3Connection()).map(([k, v]) => `    ${k}: ${v}`), '    prefix: etag/'],
          'md5',
        ),
      );
      const summary = await runPipelineFile(file);
      expect(summary).toMatchObject({ ok: 2, failed: 1 });
      expect(summary.failures).toEqual([
        expect.objectContaining({ path: 'b.csv', error: expect.stringMatching(/md5/) }),
      ]);
      expect(ws.files('out')).toEqual(['a.csv', 'c.csv']);
    } finally {
      ws.cleanup();
    }
  });

  it('takes no md5 from a multipart ETag, and the stored sha256 with read_metadata', async () => {
    await client.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'meta/x.csv',
        Body: 'x',
        Metadata: { 'sluice-sha256': sha256('x') },
      }),
    );
    const listed = async (extra: Record<string, unknown>) => {
      const source = await s3Source.create(
        configure(s3Source, { ...s3Connection(), prefix: 'meta/', ...extra }),
        makePluginContext(),
      );
      const [item] = await collect(source.list(new AbortController().signal));
      await source.close?.();
      return item.checksums;
    };
    expect(await listed({})).toEqual({ md5: md5('x') });
    expect(await listed({ read_metadata: true })).toEqual({ md5: md5('x'), sha256: sha256('x') });
  });

  it('a wrong stored sha256 fails the item with expect: metadata (read_metadata)', async () => {
    for (const [name, text] of Object.entries(FILES)) {
      const stored = name === 'c.csv' ? sha256('something else') : sha256(text);
      await client.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: `sha/${name}`,
          Body: text,
          Metadata: { 'sluice-sha256': stored },
        }),
      );
    }
    const ws = makeWorkspace();
    try {
      const file = ws.pipeline(
        verifyingPipeline(
          [
            '  s3:',
            ...Object.entries(s3Connection()).map(([k, v]) => `    ${k}: ${v}`),
            '    prefix: sha/',
            '    read_metadata: true',
          ],
          'sha256',
        ),
      );
      const summary = await runPipelineFile(file);
      expect(summary).toMatchObject({ ok: 2, failed: 1 });
      expect(summary.failures.map((f) => f.path)).toEqual(['c.csv']);
      expect(ws.files('out')).toEqual(['a.csv', 'b.csv']);
    } finally {
      ws.cleanup();
    }
  });
});

describe('azure items carry backend checksums', () => {
  it('fails a blob whose stored Content-MD5 disagrees with its bytes; the others deliver', async () => {
    for (const [name, text] of Object.entries(FILES)) {
      await container
        .getBlockBlobClient(`md5/${name}`)
        .upload(text, text.length, { blobHTTPHeaders: { blobContentMD5: Buffer.from(md5(text), 'hex') } });
    }
    // Azurite here keeps blobs in memory: its bytes cannot be altered behind its back. Setting
    // another Content-MD5 (Set Blob Properties) makes the same disagreement from the other side.
    await container
      .getBlobClient('md5/b.csv')
      .setHTTPHeaders({ blobContentMD5: Buffer.from(md5('bravo,X\n'), 'hex') });

    const source = await azureBlobSource.create(
      configure(azureBlobSource, {
        connection_string: azurite.connectionString,
        container: CONTAINER,
        prefix: 'md5/',
      }),
      makePluginContext(),
    );
    const items = await collect(source.list(new AbortController().signal));
    expect(items.find((i) => i.path === 'a.csv')?.checksums).toEqual({ md5: md5(FILES['a.csv']) });

    const ws = makeWorkspace();
    try {
      const file = ws.pipeline(
        verifyingPipeline(
          [
            '  azure_blob:',
            `    connection_string: "${azurite.connectionString}"`,
            `    container: ${CONTAINER}`,
            '    prefix: md5/',
          ],
          'md5',
        ),
      );
      const summary = await runPipelineFile(file);
      expect(summary).toMatchObject({ ok: 2, failed: 1 });
      expect(summary.failures.map((f) => f.path)).toEqual(['b.csv']);
      expect(ws.files('out')).toEqual(['a.csv', 'c.csv']);
    } finally {
      ws.cleanup();
    }
  });
});
