/**
 * A real HTTP server that behaves like the "DataHub" REST API the http plugins are built for:
 *   GET    /api/files?month=&year=   paginated JSON `{ files: [{id, name, size, modified}], next_page }`
 *   GET    /api/files/:id/content    the bytes (streamed, with Content-Length)
 *   PUT    /api/files/<path>         stores the streamed body; replies `{ id, name, size, sha256 }`;
 *                                    an aborted body stores nothing; honours `If-None-Match: *`
 *   DELETE /api/files/:id            204, or 404
 *   GET    /api/by-name/<path>       the bytes of a file by name (for path-only download URLs)
 * Bearer auth (401 otherwise), and deterministic injected faults: every Nth request answers 429
 * with Retry-After, every Mth answers 500. Files live in a temp folder, so sizes cost no memory.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface RestApiFaults {
  /** Every Nth request (counting all requests) answers 500. */
  failEvery?: number;
  /** Every Nth request answers 429 with `Retry-After: retryAfter`. */
  throttleEvery?: number;
  /** Retry-After header value for throttled answers: seconds or an HTTP date (default `1`). */
  retryAfter?: string;
}

export interface RestApiOptions extends RestApiFaults {
  token: string;
  /** Files per list page (default 2). */
  pageSize?: number;
  /**
   * How `next_page` points at the next page: an absolute URL (default), a relative URL, or a
   * bare cursor token the client passes back as `?cursor=`.
   */
  pagination?: 'absolute' | 'relative' | 'cursor';
}

export interface StoredFile {
  id: string;
  name: string;
  size: number;
  /** ISO 8601. */
  modified: string;
  sha256: string;
}

export interface RequestRecord {
  method: string;
  url: string;
  status: number;
  authorization?: string;
}

export interface RestApi {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Mutable at run time; counters keep running. */
  readonly faults: RestApiFaults;
  readonly requests: RequestRecord[];
  seed(name: string, content: Buffer | string, modified?: Date): Promise<StoredFile>;
  file(name: string): StoredFile | undefined;
  read(name: string): Promise<Buffer>;
  files(): StoredFile[];
  /** Upload temp files still on disk (should be 0 when no upload is in flight). */
  pendingUploads(): Promise<number>;
  stop(): Promise<void>;
}

export async function startRestApi(options: RestApiOptions): Promise<RestApi> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-rest-api-'));
  const byName = new Map<string, StoredFile>();
  const byId = new Map<string, StoredFile>();
  const faults: RestApiFaults = {
    failEvery: options.failEvery,
    throttleEvery: options.throttleEvery,
    retryAfter: options.retryAfter,
  };
  const requests: RequestRecord[] = [];
  const pageSize = options.pageSize ?? 2;
  const pagination = options.pagination ?? 'absolute';
  let requestCount = 0;
  let nextId = 1;
  let uploadCount = 0;
  let baseUrl = '';

  const blobPath = (file: StoredFile) => join(dir, `blob-${file.id}`);

  const store = async (
    name: string,
    tempPath: string,
    size: number,
    sha256: string,
    modified = new Date(),
  ) => {
    const existing = byName.get(name);
    const file: StoredFile = {
      id: existing?.id ?? `f${nextId++}`,
      name,
      size,
      sha256,
      modified: modified.toISOString(),
    };
    await rename(tempPath, blobPath(file));
    byName.set(name, file);
    byId.set(file.id, file);
    return file;
  };

  const sendJson = (
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  };

  const listFiles = (url: URL, res: ServerResponse) => {
    const month = url.searchParams.get('month');
    const year = url.searchParams.get('year');
    const matching = [...byName.values()]
      .filter((f) => {
        const date = new Date(f.modified);
        if (month && date.getUTCMonth() + 1 !== Number(month)) return false;
        return !(year && date.getUTCFullYear() !== Number(year));
      })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const cursor = url.searchParams.get('cursor');
    const page =
      cursor !== null
        ? Number(Buffer.from(cursor, 'base64url').toString())
        : Number(url.searchParams.get('page') ?? 1);
    const slice = matching.slice((page - 1) * pageSize, page * pageSize);
    let nextPage: string | null = null;
    if (page * pageSize < matching.length) {
      const next = new URL(url);
      next.searchParams.delete('cursor');
      next.searchParams.set('page', String(page + 1));
      if (pagination === 'absolute') nextPage = `${baseUrl}${next.pathname}${next.search}`;
      else if (pagination === 'relative') nextPage = `${next.pathname}${next.search}`;
      else nextPage = Buffer.from(String(page + 1)).toString('base64url');
    }
    sendJson(res, 200, {
      files: slice.map(({ id, name, size, modified }) => ({ id, name, size, modified })),
      next_page: nextPage,
    });
  };

  const receiveUpload = async (req: IncomingMessage, res: ServerResponse, name: string) => {
    if (req.headers['if-none-match'] === '*' && byName.has(name)) {
      sendJson(res, 412, { error: 'exists' });
      return;
    }
    const tempPath = join(dir, `upload-${process.pid}-${uploadCount++}.tmp`);
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    try {
      await pipeline(req, tap, createWriteStream(tempPath));
    } catch {
      // The client went away mid-body: store nothing.
      await unlink(tempPath).catch(() => {});
      return;
    }
    const file = await store(name, tempPath, size, hash.digest('hex'));
    sendJson(res, 201, file);
  };

  const sendFile = async (res: ServerResponse, file: StoredFile | undefined) => {
    if (!file) return sendJson(res, 404, { error: 'no such file' });
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': file.size });
    await pipeline(createReadStream(blobPath(file)), res).catch(() => {});
  };

  const route = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', baseUrl);
    const method = req.method ?? 'GET';
    const n = ++requestCount;
    if (faults.throttleEvery && n % faults.throttleEvery === 0) {
      req.resume();
      sendJson(res, 429, { error: 'slow down' }, { 'retry-after': faults.retryAfter ?? '1' });
      return;
    }
    if (faults.failEvery && n % faults.failEvery === 0) {
      req.resume();
      sendJson(res, 500, { error: 'injected failure' });
      return;
    }
    if (req.headers.authorization !== `Bearer ${options.token}`) {
      req.resume();
      sendJson(res, 401, { error: 'unauthorized' }, { 'www-authenticate': 'Bearer' });
      return;
    }
    const segments = url.pathname.split('/').slice(1).map(decodeURIComponent);
    if (method === 'GET' && segments[0] === 'api' && segments[1] === 'by-name') {
      return sendFile(res, byName.get(segments.slice(2).join('/')));
    }
    if (segments[0] !== 'api' || segments[1] !== 'files') return sendJson(res, 404, { error: 'not found' });
    const rest = segments.slice(2);
    if (method === 'GET' && rest.length === 0) return listFiles(url, res);
    if (method === 'GET' && rest.length === 2 && rest[1] === 'content')
      return sendFile(res, byId.get(rest[0]));
    if (method === 'DELETE' && rest.length === 1) {
      const file = byId.get(rest[0]);
      if (!file) return sendJson(res, 404, { error: 'no such file' });
      byId.delete(file.id);
      byName.delete(file.name);
      await rm(blobPath(file), { force: true });
      res.writeHead(204).end();
      return;
    }
    if (method === 'PUT' && rest.length > 0) return receiveUpload(req, res, rest.join('/'));
    req.resume();
    sendJson(res, 405, { error: `${method} not supported here` });
  };

  const server = createServer((req, res) => {
    res.on('finish', () =>
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        status: res.statusCode,
        authorization: req.headers.authorization,
      }),
    );
    route(req, res).catch((err: Error) => {
      if (!res.headersSent) sendJson(res, 500, { error: err.message });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: baseUrl,
    faults,
    requests,
    async seed(name, content, modified) {
      const tempPath = join(dir, `seed-${uploadCount++}.tmp`);
      await writeFile(tempPath, content);
      const bytes = typeof content === 'string' ? Buffer.from(content) : content;
      return store(name, tempPath, bytes.length, createHash('sha256').update(bytes).digest('hex'), modified);
    },
    file: (name) => byName.get(name),
    async read(name) {
      const file = byName.get(name);
      if (!file) throw new Error(`rest-api: no file "${name}"`);
      return readFile(blobPath(file));
    },
    files: () => [...byName.values()],
    async pendingUploads() {
      return (await readdir(dir)).filter((f) => f.startsWith('upload-')).length;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
