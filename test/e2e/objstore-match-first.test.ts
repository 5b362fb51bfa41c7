/**
 * `match: first` over several prefixes of the s3 and azure_blob sources, against real s3rver and
 * Azurite: a relative path is taken from the first prefix that has it; the same path under later
 * prefixes is not processed. (`match: first` keeps its sources: with delete or move_to the next
 * pass would take a hidden copy and deliver it over the winner, so validate refuses that.)
 */
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { azureBlobSource } from '../../plugins/azure-blob/source.js';
import { s3Source } from '../../plugins/s3/source.js';
import { makePluginContext } from '../helpers/context.js';
import { collect, configure } from '../helpers/object-store.js';
import { useObjectStoreServers } from '../helpers/object-store-servers.js';
import { makeWorkspace } from '../helpers/workspace.js';

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

const servers = useObjectStoreServers({ bucket: BUCKET, container: CONTAINER });

/** Runs source → local ./out; returns what reached ./out. */
async function runFirstMatch(
  source: string[],
  env: Record<string, string> = {},
): Promise<{ ok: number; failed: number; out: Record<string, string> }> {
  const ws = makeWorkspace();
  try {
    const file = ws.pipeline(
      ['name: first', 'source:', ...source, 'sink:', '  local: { path: ./out }'].join('\n'),
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

  it('takes each path from the first prefix that has it, and does not process the hidden ones', async () => {
    for (const [key, body] of Object.entries(OBJECTS))
      await servers.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    const source = await s3Source.create(
      configure(s3Source, {
        bucket: BUCKET,
        endpoint: servers.s3.endpoint,
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

    const result = await runFirstMatch([...lines, '    match: first'], { S3_ENDPOINT: servers.s3.endpoint });
    expect(result).toEqual({ ok: 3, failed: 0, out: EXPECTED_OUT });
    const left = await servers.client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    expect((left.Contents ?? []).map((o) => o.Key).sort()).toEqual(Object.keys(OBJECTS).sort());
  });
});

describe('match: first on azure_blob', () => {
  it('takes each path from the first prefix that has it, and does not process the hidden ones', async () => {
    for (const [name, body] of Object.entries(OBJECTS))
      await servers.container.getBlockBlobClient(name).upload(body, body.length);
    const result = await runFirstMatch([
      '  azure_blob:',
      `    connection_string: "${servers.azurite.connectionString}"`,
      `    container: ${CONTAINER}`,
      `    prefixes: ${PREFIXES}`,
      '    match: first',
    ]);
    expect(result).toEqual({ ok: 3, failed: 0, out: EXPECTED_OUT });
    const left: string[] = [];
    for await (const blob of servers.container.listBlobsFlat()) left.push(blob.name);
    expect(left.sort()).toEqual(Object.keys(OBJECTS).sort());
  });

  it('lists every prefix with match: all (the default), each item under its own root', async () => {
    const source = await azureBlobSource.create(
      configure(azureBlobSource, {
        connection_string: servers.azurite.connectionString,
        container: CONTAINER,
        prefixes: ['weekly/', 'archive/2024/'],
      }),
      makePluginContext(),
    );
    const items = await collect(source.list(new AbortController().signal));
    expect(items.map((i) => `${i.root}${i.path}`).sort()).toEqual([
      'archive/2024/a.txt',
      'archive/2024/b.txt',
      'archive/2024/c.txt',
      'weekly/a.txt',
      'weekly/b.txt',
    ]);
  });
});

describe('the root of an item of a multi-prefix s3 source', () => {
  it("a ready marker under one prefix neither releases another prefix's file of that path nor is tidied for it", async () => {
    const bucket = 'sluice-roots';
    const { CreateBucketCommand, DeleteObjectCommand } = await import('@aws-sdk/client-s3');
    await servers.client.send(new CreateBucketCommand({ Bucket: bucket }));
    const put = (Key: string, Body: string) =>
      servers.client.send(new PutObjectCommand({ Bucket: bucket, Key, Body }));
    await put('today/x.csv.done', '');
    await put('retry/x.csv', 'x in retry, its marker not there yet');
    await put('retry/y.csv', 'y in retry');
    await put('retry/y.csv.done', '');
    const ws = makeWorkspace();
    try {
      const file = ws.pipeline(
        [
          'name: roots',
          'source:',
          '  s3:',
          `    bucket: ${bucket}`,
          '    endpoint: ${S3_ENDPOINT}',
          '    access_key_id: S3RVER',
          '    secret_access_key: S3RVER',
          '    prefixes: [today/, retry/]',
          '    ready: { marker: "{path}.done" }',
          '    after_success: delete',
          'sink:',
          '  local: { path: ./out }',
        ].join('\n'),
      );
      const summary = await runPipelineFile(file, {
        env: { ...process.env, S3_ENDPOINT: servers.s3.endpoint },
      });
      expect(summary).toMatchObject({ ok: 1, failed: 0 });
      expect(ws.files('out')).toEqual(['y.csv']);
      const left = await servers.client.send(new ListObjectsV2Command({ Bucket: bucket }));
      // y and its own marker went; x waits for its marker; today's marker is not x's and stays.
      expect((left.Contents ?? []).map((o) => o.Key).sort()).toEqual(['retry/x.csv', 'today/x.csv.done']);
      for (const o of left.Contents ?? [])
        await servers.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
    } finally {
      ws.cleanup();
    }
  });
});
