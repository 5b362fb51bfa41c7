/** azure_blob source and sink against a real Azurite (child process, see test/servers/azurite.ts). */
import { Readable } from 'node:stream';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import type { Item, SinkInstance, SourceInstance } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { azureBlobSink } from '../../plugins/azure-blob/sink.js';
import { azureBlobSource } from '../../plugins/azure-blob/source.js';
import { makePluginContext } from '../helpers/context.js';
import {
  chunksOf,
  collect,
  configure,
  failingBody,
  ODD_NAMES,
  patternBytes,
  readAll,
  sha256,
  writeTo,
} from '../helpers/object-store.js';
import { makeWorkspace } from '../helpers/workspace.js';
import { type AzuriteHandle, startAzurite } from '../servers/azurite.js';

const CONTAINER = 'ingest';
const MiB = 1024 * 1024;
let azurite: AzuriteHandle;
let container: ContainerClient;

beforeAll(async () => {
  azurite = await startAzurite();
  container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(CONTAINER);
  await container.create();
});

afterAll(async () => {
  await azurite?.stop();
});

async function source(extra: Record<string, unknown>): Promise<SourceInstance> {
  const cfg = configure(azureBlobSource, {
    connection_string: azurite.connectionString,
    container: CONTAINER,
    ...extra,
  });
  return azureBlobSource.create(cfg, makePluginContext());
}

async function sink(extra: Record<string, unknown> = {}): Promise<SinkInstance> {
  const cfg = configure(azureBlobSink, {
    connection_string: azurite.connectionString,
    container: CONTAINER,
    ...extra,
  });
  return azureBlobSink.create(cfg, makePluginContext());
}

async function put(name: string, body: string | Buffer): Promise<void> {
  const data = Buffer.from(body);
  await container.getBlockBlobClient(name).upload(data, data.length);
}

async function get(name: string): Promise<Buffer> {
  return container.getBlobClient(name).downloadToBuffer();
}

async function namesUnder(prefix: string): Promise<string[]> {
  const names: string[] = [];
  for await (const blob of container.listBlobsFlat({ prefix })) names.push(blob.name);
  return names.sort();
}

const signal = () => new AbortController().signal;

describe('azure_blob source', () => {
  beforeAll(async () => {
    for (let i = 0; i < 7; i++) await put(`list/flat-${i}.txt`, `flat ${i}`);
    await put('list/sub/deep-1.txt', 'deep 1');
    await put('list/sub/deeper/deep-2.txt', 'deep 2');
    await put('other/one.txt', 'one');
    await put('other/one.txt.sig', 'signature');
    for (const name of ODD_NAMES) await put(`odd/${name}`, `content of ${name}`);
  });

  it('lists every blob under the prefix across pages (recursive)', async () => {
    const items = await collect((await source({ prefix: 'list/', page_size: 2 })).list(signal()));
    expect(items.map((i) => i.path).sort()).toEqual([
      ...[0, 1, 2, 3, 4, 5, 6].map((i) => `flat-${i}.txt`),
      'sub/deep-1.txt',
      'sub/deeper/deep-2.txt',
    ]);
    const first = items.find((i) => i.path === 'flat-0.txt')!;
    expect(first).toMatchObject({ size: 6, source: 'azure_blob' });
    expect(first.etag).toMatch(/^0x[0-9A-F]+$/);
    expect(first.mtime).toBeInstanceOf(Date);
    expect(first.origin).toEqual({
      kind: 'azure_blob',
      endpoint: azurite.accountUrl,
      location: { container: CONTAINER, blob: 'list/flat-0.txt' },
    });
  });

  it('lists only blobs directly under the prefix when recursive is false', async () => {
    const items = await collect(
      (await source({ prefix: 'list', recursive: false, page_size: 3 })).list(signal()),
    );
    expect(items.map((i) => i.path).sort()).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `flat-${i}.txt`));
  });

  it('opens a fresh stream each call, and companions by path', async () => {
    const src = await source({ prefix: 'other/' });
    const [one] = (await collect(src.list(signal()))).filter((i) => i.path === 'one.txt');
    expect((await readAll(await one.open())).toString()).toBe('one');
    expect((await readAll(await one.open())).toString()).toBe('one');
    expect((await readAll((await src.openPath!('one.txt.sig'))!)).toString()).toBe('signature');
    expect(await src.openPath!('missing.sig')).toBeNull();
  });

  it('lists, reads, moves and deletes blobs with spaces, quotes, %, +, #, & and non-ASCII', async () => {
    const src = await source({ prefix: 'odd/' });
    const items = await collect(src.list(signal()));
    expect(items.map((i) => i.path).sort()).toEqual([...ODD_NAMES].sort());
    for (const item of items) {
      expect((await readAll(await item.open())).toString()).toBe(`content of ${item.path}`);
    }
    for (const item of items) await src.move!(item, 'odd-done');
    expect(await namesUnder('odd/')).toEqual([]);
    for (const name of ODD_NAMES)
      expect((await get(`odd-done/${name}`)).toString()).toBe(`content of ${name}`);
    const done = await source({ prefix: 'odd-done/' });
    for (const item of await collect(done.list(signal()))) await done.remove!(item);
    expect(await namesUnder('odd-done/')).toEqual([]);
  });

  it('reports bad credentials as a non-retryable source error without the key', async () => {
    const wrongKey = Buffer.from('definitely not the account key of devstoreaccount1').toString('base64');
    const cfg = configure(azureBlobSource, {
      account: azurite.account,
      account_key: wrongKey,
      endpoint: azurite.accountUrl,
      container: CONTAINER,
    });
    const src = await azureBlobSource.create(cfg, makePluginContext());
    const err = await collect(src.list(signal())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SluiceError);
    expect((err as SluiceError).code).toBe('SLUICE_E_SOURCE');
    expect((err as SluiceError).message).toContain('403');
    expect((err as SluiceError).message).not.toContain(wrongKey);
    expect(src.isRetryable!(err)).toBe(false);
  });

  it('lists with an account key and with a container SAS URL', async () => {
    const byKey = await azureBlobSource.create(
      configure(azureBlobSource, {
        account: azurite.account,
        account_key: azurite.accountKey,
        endpoint: azurite.accountUrl,
        container: CONTAINER,
        prefix: 'other/',
      }),
      makePluginContext(),
    );
    expect((await collect(byKey.list(signal()))).map((i) => i.path).sort()).toEqual([
      'one.txt',
      'one.txt.sig',
    ]);
    const { ContainerSASPermissions } = await import('@azure/storage-blob');
    const sasUrl = await container.generateSasUrl({
      permissions: ContainerSASPermissions.parse('rl'),
      expiresOn: new Date(Date.now() + 3_600_000),
    });
    const bySas = await azureBlobSource.create(
      configure(azureBlobSource, { sas_url: sasUrl, prefix: 'other/' }),
      makePluginContext(),
    );
    const items = await collect(bySas.list(signal()));
    expect(items.map((i) => i.path).sort()).toEqual(['one.txt', 'one.txt.sig']);
    expect((await readAll(await items.find((i) => i.path === 'one.txt')!.open())).toString()).toBe('one');
  });

  it('rejects configs with no or two ways to authenticate', async () => {
    await expect(source({ connection_string: undefined })).rejects.toMatchObject({ code: 'SLUICE_E_CONFIG' });
    await expect(source({ sas_token: 'sv=2020&sig=x', account: 'a' })).rejects.toMatchObject({
      code: 'SLUICE_E_CONFIG',
    });
  });
});

describe('azure_blob sink', () => {
  it('writes a small blob and reads it back', async () => {
    const target = await sink({ prefix: 'out' });
    const commit = await writeTo(target, 'small/hello.txt', Buffer.from('hello'));
    expect(commit).toEqual({
      location: `azure://devstoreaccount1/${CONTAINER}/out/small/hello.txt`,
      size: 5,
    });
    expect((await get('out/small/hello.txt')).toString()).toBe('hello');
    expect((await readAll(await target.readBack!('small/hello.txt', signal()))).toString()).toBe('hello');
  });

  it('writes a multi-block blob whose bytes read back identical', async () => {
    const data = patternBytes(5 * MiB + 321, 11);
    const target = await sink({ prefix: 'out', block_size: '1MiB', concurrency: 3 });
    const commit = await writeTo(target, 'big/data.bin', Readable.from(chunksOf(data, 256 * 1024)));
    expect(commit.size).toBe(data.length);
    expect(sha256(await readAll(await target.readBack!('big/data.bin', signal())))).toBe(sha256(data));
    const blocks = await container.getBlockBlobClient('out/big/data.bin').getBlockList('committed');
    expect(blocks.committedBlocks).toHaveLength(6);
  });

  it('commits nothing when the body fails, keeping an existing blob intact', async () => {
    const target = await sink({ block_size: '1MiB' });
    const boom = new Error('integrity check failed at the end');
    await expect(writeTo(target, 'broken/new.bin', failingBody(3 * MiB, boom))).rejects.toBe(boom);
    expect(await container.getBlobClient('broken/new.bin').exists()).toBe(false);
    expect(await namesUnder('broken/')).toEqual([]);

    await put('broken/old.txt', 'previous version');
    await expect(writeTo(target, 'broken/old.txt', failingBody(2 * MiB, boom))).rejects.toBe(boom);
    expect((await get('broken/old.txt')).toString()).toBe('previous version');
  });

  it('if_exists: overwrite replaces, skip keeps, rename numbers', async () => {
    await put('exists/a.txt', 'old');
    await writeTo(await sink({ prefix: 'exists', if_exists: 'overwrite' }), 'a.txt', Buffer.from('new!'));
    expect((await get('exists/a.txt')).toString()).toBe('new!');

    const skipped = await writeTo(
      await sink({ prefix: 'exists', if_exists: 'skip' }),
      'a.txt',
      Buffer.from('ignored'),
    );
    expect(skipped).toMatchObject({ size: 4, skipped: true });
    expect((await get('exists/a.txt')).toString()).toBe('new!');

    const rename = await sink({ prefix: 'exists', if_exists: 'rename' });
    expect((await writeTo(rename, 'a.txt', Buffer.from('one'))).location).toMatch(/\/exists\/a \(1\)\.txt$/);
    expect((await writeTo(rename, 'a.txt', Buffer.from('two'))).location).toMatch(/\/exists\/a \(2\)\.txt$/);
    expect((await get('exists/a (2).txt')).toString()).toBe('two');
  });

  it('if_exists: fail accepts an earlier copy of the same bytes and refuses different ones', async () => {
    const fail = await sink({ prefix: 'fail', if_exists: 'fail' });
    const data = Buffer.from('the same bytes');
    await writeTo(fail, 'x.txt', data, { sha256: sha256(data) });
    expect(await writeTo(fail, 'x.txt', data)).toMatchObject({ sha256: sha256(data), skipped: true });
    await put('fail/foreign.txt', data);
    expect(await writeTo(fail, 'foreign.txt', data)).toMatchObject({ sha256: sha256(data), skipped: true });
    const err = await writeTo(fail, 'x.txt', Buffer.from('different bytes')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SLUICE_E_EXISTS' });
    expect(fail.isRetryable!(err)).toBe(false);
    expect((await get('fail/x.txt')).toString()).toBe('the same bytes');
  });

  it('stores metadata templates, computing the sha256 first when the runtime does not know it', async () => {
    const data = patternBytes(200_000, 5);
    const target = await sink({ prefix: 'meta', metadata: { source_sha256: '{sha256}', file: '{name}' } });
    await writeTo(target, 'unknown.bin', data);
    await writeTo(target, 'known.bin', data, { sha256: sha256(data) });
    for (const name of ['unknown.bin', 'known.bin']) {
      const props = await container.getBlobClient(`meta/${name}`).getProperties();
      expect(props.metadata).toEqual({
        source_sha256: sha256(data),
        sluice_sha256: sha256(data),
        file: name,
      });
    }
  });

  it('rejects metadata names that are not C# identifiers', () => {
    expect(() =>
      configure(azureBlobSink, {
        connection_string: azurite.connectionString,
        container: CONTAINER,
        metadata: { 'source-sha256': '{sha256}' },
      }),
    ).toThrow(/metadata/);
  });

  it('creates a missing container only when asked', async () => {
    const missing = { container: 'made-by-sluice' };
    const without = await sink(missing);
    await expect(writeTo(without, 'x.txt', Buffer.from('x'))).rejects.toMatchObject({
      code: 'SLUICE_E_SINK',
    });
    const withCreate = await sink({ ...missing, create_container: true });
    expect((await writeTo(withCreate, 'x.txt', Buffer.from('x'))).size).toBe(1);
  });

  it('removes a committed blob', async () => {
    const target = await sink({ prefix: 'rm' });
    await writeTo(target, 'gone.txt', Buffer.from('bye'));
    await target.remove!('gone.txt');
    expect(await container.getBlobClient('rm/gone.txt').exists()).toBe(false);
  });

  it('copies untouched items of the same account server-side, then the source deletes them', async () => {
    const names = ['CHARGINGCDR_A-20240131-07.dat', 'CHARGINGCDR_ü #1+2%.dat'];
    for (const name of names) await put(`incoming/${name}`, `cdr ${name}`);
    const src = await source({ prefix: 'incoming/', recursive: false });
    const target = await sink();
    for (const item of await collect(src.list(signal()))) {
      const commit = await target.copy!(item, `segregated/2024/01/31/${item.path}`, signal());
      expect(commit).toMatchObject({ size: item.size });
      await src.remove!(item);
    }
    for (const name of names) {
      const copied = container.getBlobClient(`segregated/2024/01/31/${name}`);
      const props = await copied.getProperties();
      expect(props.copyStatus).toBe('success'); // made by Copy Blob, not by an upload
      expect((await copied.downloadToBuffer()).toString()).toBe(`cdr ${name}`);
    }
    expect(await namesUnder('incoming/')).toEqual([]);

    const foreign = {
      source: 'x',
      path: 'a',
      checksums: {},
      meta: {},
      open: async () => Readable.from([]),
    } as Item;
    expect(await target.copy!(foreign, 'a', signal())).toBeNull();
    const otherAccount = {
      ...foreign,
      origin: { kind: 'azure_blob', endpoint: 'https://x.blob.core.windows.net', location: {} },
    };
    expect(await target.copy!(otherAccount, 'a', signal())).toBeNull();
  });
});

describe('azure_blob pipelines through the runtime', () => {
  it('lands local files with sha256 verification, then archives them server-side with move_to', async () => {
    const ws = makeWorkspace();
    try {
      const data = patternBytes(3 * MiB + 17, 8);
      ws.write('exports/a/report.bin', data);
      ws.write('exports/b ü.txt', 'small one');
      const connection = [
        `    connection_string: "${azurite.connectionString}"`,
        `    container: ${CONTAINER}`,
      ];
      const land = ws.pipeline(
        [
          'name: land',
          'source:',
          '  local: { path: ./exports }',
          'sink:',
          '  azure_blob:',
          ...connection,
          '    prefix: partners/',
          '    block_size: 1MiB',
          '    verify: sha256',
        ].join('\n'),
        'land.yaml',
      );
      expect(await runPipelineFile(land)).toMatchObject({ ok: 2, failed: 0 });
      expect(sha256(await get('partners/a/report.bin'))).toBe(sha256(data));

      const archive = ws.pipeline(
        [
          'name: archive',
          'source:',
          '  azure_blob:',
          ...connection,
          '    prefix: partners/',
          '    after_success: { move_to: partners-done/ }',
          'sink:',
          '  azure_blob:',
          ...connection,
          '    prefix: archive/',
        ].join('\n'),
        'archive.yaml',
      );
      expect(await runPipelineFile(archive)).toMatchObject({ ok: 2, failed: 0 });
      for (const name of ['a/report.bin', 'b ü.txt']) {
        const props = await container.getBlobClient(`archive/${name}`).getProperties();
        expect(props.copyStatus).toBe('success');
        expect(await container.getBlobClient(`partners-done/${name}`).exists()).toBe(true);
      }
      expect(await namesUnder('partners/')).toEqual([]);
      expect(sha256(await get('archive/a/report.bin'))).toBe(sha256(data));
    } finally {
      ws.cleanup();
    }
  });
});
