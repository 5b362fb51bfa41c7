/**
 * Issue 11 for the http plugins, against the real REST server of test/servers/rest-api.ts:
 * listings that end and yield a file once, tidy-up of the listed version only, a sink that says
 * what the server stored, names that stay one name, and URLs whose secrets never show.
 * Each case runs through the runtime (runPipelineFile) and, where the plugin alone decides,
 * against the plugin directly.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import type { Logger } from '../../core/observe/logger.js';
import type { Item, SinkInstance, SourceInstance } from '../../core/plugin-api.js';
import { loadPipelineFile, runPipelineFile } from '../../core/sdk.js';
import { httpSink } from '../../plugins/http/sink.js';
import { httpSource } from '../../plugins/http/source.js';
import { makePluginContext } from '../helpers/context.js';
import { collect, configure, readAll } from '../helpers/object-store.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { type RestApi, type RestApiOptions, startRestApi } from '../servers/rest-api.js';

const TOKEN = 'safety-http-token-3b7e';
const JUNE = new Date('2023-06-15T10:00:00Z');
const POLICY = [
  'policy:',
  '  retry:',
  '    max_attempts: 2',
  '    initial_delay: 10ms',
  '    max_delay: 20ms',
].join('\n');

let ws: Workspace;
let runs = 0;
const servers: RestApi[] = [];
const instances: { close?(): Promise<void> }[] = [];

beforeAll(() => {
  ws = makeWorkspace('sluice-safety-http-');
});

afterEach(async () => {
  for (const instance of instances.splice(0)) await instance.close?.();
  for (const server of servers.splice(0)) await server.stop();
});

afterAll(() => ws?.cleanup());

async function server(options: Partial<RestApiOptions> = {}): Promise<RestApi> {
  const api = await startRestApi({ token: TOKEN, pageSize: 2, ...options });
  servers.push(api);
  return api;
}

/** The `list:` of the DataHub-like API; `fields.etag` only when asked. */
function listConfig(api: RestApi, extra: Record<string, unknown> = {}, etag = false) {
  return {
    url: `${api.url}/api/files`,
    headers: { Authorization: `Bearer ${TOKEN}` },
    items: 'files',
    next: 'next_page',
    fields: { id: 'id', path: 'name', size: 'size', mtime: 'modified', ...(etag ? { etag: 'etag' } : {}) },
    ...extra,
  };
}

async function source(raw: Record<string, unknown>): Promise<SourceInstance> {
  const instance = await httpSource.create(configure(httpSource, raw), makePluginContext());
  instances.push(instance);
  return instance;
}

async function sink(api: RestApi, raw: Record<string, unknown> = {}): Promise<SinkInstance> {
  const instance = await httpSink.create(
    configure(httpSink, {
      url: `${api.url}/api/files/{path}`,
      headers: { Authorization: `Bearer ${TOKEN}` },
      ...raw,
    }),
    makePluginContext(),
  );
  instances.push(instance);
  return instance;
}

function write(target: SinkInstance, destination: string, data: string) {
  const body = Readable.from([Buffer.from(data)]);
  const item = { source: 't', path: destination, checksums: {}, meta: {}, open: async () => body } as Item;
  return target.write({ item, destination, body, size: data.length, signal: new AbortController().signal });
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

/** A logger keeping every line as JSON text, to look for leaks. */
function captureLog(): { logger: Logger; text(): string } {
  const lines: string[] = [];
  const logger: Logger = {
    debug: (...args: unknown[]) => void lines.push(JSON.stringify(args)),
    info: (...args: unknown[]) => void lines.push(JSON.stringify(args)),
    warn: (...args: unknown[]) => void lines.push(JSON.stringify(args)),
    error: (...args: unknown[]) => void lines.push(JSON.stringify(args, errorFields)),
    child: () => logger,
  };
  return { logger, text: () => lines.join('\n') };
}

function errorFields(_key: string, value: unknown): unknown {
  return value instanceof Error ? { message: value.message, stack: value.stack } : value;
}

/** Every byte under `dir` (the ledger's SQLite files…) as latin1 text. */
function allBytes(dir: string): string {
  let text = '';
  for (const name of readdirSync(dir)) {
    const abs = join(dir, name);
    text += statSync(abs).isDirectory() ? allBytes(abs) : readFileSync(abs).toString('latin1');
  }
  return text;
}

/** Writes a pipeline `http source → local ./<out>`, runs it once, and returns the summary. */
async function runHttpToLocal(
  api: RestApi,
  options: {
    list?: Record<string, unknown>;
    etag?: boolean;
    download?: string;
    afterSuccess?: string;
    ifExists?: string;
    out?: string;
    log?: Logger;
    /**
     * One item at a time, for runs whose listing fails: the runtime (runner.ts) does not yet wait
     * for in-flight items when a listing fails, and closes the ledger under them.
     */
    serial?: boolean;
  },
) {
  const n = ++runs;
  const out = options.out ?? `down-${n}`;
  const yaml = [
    `name: safety-http-${n}`,
    'source:',
    '  http:',
    `    list: ${JSON.stringify(listConfig(api, options.list, options.etag))}`,
    `    download: { url: "${options.download ?? `${api.url}/api/files/{meta.id}/content`}" }`,
    options.afterSuccess ? `    after_success: ${options.afterSuccess}` : '',
    'sink:',
    `  local: { path: ./${out}${options.ifExists ? `, if_exists: ${options.ifExists}` : ''} }`,
    POLICY,
    options.serial ? '  concurrency: 1' : '',
  ].join('\n');
  const file = ws.pipeline(yaml, `http-to-local-${n}.yaml`);
  const stateDir = ws.path(`state-${n}`);
  const summary = await runPipelineFile(file, { stateDir, log: options.log });
  return { summary, out, stateDir, file };
}

/** Writes a pipeline `local ./<in> → http sink`, runs it once. */
async function runLocalToHttp(files: Record<string, string>, sinkYaml: string[], log?: Logger) {
  const n = ++runs;
  for (const [name, content] of Object.entries(files)) ws.write(`up-${n}/${name}`, content);
  const yaml = [
    `name: safety-http-up-${n}`,
    'source:',
    `  local: { path: ./up-${n}, after_success: delete }`,
    'sink:',
    '  http:',
    `    headers: { Authorization: "Bearer ${TOKEN}" }`,
    ...sinkYaml.map((line) => `    ${line}`),
    POLICY,
  ].join('\n');
  const file = ws.pipeline(yaml, `local-to-http-${n}.yaml`);
  const stateDir = ws.path(`state-up-${n}`);
  const summary = await runPipelineFile(file, { stateDir, log });
  return { summary, inDir: `up-${n}`, stateDir, file };
}

const listRequests = (api: RestApi) =>
  api.requests.filter(
    (r) => r.method === 'GET' && (r.url === '/api/files' || r.url.startsWith('/api/files?')),
  );

describe('every listing ends (#15)', () => {
  it('a next link that changes on every page but serves the same files again: an error naming the page', async () => {
    const api = await server({ endless: 'repeat' });
    for (const name of ['a.csv', 'b.csv', 'c.csv']) await api.seed(name, name, JUNE);
    const err = await failure(runHttpToLocal(api, { serial: true }));
    expect(err.code).toBe('SLUICE_E_SOURCE');
    expect(err.message).toMatch(
      /list page http:\/\/127\.0\.0\.1:\d+\/api\/files\?page=3 lists exactly the files of the earlier page http:\/\/127\.0\.0\.1:\d+\/api\/files\?page=2 \(list\.next loops\)/,
    );
    expect(listRequests(api)).toHaveLength(3);
  });

  it('empty pages whose next link never ends stop at list.max_pages, with an error naming the page', async () => {
    const api = await server({ endless: 'empty' });
    await api.seed('a.csv', 'a', JUNE);
    const err = await failure(runHttpToLocal(api, { list: { max_pages: 25 }, serial: true }));
    expect(err.message).toMatch(
      /list page http:\/\/127\.0\.0\.1:\d+\/api\/files\?page=26 would be page 26, more than list\.max_pages \(25\)/,
    );
    expect(listRequests(api)).toHaveLength(25);
    // The default bounds a listing too, documented in the schema.
    const defaults = configure(httpSource, {
      list: listConfig(api),
      download: { url: `${api.url}/x/{path}` },
    });
    expect(defaults.list.max_pages).toBe(10_000);
    expect(
      (httpSource.config.properties.list.properties.max_pages as { description: string }).description,
    ).toMatch(/fails with an error/);
  });

  it('offset pagination while files are inserted at the front: each file is listed and delivered once', async () => {
    const api = await server({ pagination: 'offset' });
    for (const name of ['b.csv', 'c.csv', 'd.csv', 'e.csv', 'f.csv'])
      await api.seed(name, `${name} bytes`, JUNE);
    let inserted = 0;
    api.beforeRequest = async (method, url) => {
      // Before every page after the first, a new file sorts in front: the offset now repeats one.
      if (method === 'GET' && url.pathname === '/api/files' && url.searchParams.has('offset')) {
        await api.seed(`a${inserted++}.csv`, 'new', JUNE);
      }
    };
    const listed = await collect(
      (
        await source({ list: listConfig(api), download: { url: `${api.url}/api/files/{meta.id}/content` } })
      ).list(new AbortController().signal),
    );
    const paths = listed.map((i) => i.path);
    expect(new Set(paths).size).toBe(paths.length);
    expect(paths).toEqual(expect.arrayContaining(['b.csv', 'c.csv', 'd.csv', 'e.csv', 'f.csv']));

    // Through the runtime, with if_exists: rename, a repeat would show as a numbered twin.
    inserted = 100;
    const { summary, out } = await runHttpToLocal(api, { ifExists: 'rename' });
    expect(summary.failed).toBe(0);
    expect(ws.files(out).filter((f) => f.includes(' ('))).toEqual([]);
    expect(summary.ok).toBe(ws.files(out).length);
  });

  it('a next page on another origin gets no credentials', async () => {
    const api = await server();
    const other = await server();
    for (const name of ['a.csv', 'b.csv', 'c.csv']) await api.seed(name, name, JUNE);
    api.nextBase = other.url;
    const err = await failure(
      collect(
        (
          await source({ list: listConfig(api), download: { url: `${api.url}/api/files/{meta.id}/content` } })
        ).list(new AbortController().signal),
      ),
    );
    expect(err.message).toMatch(/HTTP 401/);
    expect(other.requests).toHaveLength(1);
    expect(other.requests[0].authorization).toBeUndefined();
  });
});

describe('tidy-up acts on the listed version only (#2)', () => {
  const sourceConfig = (api: RestApi, etag: boolean) => ({
    list: listConfig(api, {}, etag),
    download: { url: `${api.url}/api/files/{meta.id}/content` },
    after_success: { delete: { url: `${api.url}/api/files/{meta.id}` } },
  });

  it('sends If-Match with the listed etag; a replaced file is SLUICE_E_CHANGED and stays', async () => {
    const api = await server();
    await api.seed('report.csv', 'version 1', JUNE);
    const instance = await source(sourceConfig(api, true));
    const [item] = await collect(instance.list(new AbortController().signal));
    const listedEtag = api.file('report.csv')!.etag;
    await api.seed('report.csv', 'version 2', JUNE);
    const err = await failure(instance.remove!(item));
    expect(err.code).toBe('SLUICE_E_CHANGED');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/"report\.csv" changed after it was listed \(412 Precondition Failed\)/);
    expect((await api.read('report.csv')).toString()).toBe('version 2');
    const sent = api.requestHeaders.filter((r) => r.method === 'DELETE');
    expect(sent.at(-1)?.headers['if-match']).toBe(`"${listedEtag}"`);
  });

  it('without an etag, sends If-Unmodified-Since with the mtime; a newer file stays', async () => {
    const api = await server();
    await api.seed('report.csv', 'version 1', JUNE);
    const instance = await source(sourceConfig(api, false));
    const [item] = await collect(instance.list(new AbortController().signal));
    await api.seed('report.csv', 'version 2', new Date(JUNE.getTime() + 5000));
    const err = await failure(instance.remove!(item));
    expect(err.code).toBe('SLUICE_E_CHANGED');
    expect(
      api.requestHeaders.filter((r) => r.method === 'DELETE').at(-1)?.headers['if-unmodified-since'],
    ).toBe(JUNE.toUTCString());
    expect(api.file('report.csv')).toBeDefined();
  });

  it('deletes the unchanged version; a file already gone (404, or 412 on If-Match) is not an error', async () => {
    const api = await server();
    await api.seed('done.csv', 'done', JUNE);
    const instance = await source(sourceConfig(api, true));
    const [item] = await collect(instance.list(new AbortController().signal));
    await instance.remove!(item);
    expect(api.file('done.csv')).toBeUndefined();
    // The server answers 412 now (no current version matches): a HEAD tells it is gone.
    await instance.remove!(item);
    expect(api.requests.filter((r) => r.method === 'DELETE').map((r) => r.status)).toEqual([204, 412]);
  });

  it('through the runtime: a file replaced between its commit and its delete is kept and delivered next pass', async () => {
    const api = await server();
    await api.seed('big.bin', 'old bytes', JUNE);
    let replaced = false;
    api.beforeRequest = async (method) => {
      if (method === 'DELETE' && !replaced) {
        replaced = true;
        await api.seed('big.bin', 'the new version', JUNE);
      }
    };
    const first = await runHttpToLocal(api, {
      etag: true,
      afterSuccess: `{ delete: { url: "${api.url}/api/files/{meta.id}" } }`,
      out: 'tidy',
    });
    expect(replaced).toBe(true);
    expect(ws.read('tidy/big.bin')).toBe('old bytes');
    expect((await api.read('big.bin')).toString()).toBe('the new version');
    for (const f of first.summary.failures) expect(f.code).toBe('SLUICE_E_CHANGED');

    const second = await runHttpToLocal(api, {
      etag: true,
      afterSuccess: `{ delete: { url: "${api.url}/api/files/{meta.id}" } }`,
      out: 'tidy',
    });
    expect(second.summary.failed).toBe(0);
    expect(ws.read('tidy/big.bin')).toBe('the new version');
    expect(api.file('big.bin')).toBeUndefined();
  });
});

describe('the http sink reports what the server stored (#3)', () => {
  it('a server that keeps half the body and answers 201 with no body: the item fails, the source is kept', async () => {
    const api = await server();
    api.faults.truncateUploads = true;
    const { summary, inDir } = await runLocalToHttp({ 'report.csv': 'x'.repeat(1000) }, [
      'method: PUT',
      `url: ${api.url}/api/files/{path}`,
    ]);
    expect(summary.ok).toBe(0);
    expect(summary.failed).toBe(1);
    expect(summary.failures[0].code).toBe('SLUICE_E_VERIFY');
    expect(summary.failures[0].error).toMatch(/\b500\b.*\b1000\b/);
    expect(api.file('report.csv')?.size).toBe(500);
    expect(ws.files(inDir)).toEqual(['report.csv']);
  });

  it('the sink itself reports the size the server holds, never the bytes it sent', async () => {
    const api = await server();
    api.faults.truncateUploads = true;
    const commit = await write(await sink(api), 'half.bin', 'y'.repeat(400));
    expect(commit.size).toBe(200);
    expect(api.file('half.bin')?.size).toBe(200);
  });

  it('a reply without a size and no HEAD: fails naming how to make it verifiable, source kept', async () => {
    const api = await server();
    api.faults.emptyReplies = true;
    api.faults.noHead = true;
    const { summary, inDir } = await runLocalToHttp({ 'a.csv': 'aaaa' }, [
      `url: ${api.url}/api/files/{path}`,
    ]);
    expect(summary.failed).toBe(1);
    expect(summary.failures[0].code).toBe('SLUICE_E_VERIFY');
    expect(summary.failures[0].error).toMatch(
      /answered 201 but did not say what it stored \(its reply has no size; HEAD .* answered 405\)/,
    );
    expect(summary.failures[0].error).toMatch(/response\.size.*head_url.*verify: none/);
    expect(ws.files(inDir)).toEqual(['a.csv']);

    // POST without head_url: nothing to ask either.
    const err = await failure(write(await sink(api, { method: 'POST' }), 'b.csv', 'bbbb'));
    expect(err.message).toMatch(/its reply has no size and a POST has no head_url to ask/);
  });

  it('verify: none is the explicit opt-out', async () => {
    const api = await server();
    api.faults.emptyReplies = true;
    api.faults.noHead = true;
    const { summary, inDir } = await runLocalToHttp({ 'a.csv': 'aaaa' }, [
      `url: ${api.url}/api/files/{path}`,
      'verify: none',
    ]);
    expect(summary.failed).toBe(0);
    expect(summary.ok).toBe(1);
    expect(ws.files(inDir)).toEqual([]);
  });

  it('a faithful server that replies nothing is verified through a HEAD of the stored file', async () => {
    const api = await server();
    api.faults.emptyReplies = true;
    const { summary, inDir } = await runLocalToHttp({ 'sub/a.csv': 'aaaa' }, [
      `url: ${api.url}/api/files/{path}`,
    ]);
    expect(summary.ok).toBe(1);
    expect(ws.files(inDir)).toEqual([]);
    expect(
      api.requests.some((r) => r.method === 'HEAD' && r.url === '/api/files/sub/a.csv' && r.status === 200),
    ).toBe(true);

    // verify_from: head asks even when the reply has a size; head_url points elsewhere.
    api.faults.emptyReplies = false;
    const commit = await write(
      await sink(api, { verify_from: 'head', head_url: `${api.url}/api/by-name/{path}` }),
      'c.csv',
      'cc',
    );
    expect(commit.size).toBe(2);
    expect(api.requests.at(-1)).toMatchObject({ method: 'HEAD', url: '/api/by-name/c.csv' });
  });

  it('if_exists: skip reports the size of the object already there', async () => {
    const api = await server();
    await api.seed('exists.csv', 'the old content');
    const commit = await write(await sink(api, { if_exists: 'skip' }), 'exists.csv', 'new');
    expect(commit).toMatchObject({ skipped: true, size: 'the old content'.length });
  });

  it('validate says how to make a contradictory verification possible', async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ['verify: sha256', 'verify_from: head'],
        /a HEAD reports no sha256.*use verify_from: response with response\.sha256/,
      ],
      [
        ['method: POST', 'verify_from: head'],
        /verify_from: head with method POST needs head_url.*set head_url to the stored file’s URL/,
      ],
    ];
    for (const [lines, expected] of cases) {
      const file = ws.pipeline(
        [
          'name: v',
          'source:',
          '  local: { path: ./in }',
          'sink:',
          '  http:',
          '    url: http://127.0.0.1:1/api/{path}',
          ...lines.map((l) => `    ${l}`),
        ].join('\n'),
        'validate.yaml',
      );
      const err = await failure(loadPipelineFile(file));
      expect(err.toUserString()).toMatch(expected);
      expect(err.toUserString()).toMatch(/validate\.yaml:\d+:\d+/);
    }
  });
});

describe('secrets in URLs never show (#10)', () => {
  it('a presigned download URL (from a redirect) and a signed listing: masked in errors, logs, summary and ledger', async () => {
    const api = await server({ signNextLinks: true });
    for (const name of ['a.csv', 'b.csv', 'c.csv']) await api.seed(name, name, JUNE);
    const log = captureLog();
    // Downloads go through the presigned redirect to an id that does not exist: 404 there.
    const { summary, stateDir } = await runHttpToLocal(api, {
      list: {
        url: `http://reader:pa55-in-url@127.0.0.1:${new URL(api.url).port}/api/files?X-Amz-Signature=configured5ig&sig=azure5ig`,
      },
      download: `${api.url}/api/files/missing-{meta.id}/download`,
      log: log.logger,
    });
    expect(summary.failed).toBe(3);
    expect(summary.failures[0].error).toMatch(
      /HTTP 404 .*\/content\?X-Amz-Credential=\*\*\*&X-Amz-Signature=\*\*\*/,
    );
    const outputs = [JSON.stringify(summary), log.text(), allBytes(stateDir)].join('\n');
    expect(api.signatures.length).toBeGreaterThan(3);
    for (const secret of [...api.signatures, 'configured5ig', 'azure5ig', 'pa55-in-url', 'AKIATEST'])
      expect(outputs).not.toContain(secret);

    // A listing that fails on a signed next page: the error names the page, masked.
    api.beforeRequest = (_method, url) => {
      if (url.searchParams.get('page') === '2') throw new Error('injected list failure');
    };
    const err = await failure(runHttpToLocal(api, { list: { attempts: 1 }, serial: true }));
    expect(err.message).toMatch(/HTTP 500 .*page=2&X-Amz-Signature=\*\*\*/);
    for (const secret of api.signatures) expect(err.toUserString()).not.toContain(secret);
  });

  it('a failing PUT to a presigned URL with userinfo: masked in the error and the ledger', async () => {
    const api = await server();
    api.faults.failEvery = 1;
    const port = new URL(api.url).port;
    const log = captureLog();
    const { summary, stateDir } = await runLocalToHttp(
      { 'a.csv': 'aaaa' },
      [
        `url: "http://writer:pw-in-sink-url@127.0.0.1:${port}/api/files/{path}?X-Amz-Signature=put5ignature&X-Amz-Credential=AKIAPUT"`,
      ],
      log.logger,
    );
    expect(summary.failed).toBe(1);
    expect(summary.failures[0].error).toMatch(
      /HTTP 500 .*from PUT http:\/\/\*\*\*:\*\*\*@127\.0\.0\.1:\d+\/api\/files\/a\.csv\?X-Amz-Signature=\*\*\*&X-Amz-Credential=\*\*\*/,
    );
    const outputs = [JSON.stringify(summary), log.text(), allBytes(stateDir)].join('\n');
    for (const secret of ['put5ignature', 'AKIAPUT', 'pw-in-sink-url']) expect(outputs).not.toContain(secret);
  });
});

describe('a listed name stays one name', () => {
  it('paths with "..", "\\", "//" or control characters are rejected, never mapped onto another URL', async () => {
    const api = await server({ pageSize: 10 });
    await api.seed('top.csv', 'TOP', JUNE);
    for (const name of ['sub/../top.csv', 'a\\b.csv', 'x//y.csv', 'tab\there.csv', './top.csv'])
      await api.seed(name, 'EVIL', JUNE);
    const instance = await source({
      list: listConfig(api),
      download: { url: `${api.url}/api/by-name/{path}` },
      after_success: { delete: { url: `${api.url}/api/files/{meta.id}` } },
    });
    const items = await collect(instance.list(new AbortController().signal));
    const rejected = items.filter((i) => i.rejected);
    expect(items.filter((i) => !i.rejected).map((i) => i.path)).toEqual(['top.csv']);
    expect(rejected).toHaveLength(5);
    const backslash = rejected.find((i) => i.rejected?.includes('backslash'))!;
    expect(backslash.path).toBe('a%5Cb.csv');
    const before = api.requests.length;
    for (const item of rejected) {
      expect((await failure(item.open())).code).toBe('SLUICE_E_NAME');
      expect((await failure(instance.remove!(item))).code).toBe('SLUICE_E_NAME');
    }
    expect(api.requests.length).toBe(before);

    // Through the runtime: top.csv arrives once with its own bytes; nothing is deleted but it.
    const { summary, out } = await runHttpToLocal(api, {
      list: {},
      download: `${api.url}/api/by-name/{path}`,
      afterSuccess: `{ delete: { url: "${api.url}/api/files/{meta.id}" } }`,
    });
    expect(ws.files(out)).toEqual(['top.csv']);
    expect(ws.read(`${out}/top.csv`)).toBe('TOP');
    expect(summary.failures.map((f) => f.code)).toEqual(Array(5).fill('SLUICE_E_NAME'));
    expect(
      api
        .files()
        .map((f) => f.name)
        .sort(),
    ).toEqual(['./top.csv', 'a\\b.csv', 'sub/../top.csv', 'tab\there.csv', 'x//y.csv']);
  });

  it('redirects: only to http(s), never down from https, and without credentials to another origin', async () => {
    const api = await server();
    const other = await server();
    await api.seed('a.csv', 'a', JUNE);
    const download = (to: string) =>
      source({
        list: listConfig(api),
        download: { url: `${api.url}/api/redirect?to=${encodeURIComponent(to)}` },
      });
    const item = async (to: string) =>
      (await collect((await download(to)).list(new AbortController().signal)))[0];
    expect((await failure((await item('file:///etc/passwd')).open())).message).toMatch(
      /redirects to a file: URL; not followed/,
    );
    const err = await failure((await item(`${other.url}/api/files/f1/content`)).open());
    expect(err.message).toMatch(/HTTP 401/);
    expect(other.requests.at(-1)?.authorization).toBeUndefined();
    expect(api.requests.at(-1)?.authorization).toBe(`Bearer ${TOKEN}`);
    expect(
      (await readAll(await (await item(`/api/files/${api.file('a.csv')!.id}/content`)).open())).toString(),
    ).toBe('a');
  });
});
