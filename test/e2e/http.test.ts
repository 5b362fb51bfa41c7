/** http source and sink against a real node:http REST server (test/servers/rest-api.ts). */
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { isRetryableByDefault, SluiceError } from '../../core/errors.js';
import type { Item, SinkInstance, SourceInstance } from '../../core/plugin-api.js';
import { httpSink } from '../../plugins/http/sink.js';
import { httpSource } from '../../plugins/http/source.js';
import { makePluginContext } from '../helpers/context.js';
import { collect, configure, failingBody, patternBytes, readAll, sha256 } from '../helpers/object-store.js';
import { type FaultProxy, startFaultProxy } from '../servers/fault-proxy.js';
import { type RestApi, startRestApi } from '../servers/rest-api.js';

const TOKEN = 'datahub-test-token-5f2c';
const MiB = 1024 * 1024;
const JUNE = new Date('2023-06-15T10:00:00Z');
const BIG = patternBytes(3 * MiB + 123, 11);

let api: RestApi;
const instances: { close?(): Promise<void> }[] = [];

beforeAll(async () => {
  api = await startRestApi({ token: TOKEN, pageSize: 2 });
  await api.seed('big.csv', BIG, JUNE);
  await api.seed('b.csv', 'b,1\n', new Date('2023-06-02T00:00:00Z'));
  await api.seed('sub/c.csv', 'c,1\n', new Date('2023-06-03T00:00:00Z'));
  await api.seed('july.csv', 'july\n', new Date('2023-07-01T00:00:00Z'));
});

afterAll(async () => {
  await api?.stop();
});

afterEach(async () => {
  api.faults.failEvery = undefined;
  api.faults.throttleEvery = undefined;
  api.faults.retryAfter = undefined;
  for (const instance of instances.splice(0)) await instance.close?.();
});

/** The source config of shared/examples/datahub-compress.yaml, pointed at `server`. */
function datahubSource(server: { url: string }, overrides: Record<string, unknown> = {}, token = TOKEN) {
  const base = server.url;
  return {
    list: {
      url: `${base}/api/files?month=06&year=2023`,
      headers: { Authorization: `Bearer ${token}` },
      items: 'files',
      next: 'next_page',
      fields: { id: 'id', path: 'name', size: 'size', mtime: 'modified' },
    },
    download: { url: `${base}/api/files/{meta.id}/content` },
    after_success: { delete: { url: `${base}/api/files/{meta.id}` } },
    ...overrides,
  };
}

async function source(raw: Record<string, unknown>): Promise<SourceInstance> {
  const instance = await httpSource.create(configure(httpSource, raw), makePluginContext());
  instances.push(instance);
  return instance;
}

async function sink(raw: Record<string, unknown> = {}): Promise<SinkInstance> {
  const instance = await httpSink.create(
    configure(httpSink, {
      method: 'PUT',
      url: `${api.url}/api/files/{path}`,
      headers: { Authorization: `Bearer ${TOKEN}` },
      ...raw,
    }),
    makePluginContext(),
  );
  instances.push(instance);
  return instance;
}

async function failure(promise: Promise<unknown>): Promise<SluiceError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof SluiceError) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

function write(target: SinkInstance, destination: string, body: Readable, size?: number) {
  const item = { source: 't', path: destination, checksums: {}, meta: {}, open: async () => body } as Item;
  return target.write({ item, destination, body, size, signal: new AbortController().signal });
}

async function byPath(instance: SourceInstance): Promise<Map<string, Item>> {
  const items = await collect(instance.list(new AbortController().signal));
  return new Map(items.map((item) => [item.path, item]));
}

describe('the datahub-compress example', () => {
  it('validates against both http schemas', async () => {
    const text = await readFile(
      new URL('../../../shared/examples/datahub-compress.yaml', import.meta.url),
      'utf8',
    );
    const vars: Record<string, string> = {
      DATAHUB_URL: api.url,
      MONTH: '06',
      YEAR: '2023',
      DATAHUB_TOKEN: TOKEN,
    };
    const pipeline = parse(text.replace(/\$\{(\w+)\}/g, (_m, name: string) => vars[name]));
    const sourceConfig = configure(httpSource, pipeline.source.http);
    const sinkConfig = configure(httpSink, pipeline.sink.http);
    const items = await collect((await source(sourceConfig)).list(new AbortController().signal));
    expect(items.map((i) => i.path)).toContain('big.csv');
    expect(sinkConfig.method).toBe('PUT');
  });
});

describe('http source', () => {
  it('lists every page of one month and maps the fields', async () => {
    const before = api.requests.length;
    const items = await collect((await source(datahubSource(api))).list(new AbortController().signal));
    expect(items.map((i) => i.path)).toEqual(['b.csv', 'big.csv', 'sub/c.csv']);
    const big = items[1];
    expect(big.size).toBe(BIG.length);
    expect(big.mtime?.toISOString()).toBe(JUNE.toISOString());
    expect(big.source).toBe('http');
    expect(big.meta.id).toBe(api.file('big.csv')?.id);
    expect(big.meta.name).toBe('big.csv');
    const listCalls = api.requests.slice(before).filter((r) => r.url.startsWith('/api/files?'));
    expect(listCalls.map((r) => new URL(r.url, api.url).searchParams.get('page'))).toEqual([null, '2']);
  });

  it.each([
    ['relative URLs', 'relative', {}],
    ['cursor tokens', 'cursor', { next_param: 'cursor' }],
  ] as const)('follows %s in next', async (_label, pagination, extra) => {
    const other = await startRestApi({ token: TOKEN, pageSize: 1, pagination });
    try {
      for (const name of ['x1', 'x2', 'x3']) await other.seed(name, name, JUNE);
      const config = datahubSource(other);
      const items = await collect(
        (await source({ ...config, list: { ...config.list, ...extra } })).list(new AbortController().signal),
      );
      expect(items.map((i) => i.path)).toEqual(['x1', 'x2', 'x3']);
    } finally {
      await other.stop();
    }
  });

  it('streams a download of a few MiB, using the list’s auth header for the same origin', async () => {
    const big = (await byPath(await source(datahubSource(api)))).get('big.csv')!;
    const stream = await big.open();
    let chunks = 0;
    const parts: Buffer[] = [];
    for await (const chunk of stream) {
      chunks++;
      parts.push(chunk as Buffer);
    }
    expect(chunks).toBeGreaterThan(3);
    expect(sha256(Buffer.concat(parts))).toBe(sha256(BIG));
    // open() is fresh on every call
    expect(sha256(await readAll(await big.open()))).toBe(sha256(BIG));
  });

  it('fails a download whose Content-Length differs from the listed size, not retryable', async () => {
    const instance = await source(datahubSource(api));
    await api.seed('changing.csv', 'first version', JUNE);
    const item = (await byPath(instance)).get('changing.csv')!;
    await api.seed('changing.csv', 'the second, longer version', JUNE);
    const err = await failure(item.open());
    expect(err.code).toBe('SLUICE_E_SOURCE');
    expect(err.message).toMatch(/announces 26 bytes but the listing said 13/);
    expect(isRetryableByDefault(err)).toBe(false);
    await api.seed('changing.csv', '', new Date('2020-01-01T00:00:00Z'));
  });

  it('reports a rejected token clearly, without the token, not retryable', async () => {
    const wrong = 'wrong-token-9d81e';
    const err = await failure(
      collect((await source(datahubSource(api, {}, wrong))).list(new AbortController().signal)),
    );
    expect(err.message).toMatch(
      /HTTP 401 .*GET http:\/\/127\.0\.0\.1:\d+\/api\/files\?month=06&year=2023: the server rejected the credentials/,
    );
    expect(err.toUserString()).not.toContain(wrong);
    expect(err.retryable).toBe(false);
  });

  it('surfaces 429 as retryable with Retry-After in seconds and as an HTTP date', async () => {
    const items = await byPath(await source(datahubSource(api)));
    api.faults.throttleEvery = 1;
    api.faults.retryAfter = '7';
    let err = await failure(items.get('b.csv')!.open());
    expect(err.message).toMatch(/HTTP 429/);
    expect(err.retryable).toBe(true);
    expect(err.retryAfterMs).toBe(7000);

    api.faults.retryAfter = new Date(Date.now() + 30_000).toUTCString();
    err = await failure(items.get('b.csv')!.open());
    expect(err.retryAfterMs).toBeGreaterThan(25_000);
    expect(err.retryAfterMs).toBeLessThanOrEqual(30_000);
  });

  it('surfaces 500 as retryable', async () => {
    const items = await byPath(await source(datahubSource(api)));
    api.faults.failEvery = 1;
    const err = await failure(items.get('b.csv')!.open());
    expect(err.message).toMatch(/HTTP 500 .*injected failure/);
    expect(isRetryableByDefault(err)).toBe(true);
  });

  it('retries a throttled list page itself, waiting as Retry-After asks', async () => {
    api.faults.throttleEvery = 2;
    api.faults.retryAfter = '1';
    const started = Date.now();
    const items = await collect((await source(datahubSource(api))).list(new AbortController().signal));
    expect(items.map((i) => i.path)).toContain('sub/c.csv');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(api.requests.some((r) => r.status === 429)).toBe(true);
  });

  it('gives up on a list page after list.attempts with a retryable error', async () => {
    api.faults.throttleEvery = 1;
    api.faults.retryAfter = '0';
    const config = datahubSource(api);
    const err = await failure(
      collect(
        (await source({ ...config, list: { ...config.list, attempts: 2 } })).list(
          new AbortController().signal,
        ),
      ),
    );
    expect(err.retryable).toBe(true);
  });

  it('opens siblings by path when the download URL needs only the path', async () => {
    const byName = await source(datahubSource(api, { download: { url: `${api.url}/api/by-name/{path}` } }));
    expect((await readAll((await byName.openPath!('sub/c.csv'))!)).toString()).toBe('c,1\n');
    expect(await byName.openPath!('sub/c.csv.sig')).toBeNull();
    const byId = await source(datahubSource(api));
    expect(byId.openPath).toBeUndefined();
  });

  it('deletes a file after success with its own request; a second delete is fine', async () => {
    await api.seed('done.csv', 'done', JUNE);
    const instance = await source(datahubSource(api));
    const item = (await byPath(instance)).get('done.csv')!;
    const id = item.meta.id as string;
    await instance.remove!(item);
    expect(api.file('done.csv')).toBeUndefined();
    const deletes = api.requests.filter((r) => r.method === 'DELETE' && r.url === `/api/files/${id}`);
    expect(deletes).toHaveLength(1);
    expect(deletes[0].authorization).toBe(`Bearer ${TOKEN}`);
    await instance.remove!(item);
  });

  it('classifies a listing cut by connection resets as retryable', async () => {
    const proxy: FaultProxy = await startFaultProxy({
      target: { host: '127.0.0.1', port: Number(new URL(api.url).port) },
      faults: { resetAfterBytes: 40 },
    });
    try {
      const config = datahubSource({ url: `http://127.0.0.1:${proxy.port}` });
      const err = await failure(
        collect(
          (await source({ ...config, list: { ...config.list, attempts: 1 } })).list(
            new AbortController().signal,
          ),
        ),
      );
      expect(err.code).toBe('SLUICE_E_SOURCE');
      expect(err.retryable).toBe(true);
      expect(proxy.stats.resets).toBe(1);
    } finally {
      await proxy.stop();
    }
  });

  it('errors a download cut mid-body by a reset, retryably', async () => {
    const proxy = await startFaultProxy({
      target: { host: '127.0.0.1', port: Number(new URL(api.url).port) },
      enabled: false,
    });
    try {
      const big = (await byPath(await source(datahubSource({ url: `http://127.0.0.1:${proxy.port}` })))).get(
        'big.csv',
      )!;
      proxy.faults = { resetAfterBytes: MiB };
      proxy.enabled = true;
      const err = await readAll(await big.open()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeDefined();
      expect(isRetryableByDefault(err)).toBe(true);
    } finally {
      await proxy.stop();
    }
  });
});

describe('http sink', () => {
  it('PUTs a streamed body and verifies with the sha256 the server returns', async () => {
    const body = patternBytes(2 * MiB + 5, 3);
    const target = await sink();
    const commit = await write(
      target,
      'out/ré port #1.csv.gz',
      Readable.from([body.subarray(0, MiB), body.subarray(MiB)]),
      body.length,
    );
    expect(commit.sha256).toBe(sha256(body));
    expect(commit.size).toBe(body.length);
    expect(commit.location).toMatch(/\/api\/files\/out\/r%C3%A9%20port%20%231\.csv\.gz$/);
    expect(sha256(await api.read('out/ré port #1.csv.gz'))).toBe(sha256(body));
  });

  it('uploads chunked when the size is unknown', async () => {
    const body = patternBytes(MiB, 4);
    const commit = await write(await sink(), 'out/chunked.bin', Readable.from([body]));
    expect(commit.sha256).toBe(sha256(body));
    expect(api.file('out/chunked.bin')?.size).toBe(MiB);
  });

  it('aborts the upload when the body errors: the server stores nothing', async () => {
    const broken = new Error('integrity check failed at the end');
    const err = await write(await sink(), 'out/broken.bin', failingBody(2 * MiB, broken)).catch(
      (e: unknown) => e,
    );
    expect(err).toBe(broken);
    expect(api.file('out/broken.bin')).toBeUndefined();
    // The server notices the dropped connection on its own schedule (up to 10 s on a loaded
    // machine), and may even see the request after the client gave up: wait until it has had no
    // upload temp file for half a second.
    let quiet = 0;
    for (let i = 0; i < 500 && quiet < 25; i++) {
      quiet = (await api.pendingUploads()) === 0 ? quiet + 1 : 0;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await api.pendingUploads()).toBe(0);
    expect(api.file('out/broken.bin')).toBeUndefined();
  });

  it('honours if_exists skip and fail through If-None-Match', async () => {
    await api.seed('out/exists.csv', 'old');
    const skipped = await write(
      await sink({ if_exists: 'skip' }),
      'out/exists.csv',
      Readable.from([Buffer.from('new')]),
      3,
    );
    expect(skipped.skipped).toBe(true);
    const err = await failure(
      write(await sink({ if_exists: 'fail' }), 'out/exists.csv', Readable.from([Buffer.from('new')]), 3),
    );
    expect(err.code).toBe('SLUICE_E_EXISTS');
    expect((await api.read('out/exists.csv')).toString()).toBe('old');
  });

  it('reports a rejected token without it, not retryable, and a 5xx as retryable', async () => {
    const wrong = 'sink-wrong-token-77aa';
    let err = await failure(
      write(
        await sink({ headers: { Authorization: `Bearer ${wrong}` } }),
        'out/x.bin',
        Readable.from([patternBytes(MiB)]),
        MiB,
      ),
    );
    expect(err.message).toMatch(/HTTP 401 .*rejected the credentials/);
    expect(err.toUserString()).not.toContain(wrong);
    expect(isRetryableByDefault(err)).toBe(false);

    api.faults.failEvery = 1;
    err = await failure(write(await sink(), 'out/y.bin', Readable.from([Buffer.from('y')]), 1));
    expect(err.retryable).toBe(true);
    expect(api.file('out/x.bin')).toBeUndefined();
  });

  it('classifies an upload cut by a connection reset as retryable; the server keeps nothing', async () => {
    const proxy = await startFaultProxy({
      target: { host: '127.0.0.1', port: Number(new URL(api.url).port) },
      faults: { resetAfterBytes: 512 * 1024, direction: 'upstream' },
    });
    try {
      const target = await sink({ url: `http://127.0.0.1:${proxy.port}/api/files/{path}` });
      const body = patternBytes(2 * MiB, 5);
      const err = await failure(write(target, 'out/cut.bin', Readable.from([body]), body.length));
      expect(err.code).toBe('SLUICE_E_SINK');
      expect(err.retryable).toBe(true);
      expect(proxy.stats.resets).toBe(1);
      expect(api.file('out/cut.bin')).toBeUndefined();
    } finally {
      await proxy.stop();
    }
  });

  it('fails when a configured response field is missing', async () => {
    const err = await failure(
      write(
        await sink({ response: { sha256: 'checksum.sha256' } }),
        'out/z.bin',
        Readable.from([Buffer.from('z')]),
        1,
      ),
    );
    expect(err.message).toMatch(/reply has no sha256 at "checksum\.sha256"/);
  });
});
