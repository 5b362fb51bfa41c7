/**
 * `match: first` over several prefixes of the s3 and azure_blob sources, against real s3rver and
 * Azurite: a relative path is taken from the first prefix that has it; the same path under later
 * prefixes is neither processed nor tidied (after_success: delete leaves it in place).
 */
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { azureBlobSource } from '../../plugins/azure-blob/source.js';
import { s3Source } from '../../plugins/s3/source.js';
import { makePluginContext } from '../helpers/context.js';
import { collect, configure } from '../helpers/object-store.js';
import { makeWorkspace } from '../helpers/workspace.js';
import { type AzuriteHandle, startAzurite } from '../servers/azurite.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-first';
const CONTAINER = 'sluice-first';
/** Three prefixes with overlapping relative paths; the content names the prefix it is under. */
const OBJECTS = {
  'daily/a.txt': 'daily a',
  'weekly/a.txt': 'weekly a',
  'weekly/b.txt': 'weekly b',
  'archive/2024/a.txt': 'archive a',
  'archive/2024/b.txt': 'archive b',
  'archive/2024/c.txt': 'archive c',
};
const PREFIXES = '[daily/, weekly/, archive/2024]';
/** What `match: first` leaves in place: the hidden copies. */
const HIDDEN = ['archive/2024/a.txt', 'archive/2024/b.txt', 'weekly/a.txt'];

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

/** Runs source → local ./out with after_success: delete; returns what reached ./out. */
async function runFirstMatch(
  source: string[],
  env: Record<string, string> = {},
): Promise<{ ok: number; failed: number; out: Record<string, string> }> {
  const ws = makeWorkspace();
  try {
    const file = ws.pipeline(
      [
        'name: first',
        'source:',
        ...source,
        '    after_success: delete',
        'sink:',
        '  local: { path: ./out }',
      ].join('\n'),
    );
    const summary = await runPipelineFile(file, { env: { ...process.env, ...env } });
    const out = Object.fromEntries(ws.files('out').map((f) => [f, ws.read(`out/${f}`)]));
    return { ok: summary.ok, failed: summary.failed, out };
  } finally {
    ws.cleanup();
  }
}

const EXPECTED_OUT = { 'a.txt': 'daily a', 'b.txt': 'weekly b', 'c.txt': 'archive c' };

describe('match: first on s3', () => {
  const lines = [
    '  s3:',
    `    bucket: ${BUCKET}`,
    '    endpoint: ${S3_ENDPOINT}',
    '    access_key_id: S3RVER',
    '    secret_access_key: S3RVER',
    `    prefixes: ${PREFIXES}`,
  ];

  it('takes each path from the first prefix that has it, and leaves the hidden ones untouched', async () => {
    for (const [key, body] of Object.entries(OBJECTS))
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    const source = await s3Source.create(
      configure(s3Source, {
        bucket: BUCKET,
        endpoint: s3.endpoint,
        access_key_id: 'S3RVER',
        secret_access_key: 'S3RVER',
        prefixes: ['daily/', 'weekly/', 'archive/2024'],
        match: 'first',
      }),
      makePluginContext(),
    );
    const items = await collect(source.list(new AbortController().signal));
    expect(items.map((i) => [i.root, i.path])).toEqual([
      ['daily/', 'a.txt'],
      ['weekly/', 'b.txt'],
      ['archive/2024', 'c.txt'],
    ]);
    await source.close?.();

    const result = await runFirstMatch([...lines, '    match: first'], { S3_ENDPOINT: s3.endpoint });
    expect(result).toEqual({ ok: 3, failed: 0, out: EXPECTED_OUT });
    const left = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    expect((left.Contents ?? []).map((o) => o.Key).sort()).toEqual(HIDDEN);
  });
});

describe('match: first on azure_blob', () => {
  it('takes each path from the first prefix that has it, and leaves the hidden ones untouched', async () => {
    for (const [name, body] of Object.entries(OBJECTS))
      await container.getBlockBlobClient(name).upload(body, body.length);
    const result = await runFirstMatch([
      '  azure_blob:',
      `    connection_string: "${azurite.connectionString}"`,
      `    container: ${CONTAINER}`,
      `    prefixes: ${PREFIXES}`,
      '    match: first',
    ]);
    expect(result).toEqual({ ok: 3, failed: 0, out: EXPECTED_OUT });
    const left: string[] = [];
    for await (const blob of container.listBlobsFlat()) left.push(blob.name);
    expect(left.sort()).toEqual(HIDDEN);
  });

  it('lists every prefix with match: all (the default), each item under its own root', async () => {
    const source = await azureBlobSource.create(
      configure(azureBlobSource, {
        connection_string: azurite.connectionString,
        container: CONTAINER,
        prefixes: ['weekly/', 'archive/2024/'],
      }),
      makePluginContext(),
    );
    const items = await collect(source.list(new AbortController().signal));
    expect(items.map((i) => `${i.root}${i.path}`).sort()).toEqual([
      'archive/2024/a.txt',
      'archive/2024/b.txt',
      'weekly/a.txt',
    ]);
  });
});
