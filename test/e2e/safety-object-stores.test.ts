/**
 * Data safety of the object-store connectors (issue 11), on S3 (s3rver) and Azure Blob
 * (Azurite) alike: a key is one name, tidy-up acts on the listed version only, and a renaming
 * sink reserves the name it takes and reports it.
 */
import { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { Type } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { deriveItem } from '../../core/item.js';
import { definePlugin, type Item, type SinkInstance, type SourceInstance } from '../../core/plugin-api.js';
import { PluginRegistry } from '../../core/registry.js';
import { runPipelineFile } from '../../core/sdk.js';
import { azureBlobSink } from '../../plugins/azure-blob/sink.js';
import { azureBlobSource } from '../../plugins/azure-blob/source.js';
import { builtinPlugins } from '../../plugins/index.js';
import { s3Sink } from '../../plugins/s3/sink.js';
import { s3Source } from '../../plugins/s3/source.js';
import { makePluginContext } from '../helpers/context.js';
import { collect, configure, readAll } from '../helpers/object-store.js';
import { makeWorkspace } from '../helpers/workspace.js';
import { type AzuriteHandle, startAzurite } from '../servers/azurite.js';
import { type S3rverHandle, s3Client, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-safety';
let s3rver: S3rverHandle;
let s3: S3Client;
let azurite: AzuriteHandle;
let container: ContainerClient;

beforeAll(async () => {
  [s3rver, azurite] = await Promise.all([startS3rver({ logRequests: false }), startAzurite()]);
  await s3rver.createBucket(BUCKET);
  s3 = s3Client(s3rver);
  container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(BUCKET);
  await container.create();
}, 60_000);

afterAll(async () => {
  s3?.destroy();
  await Promise.all([s3rver?.stop(), azurite?.stop()]);
});

/** One connector as the tests drive it: its plugins, its connection, direct object access. */
interface Store {
  name: 's3' | 'azure_blob';
  /** Bad keys this server can hold exactly (s3rver keeps objects in files: `a//b` is `a/b` there). */
  badKeys: string[];
  /** When the server honours If-None-Match: * on a write (s3rver ignores it). */
  exclusiveWrites: boolean;
  connection(): Record<string, unknown>;
  source(extra: Record<string, unknown>): Promise<SourceInstance>;
  sink(extra: Record<string, unknown>): Promise<SinkInstance>;
  put(key: string, body: string): Promise<void>;
  /** The object's bytes, or null when there is none. */
  get(key: string): Promise<string | null>;
}

const s3Store: Store = {
  name: 's3',
  badKeys: ['e\\f.txt', 'g\u0001h.txt'],
  exclusiveWrites: false,
  connection: () => ({
    bucket: BUCKET,
    endpoint: s3rver.endpoint,
    access_key_id: s3rver.credentials.accessKeyId,
    secret_access_key: s3rver.credentials.secretAccessKey,
  }),
  source: async (extra) =>
    s3Source.create(configure(s3Source, { ...s3Store.connection(), ...extra }), makePluginContext()),
  sink: async (extra) =>
    s3Sink.create(configure(s3Sink, { ...s3Store.connection(), ...extra }), makePluginContext()),
  async put(key, body) {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
  },
  async get(key) {
    try {
      const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      return (await readAll(res.Body as Readable)).toString();
    } catch {
      return null;
    }
  },
};

const azureStore: Store = {
  name: 'azure_blob',
  // Azurite answers a listing holding a control character with a 500, and the SDK sends `\\` as
  // `/` (URL rules), so neither is here.
  badKeys: ['a//b.txt', '/lead.txt'],
  exclusiveWrites: true,
  connection: () => ({ connection_string: azurite.connectionString, container: BUCKET }),
  source: async (extra) =>
    azureBlobSource.create(
      configure(azureBlobSource, { ...azureStore.connection(), ...extra }),
      makePluginContext(),
    ),
  sink: async (extra) =>
    azureBlobSink.create(
      configure(azureBlobSink, { ...azureStore.connection(), ...extra }),
      makePluginContext(),
    ),
  async put(key, body) {
    await container.getBlockBlobClient(key).upload(body, Buffer.byteLength(body));
  },
  async get(key) {
    try {
      return (await container.getBlobClient(key).downloadToBuffer()).toString();
    } catch {
      return null;
    }
  },
};

const signal = () => new AbortController().signal;

/** The connection keys of a store as YAML lines under its plugin key. */
function yamlConnection(store: Store, indent: string): string[] {
  return Object.entries(store.connection()).map(([k, v]) => `${indent}${k}: ${JSON.stringify(v)}`);
}

/** Body of a sink write the way the runtime makes it. */
function writeRequest(destination: string, body: string, reserve?: (d: string) => Promise<void>) {
  const item = {
    source: 'test',
    path: destination,
    checksums: {},
    meta: {},
    open: async () => Readable.from([]),
  } as Item;
  return {
    item,
    destination,
    body: Readable.from([Buffer.from(body)]),
    size: Buffer.byteLength(body),
    signal: signal(),
    reserve,
  };
}

describe.each([s3Store, azureStore])('$name: a key is one name', (store) => {
  const prefix = `names-${store.name}/`;

  it('lists a key that is not exactly a safe relative path as a rejected item, never opened', async () => {
    await store.put(`${prefix}a/b.txt`, 'the plain a/b.txt');
    for (const key of store.badKeys) await store.put(prefix + key, `bad ${key}`);
    const src = await store.source({ prefix });
    const items = await collect(src.list(signal()));
    const plain = items.filter((i) => i.rejected === undefined);
    const rejected = items.filter((i) => i.rejected !== undefined);
    expect(plain.map((i) => i.path)).toEqual(['a/b.txt']);
    expect(rejected).toHaveLength(store.badKeys.length);
    for (const item of rejected) {
      expect(item.path).not.toBe('a/b.txt');
      expect(item.path).not.toBe('lead.txt');
      expect(item.path).not.toMatch(/[\u0000-\u001f\\]/);
      expect(item.origin).toBeUndefined();
      await expect(item.open()).rejects.toMatchObject({ code: 'SLUICE_E_NAME' });
    }
    expect(rejected.map((i) => i.rejected).join('\n')).toMatch(/cannot be processed safely/);
    // A path that is not a safe key opens nothing (no companion or revived item can alias one).
    expect(await src.openPath!('a//b.txt')).toBeNull();
    expect(await src.openPath!('x/../a/b.txt')).toBeNull();
    await src.close?.();
  });

  it('a pipeline delivers and deletes the plain key, reports the bad ones and leaves them in place', async () => {
    const run = `run-${store.name}/`;
    await store.put(`${run}a/b.txt`, 'the plain a/b.txt');
    for (const key of store.badKeys) await store.put(run + key, `bad ${key}`);
    const ws = makeWorkspace();
    try {
      const file = ws.pipeline(
        [
          'name: names',
          'source:',
          `  ${store.name}:`,
          ...yamlConnection(store, '    '),
          `    prefix: ${run}`,
          '    after_success: delete',
          'sink:',
          '  local: { path: ./out }',
        ].join('\n'),
      );
      const summary = await runPipelineFile(file);
      expect(summary).toMatchObject({ ok: 1, failed: store.badKeys.length });
      expect(ws.files('out')).toEqual(['a/b.txt']);
      expect(ws.read('out/a/b.txt')).toBe('the plain a/b.txt');
      expect(await store.get(`${run}a/b.txt`)).toBeNull();
      for (const key of store.badKeys) expect(await store.get(run + key)).toBe(`bad ${key}`);
    } finally {
      ws.cleanup();
    }
  });
});

describe.each([s3Store, azureStore])('$name: tidy-up acts on the listed version only', (store) => {
  const prefix = `tidy-${store.name}/`;

  it('remove() throws SLUICE_E_CHANGED and keeps an object overwritten after listing', async () => {
    await store.put(`${prefix}del/big.bin`, 'version 1');
    const src = await store.source({ prefix: `${prefix}del/` });
    const [item] = await collect(src.list(signal()));
    await store.put(`${prefix}del/big.bin`, 'version 2, never delivered');
    const err = await src.remove!(item!).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SluiceError);
    expect(err).toMatchObject({ code: 'SLUICE_E_CHANGED', retryable: false });
    expect(await store.get(`${prefix}del/big.bin`)).toBe('version 2, never delivered');
    // The listed version itself is deleted; one already gone is not an error.
    const [fresh] = await collect(src.list(signal()));
    await src.remove!(fresh!);
    expect(await store.get(`${prefix}del/big.bin`)).toBeNull();
    await src.remove!(fresh!);
    await src.close?.();
  });

  it('move() copies nothing and deletes nothing when the object changed after listing', async () => {
    await store.put(`${prefix}mv/report.csv`, 'version 1');
    const src = await store.source({ prefix: `${prefix}mv/` });
    const [item] = await collect(src.list(signal()));
    await store.put(`${prefix}mv/report.csv`, 'version 2');
    await expect(src.move!(item!, `${prefix}done/`)).rejects.toMatchObject({ code: 'SLUICE_E_CHANGED' });
    expect(await store.get(`${prefix}mv/report.csv`)).toBe('version 2');
    expect(await store.get(`${prefix}done/report.csv`)).toBeNull();
    await src.close?.();
  });

  it('a pipeline keeps the newer version a producer wrote after the copy, and reports the item delivered', async () => {
    const run = `${prefix}run/`;
    await store.put(`${run}inbox.csv`, 'version 1');
    // A step that, once it has the bytes, plays the producer replacing the file.
    const overwrite = definePlugin({
      name: 'replace_at_source',
      kind: 'step',
      summary: 'test: the producer replaces the source object while the item is in flight',
      config: Type.Object({}),
      create: () => ({
        async process(item: Item) {
          const bytes = await readAll(await item.open());
          await store.put(`${run}${item.path}`, 'version 2, never delivered');
          return deriveItem(item, { open: async () => Readable.from([bytes]), size: bytes.length });
        },
      }),
    });
    const ws = makeWorkspace();
    try {
      const file = ws.pipeline(
        [
          'name: versions',
          'source:',
          `  ${store.name}:`,
          ...yamlConnection(store, '    '),
          `    prefix: ${run}`,
          '    after_success: delete',
          'steps:',
          '  - replace_at_source: {}',
          'sink:',
          '  local: { path: ./out }',
        ].join('\n'),
      );
      const summary = await runPipelineFile(file, {
        registry: new PluginRegistry([...builtinPlugins, overwrite]),
      });
      expect(summary).toMatchObject({ ok: 1, failed: 0 });
      expect(ws.read('out/inbox.csv')).toBe('version 1');
      expect(await store.get(`${run}inbox.csv`)).toBe('version 2, never delivered');
    } finally {
      ws.cleanup();
    }
  });
});

describe.each([s3Store, azureStore])('$name: sink commits', (store) => {
  const prefix = `sink-${store.name}/`;

  it('rename reserves the name it takes and reports it as the destination, with the stored size', async () => {
    await store.put(`${prefix}report.csv`, 'already there');
    const target = await store.sink({ prefix, if_exists: 'rename' });
    const reserved: string[] = [];
    const reserve = async (d: string) => {
      reserved.push(d);
    };
    const commit = await target.write(writeRequest('report.csv', 'new bytes', reserve));
    expect(reserved).toEqual(['report (1).csv']);
    expect(commit).toMatchObject({ destination: 'report (1).csv', size: 9 });
    expect(await store.get(`${prefix}report (1).csv`)).toBe('new bytes');
    expect(await store.get(`${prefix}report.csv`)).toBe('already there');
    // A free plain name is reserved too, and the commit names no other destination.
    reserved.length = 0;
    const plain = await target.write(writeRequest('fresh.csv', 'fresh', reserve));
    expect(reserved).toEqual(['fresh.csv']);
    expect(plain.destination).toBeUndefined();
    expect(plain.size).toBe(5);
    await target.close?.();
  });

  it('a reservation that fails stops the write before anything is visible', async () => {
    const target = await store.sink({ prefix, if_exists: 'rename' });
    const refused = new SluiceError('SLUICE_E_FENCED', 'lost the job');
    await expect(
      target.write(writeRequest('fenced.csv', 'bytes', async () => Promise.reject(refused))),
    ).rejects.toBe(refused);
    expect(await store.get(`${prefix}fenced.csv`)).toBeNull();
    await target.close?.();
  });

  it('skip reports the existing object’s size', async () => {
    await store.put(`${prefix}kept.csv`, 'twelve bytes');
    const target = await store.sink({ prefix, if_exists: 'skip' });
    const commit = await target.write(writeRequest('kept.csv', 'other'));
    expect(commit).toMatchObject({ skipped: true, size: 12 });
    await target.close?.();
  });

  it('a server-side copy with rename reserves the name it takes and reports it', async () => {
    await store.put(`${prefix}src/x.csv`, 'x');
    await store.put(`${prefix}dst/x.csv`, 'taken');
    const src = await store.source({ prefix: `${prefix}src/` });
    const [item] = await collect(src.list(signal()));
    const renaming = await store.sink({ prefix: `${prefix}dst/`, if_exists: 'rename' });
    const reserved: string[] = [];
    const reserve = async (name: string) => {
      reserved.push(name);
    };
    expect(await renaming.copy!(item!, 'x.csv', signal(), reserve)).toMatchObject({
      destination: 'x (1).csv',
      size: 1,
    });
    expect(reserved).toEqual(['x (1).csv']);
    expect(await store.get(`${prefix}dst/x (1).csv`)).toBe('x');
    expect(await store.get(`${prefix}dst/x.csv`)).toBe('taken');
    const overwriting = await store.sink({ prefix: `${prefix}dst/` });
    expect(await overwriting.copy!(item!, 'x.csv', signal())).toMatchObject({ size: 1 });
    await Promise.all([src.close?.(), renaming.close?.(), overwriting.close?.()]);
  });

  it('a server-side copy of an object replaced since listing copies nothing', async () => {
    await store.put(`${prefix}pin/y.csv`, 'version 1');
    const src = await store.source({ prefix: `${prefix}pin/` });
    const [item] = await collect(src.list(signal()));
    await store.put(`${prefix}pin/y.csv`, 'version 2');
    const target = await store.sink({ prefix: `${prefix}pinned/` });
    const outcome = await target.copy!(item!, 'y.csv', signal()).catch((e: unknown) => e);
    if (store.name === 's3') {
      // s3rver ignores CopySourceIfMatch: the copy lands, and the ETag it reports is not the
      // listed one, so the size is asked — what the runtime then compares with the listing.
      expect(outcome).toMatchObject({ size: 'version 2'.length });
    } else {
      expect(outcome).toMatchObject({ code: 'SLUICE_E_SINK' });
      expect(await store.get(`${prefix}pinned/y.csv`)).toBeNull();
    }
    await Promise.all([src.close?.(), target.close?.()]);
  });

  it.runIf(store.exclusiveWrites)(
    'an object created between the check and the commit is not replaced',
    async () => {
      const target = await store.sink({ prefix, if_exists: 'rename' });
      // The reservation is the last step before the upload: create the object there, as a racing writer would.
      const racer = async (d: string) => store.put(prefix + d, 'the other writer');
      const err = await target.write(writeRequest('race.csv', 'mine', racer)).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'SLUICE_E_SINK', retryable: true });
      expect(await store.get(`${prefix}race.csv`)).toBe('the other writer');
      await target.close?.();
    },
  );

  it('a pipeline with if_exists: rename writes the numbered name and keeps the existing object', async () => {
    const run = `${prefix}run/`;
    await store.put(`${run}daily.csv`, 'yesterday');
    const ws = makeWorkspace();
    try {
      ws.write('in/daily.csv', 'today');
      const file = ws.pipeline(
        [
          'name: renames',
          'source:',
          '  local: { path: ./in }',
          'sink:',
          `  ${store.name}:`,
          ...yamlConnection(store, '    '),
          `    prefix: ${run}`,
          '    if_exists: rename',
        ].join('\n'),
      );
      expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 0 });
      expect(await store.get(`${run}daily.csv`)).toBe('yesterday');
      expect(await store.get(`${run}daily (1).csv`)).toBe('today');
    } finally {
      ws.cleanup();
    }
  });
});

// s3rver ignores If-Match on GET (the S3 source asks it; AWS honours it), so this runs on Azurite.
describe('azure_blob: an item re-opened by path elsewhere (pool thread, cluster worker)', () => {
  const prefix = 'reopen-azure_blob/';

  it('reads only the listed version: a blob replaced since the listing fails the read', async () => {
    await azureStore.put(`${prefix}r.csv`, 'version 1');
    const src = await azureStore.source({ prefix });
    expect(src.pinsVersions).toBe(true);
    const [item] = await collect(src.list(signal()));
    const listed = await src.openPath!('r.csv', signal(), undefined, { etag: item!.etag });
    expect((await readAll(listed!)).toString()).toBe('version 1');
    await azureStore.put(`${prefix}r.csv`, 'version 2, not under the listed identity');
    const err = await src.openPath!('r.csv', signal(), undefined, { etag: item!.etag }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SluiceError);
    // Without a version it reads what is there now (a companion, a ready marker).
    expect((await readAll((await src.openPath!('r.csv', signal()))!)).toString()).toBe(
      'version 2, not under the listed identity',
    );
    await src.close?.();
  });
});
