/**
 * The azure_blob source's tidy-up deletes go out batched (Blob Batch) against a real Azurite,
 * seen through a counting HTTP proxy: fewer requests, each blob still deleted only while it is the
 * listed version (If-Match per sub-request) and settled by its own sub-response, and one delete
 * per blob again when the service refuses batches.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SourceInstance } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { azureBlobSource } from '../../plugins/azure-blob/source.js';
import { makePluginContext } from '../helpers/context.js';
import { collect, configure, ODD_NAMES } from '../helpers/object-store.js';
import { makeWorkspace } from '../helpers/workspace.js';
import { type AzuriteHandle, startAzurite } from '../servers/azurite.js';

const CONTAINER = 'batchdel';
let azurite: AzuriteHandle;
let container: ContainerClient;

/** An HTTP proxy in front of Azurite that records each request and can refuse batch requests. */
interface CountingProxy {
  connectionString: string;
  requests: { method: string; url: string }[];
  /** Answer `comp=batch` requests with this status (as a service without Blob Batch would). */
  refuseBatch?: number;
  stop(): Promise<void>;
}
let proxy: CountingProxy;

async function startCountingProxy(target: AzuriteHandle): Promise<CountingProxy> {
  const to = new URL(target.accountUrl);
  const state: CountingProxy = {
    connectionString: '',
    requests: [],
    stop: async () => {},
  };
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    state.requests.push({ method: req.method ?? '', url });
    if (state.refuseBatch !== undefined && /[?&]comp=batch(&|$)/.test(url)) {
      req.resume();
      res.writeHead(state.refuseBatch, {
        'content-type': 'application/xml',
        'x-ms-error-code': 'InvalidQueryParameterValue',
      });
      res.end(
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidQueryParameterValue</Code><Message>Value for one of the query parameters specified in the request URI is invalid.</Message></Error>',
      );
      return;
    }
    const upstream = request(
      { host: to.hostname, port: to.port, method: req.method, path: url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  state.connectionString = target.connectionString.replace(
    /BlobEndpoint=[^;]+;/,
    `BlobEndpoint=http://127.0.0.1:${port}/${target.account};`,
  );
  state.stop = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

beforeAll(async () => {
  azurite = await startAzurite();
  container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(CONTAINER);
  await container.create();
  proxy = await startCountingProxy(azurite);
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  await azurite?.stop();
});

beforeEach(() => {
  proxy.requests.length = 0;
  proxy.refuseBatch = undefined;
});

const signal = () => new AbortController().signal;

async function source(prefix: string, batch = true): Promise<SourceInstance> {
  return azureBlobSource.create(
    configure(azureBlobSource, {
      connection_string: proxy.connectionString,
      container: CONTAINER,
      prefix,
      after_success: 'delete',
      batch_deletes: batch,
    }),
    makePluginContext(),
  );
}

async function put(name: string, body: string): Promise<void> {
  await container.getBlockBlobClient(name).upload(body, Buffer.byteLength(body));
}

async function get(name: string): Promise<string | null> {
  try {
    return (await container.getBlobClient(name).downloadToBuffer()).toString();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

/** The requests through the proxy that are Blob Batch requests / single Delete Blob requests. */
function deleteRequests() {
  return {
    batches: proxy.requests.filter((r) => r.method === 'POST' && /[?&]comp=batch(&|$)/.test(r.url)),
    singles: proxy.requests.filter((r) => r.method === 'DELETE'),
  };
}

describe('azure_blob source: batched after_success deletes', () => {
  it('without batch_deletes (the default), deletes one blob a request as before', async () => {
    for (const name of ['a.txt', 'b.txt', 'c.txt']) await put(`single/${name}`, `bytes of ${name}`);
    const src = await source('single/', false);
    const items = await collect(src.list(signal()));
    proxy.requests.length = 0;
    await Promise.all(items.map((item) => src.remove!(item)));
    await src.close?.();
    expect(deleteRequests()).toMatchObject({ batches: [], singles: { length: 3 } });
    expect(await get('single/a.txt')).toBeNull();
  });

  it('a pipeline deletes many blobs with far fewer requests than blobs, and none one by one', async () => {
    const names = Array.from({ length: 60 }, (_, i) => `f-${String(i).padStart(2, '0')}.dat`);
    for (const name of names) await put(`many/${name}`, `payload ${name}`);
    const ws = makeWorkspace();
    try {
      const file = ws.pipeline(
        [
          'name: azure-batch-delete',
          'source:',
          '  azure_blob:',
          `    connection_string: "${proxy.connectionString}"`,
          `    container: ${CONTAINER}`,
          '    prefix: many/',
          '    after_success: delete',
          '    batch_deletes: true',
          'sink:',
          '  local:',
          `    path: ${ws.path('out')}`,
          'policy:',
          '  concurrency: 16',
        ].join('\n'),
      );
      const summary = await runPipelineFile(file);
      expect(summary).toMatchObject({ ok: 60, failed: 0 });
      const { batches, singles } = deleteRequests();
      // Without batching: 60 Delete Blob requests. How the 60 split into batches depends on timing.
      expect(singles).toEqual([]);
      expect(batches.length).toBeGreaterThanOrEqual(1);
      expect(batches.length).toBeLessThan(60);
      for (const name of names) {
        expect(await get(`many/${name}`)).toBeNull();
        expect(ws.read(`out/${name}`)).toBe(`payload ${name}`);
      }
    } finally {
      ws.cleanup();
    }
  });

  it('leaves a blob replaced after listing with its new content (SLUICE_E_CHANGED), deletes the others of its batch', async () => {
    const names = ['a.txt', 'b.txt', 'changed.txt', 'sub/deep.txt', ...ODD_NAMES];
    for (const name of names) await put(`changed/${name}`, `version 1 of ${name}`);
    const src = await source('changed/');
    const items = await collect(src.list(signal()));
    expect(items).toHaveLength(names.length);
    await put('changed/changed.txt', 'version 2, never delivered');
    proxy.requests.length = 0;
    const results = await Promise.allSettled(items.map((item) => src.remove!(item)));
    await src.close?.();
    for (const [i, item] of items.entries()) {
      if (item.path === 'changed.txt') {
        expect(results[i]).toMatchObject({ status: 'rejected', reason: { code: 'SLUICE_E_CHANGED' } });
        expect((results[i] as PromiseRejectedResult).reason.message).toContain(
          `/${CONTAINER}/changed/changed.txt was not deleted`,
        );
      } else {
        expect(results[i].status, item.path).toBe('fulfilled');
        expect(await get(`changed/${item.path}`), item.path).toBeNull();
      }
    }
    expect(await get('changed/changed.txt')).toBe('version 2, never delivered');
    const { batches, singles } = deleteRequests();
    expect(singles).toEqual([]);
    expect(batches).toHaveLength(1);
  });

  it("settles each blob of one batch by its own sub-response: deleted, gone, changed, the service's refusal", async () => {
    const names = ['ok-1.txt', 'gone.txt', 'changed.txt', 'snapshotted.txt', 'ok-2.txt'];
    for (const name of names) await put(`mixed/${name}`, `version 1 of ${name}`);
    const src = await source('mixed/');
    const items = await collect(src.list(signal()));
    expect(items.map((i) => i.path).sort()).toEqual([...names].sort());
    // After listing: one blob deleted by someone else, one replaced, one given a snapshot (a
    // delete without `deleteSnapshots` is refused for it: 409 SnapshotsPresent).
    await container.getBlobClient('mixed/gone.txt').delete();
    await put('mixed/changed.txt', 'version 2 of changed.txt');
    await container.getBlobClient('mixed/snapshotted.txt').createSnapshot();
    proxy.requests.length = 0;
    const results = await Promise.allSettled(items.map((item) => src.remove!(item)));
    await src.close?.();
    const byPath = Object.fromEntries(items.map((item, i) => [item.path, results[i]]));
    expect(byPath['ok-1.txt'].status).toBe('fulfilled');
    expect(byPath['ok-2.txt'].status).toBe('fulfilled');
    expect(byPath['gone.txt'].status).toBe('fulfilled');
    expect(byPath['changed.txt']).toMatchObject({ status: 'rejected', reason: { code: 'SLUICE_E_CHANGED' } });
    expect(byPath['snapshotted.txt']).toMatchObject({
      status: 'rejected',
      reason: { code: 'SLUICE_E_SOURCE', retryable: false },
    });
    expect((byPath['snapshotted.txt'] as PromiseRejectedResult).reason.message).toMatch(
      /cannot delete azure:\/\/.*\/mixed\/snapshotted\.txt: 409 SnapshotsPresent/,
    );
    expect(await get('mixed/ok-1.txt')).toBeNull();
    expect(await get('mixed/ok-2.txt')).toBeNull();
    expect(await get('mixed/changed.txt')).toBe('version 2 of changed.txt');
    expect(await get('mixed/snapshotted.txt')).toBe('version 1 of snapshotted.txt');
    const { batches, singles } = deleteRequests();
    expect(batches).toHaveLength(1);
    expect(singles).toEqual([]);
  });

  it('deletes one by one, for good, when the service refuses batch requests', async () => {
    const names = ['r-1.txt', 'r-2.txt', 'r-3.txt', 'r-changed.txt'];
    for (const name of names) await put(`refused/${name}`, `version 1 of ${name}`);
    proxy.refuseBatch = 400;
    const src = await source('refused/');
    const items = await collect(src.list(signal()));
    await put('refused/r-changed.txt', 'version 2 of r-changed.txt');
    proxy.requests.length = 0;
    const results = await Promise.allSettled(items.map((item) => src.remove!(item)));
    const byPath = Object.fromEntries(items.map((item, i) => [item.path, results[i]]));
    for (const name of ['r-1.txt', 'r-2.txt', 'r-3.txt']) {
      expect(byPath[name].status, name).toBe('fulfilled');
      expect(await get(`refused/${name}`)).toBeNull();
    }
    expect(byPath['r-changed.txt']).toMatchObject({
      status: 'rejected',
      reason: { code: 'SLUICE_E_CHANGED' },
    });
    expect(await get('refused/r-changed.txt')).toBe('version 2 of r-changed.txt');
    expect(deleteRequests().batches).toHaveLength(1);
    expect(deleteRequests().singles).toHaveLength(4);
    // From then on, no batch is tried.
    await put('refused/later.txt', 'later');
    const [later] = (await collect(src.list(signal()))).filter((i) => i.path === 'later.txt');
    await src.remove!(later);
    await src.close?.();
    expect(await get('refused/later.txt')).toBeNull();
    expect(deleteRequests().batches).toHaveLength(1);
    expect(deleteRequests().singles).toHaveLength(5);
  });
});
