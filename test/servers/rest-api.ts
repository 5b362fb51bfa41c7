/**
 * A real HTTP server that behaves like the "DataHub" REST API the http plugins are built for:
 *   GET    /api/files?month=&year=   paginated JSON `{ files: [{id, name, size, modified, etag}], next_page }`
 *   GET    /api/files/:id/content    the bytes (streamed, with Content-Length, ETag, Last-Modified)
 *   PUT    /api/files/<path>         (or POST) stores the streamed body; replies `{ id, name, size, sha256 }`;
 *                                    an aborted body stores nothing; honours `If-None-Match: *`
 *   HEAD   /api/files/<path>         the stored file's headers by name (Content-Length…), or 404
 *   DELETE /api/files/:id            204, or 404; honours `If-Match` (412 when no current version
 *                                    matches, a deleted file included) and `If-Unmodified-Since`
 *   GET    /api/by-name/<path>       the bytes of a file by name (for path-only download URLs)
 *   GET    /api/files/:id/download   302 to a presigned-style `…/content?X-Amz-Signature=…` URL
 *   GET    /api/redirect?to=<url>    302 to <url>
 * HEAD works on every GET route.
 * Bearer auth (401 otherwise), and deterministic injected faults: every Nth request answers 429
 * with Retry-After, every Mth answers 500. Files live in a temp folder, so sizes cost no memory.
 */
import { createHash, randomBytes } from 'node:crypto';
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
  /** Uploads keep only the first half of the body and answer 201 with no body (a broken API). */
  truncateUploads?: boolean;
  /** Uploads answer 201 with no body (an API that stores faithfully but reports nothing). */
  emptyReplies?: boolean;
  /** HEAD requests answer 405. */
  noHead?: boolean;
}

export interface RestApiOptions extends RestApiFaults {
  token: string;
  /** Files per list page (default 2). */
  pageSize?: number;
  /**
   * How `next_page` points at the next page: an absolute URL (default), a relative URL, or a
   * bare cursor token the client passes back as `?cursor=`, or an absolute URL with `?offset=`
   * (which repeats items when files are inserted before the offset between pages).
   */
  pagination?: 'absolute' | 'relative' | 'cursor' | 'offset';
  /**
   * Next links carry a fresh presigned-style signature (`X-Amz-Signature`), as a storage API
   * handing out signed page URLs does.
   */
  signNextLinks?: boolean;
  /**
   * A broken API whose `next_page` never ends: past the last page it serves the last page's
   * files again (`repeat`) or no files (`empty`), each time with a new next link.
   */
  endless?: 'repeat' | 'empty';
}

export interface StoredFile {
  id: string;
  name: string;
  size: number;
  /** ISO 8601. */
  modified: string;
  sha256: string;
  /** Version tag (unquoted): changes with every store. */
  etag: string;
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
  /** Absolute next links point at this origin instead of the one the client used (another host). */
  nextBase?: string;
  /**
   * Called before each (authorized) request is handled, e.g. to insert files between list pages
   * or replace a file before its DELETE arrives.
   */
  beforeRequest?: (method: string, url: URL) => Promise<void> | void;
  /** Signatures put into presigned-style URLs (redirects, signed next links), to look for leaks. */
  readonly signatures: string[];
  /** Headers of every request, in order (to check conditional requests). */
  readonly requestHeaders: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }>;
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
  let storeCount = 1;
  let baseUrl = '';
  const requestHeaders: RestApi['requestHeaders'] = [];
  const api = {
    beforeRequest: undefined as RestApi['beforeRequest'],
    nextBase: undefined as string | undefined,
  };

  const blobPath = (file: StoredFile) => join(dir, `blob-${file.id}`);
  const signatures: string[] = [];
  const sign = () => {
    const signature = randomBytes(16).toString('hex');
    signatures.push(signature);
    return signature;
  };

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
      etag: `v${storeCount++}-${sha256.slice(0, 12)}`,
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

  const listFiles = async (url: URL, res: ServerResponse) => {
    const cursor = url.searchParams.get('cursor');
    const offset = url.searchParams.get('offset');
    const page =
      cursor !== null
        ? Number(Buffer.from(cursor, 'base64url').toString())
        : offset !== null
          ? Math.floor(Number(offset) / pageSize) + 1
          : Number(url.searchParams.get('page') ?? 1);
    const month = url.searchParams.get('month');
    const year = url.searchParams.get('year');
    const matching = [...byName.values()]
      .filter((f) => {
        const date = new Date(f.modified);
        if (month && date.getUTCMonth() + 1 !== Number(month)) return false;
        return !(year && date.getUTCFullYear() !== Number(year));
      })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const lastPage = Math.max(1, Math.ceil(matching.length / pageSize));
    const start = offset !== null ? Number(offset) : (page - 1) * pageSize;
    const slice =
      options.endless === 'repeat' && page > lastPage
        ? matching.slice((lastPage - 1) * pageSize, lastPage * pageSize)
        : matching.slice(start, start + pageSize);
    let nextPage: string | null = null;
    if (page * pageSize < matching.length || options.endless) {
      const next = new URL(url);
      next.searchParams.delete('cursor');
      if (pagination === 'offset') next.searchParams.set('offset', String(start + pageSize));
      else next.searchParams.set('page', String(page + 1));
      if (options.signNextLinks) next.searchParams.set('X-Amz-Signature', sign());
      if (pagination === 'absolute' || pagination === 'offset')
        nextPage = `${api.nextBase ?? url.origin}${next.pathname}${next.search}`;
      else if (pagination === 'relative') nextPage = `${next.pathname}${next.search}`;
      else nextPage = Buffer.from(String(page + 1)).toString('base64url');
    }
    sendJson(res, 200, {
      files: slice.map(({ id, name, size, modified, etag }) => ({ id, name, size, modified, etag })),
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
    if (faults.truncateUploads) {
      const kept = (await readFile(tempPath)).subarray(0, Math.floor(size / 2));
      await writeFile(tempPath, kept);
      await store(name, tempPath, kept.length, createHash('sha256').update(kept).digest('hex'));
      res.writeHead(201).end();
      return;
    }
    const file = await store(name, tempPath, size, hash.digest('hex'));
    if (faults.emptyReplies) res.writeHead(201).end();
    else sendJson(res, 201, file);
  };

  const fileHeaders = (file: StoredFile) => ({
    'content-type': 'application/octet-stream',
    'content-length': file.size,
    etag: `"${file.etag}"`,
    'last-modified': new Date(file.modified).toUTCString(),
  });

  /** RFC 9110 §13.2.2 order: If-Match, else If-Unmodified-Since (at the second, as Last-Modified). */
  const preconditionFails = (req: IncomingMessage, file: StoredFile | undefined): boolean => {
    const ifMatch = req.headers['if-match'];
    if (ifMatch !== undefined) {
      if (!file) return true;
      if (ifMatch.trim() === '*') return false;
      return !ifMatch.split(',').some((tag) => tag.trim() === `"${file.etag}"`);
    }
    const since = req.headers['if-unmodified-since'];
    if (since !== undefined && file) {
      const date = Date.parse(since);
      return !Number.isNaN(date) && Math.floor(Date.parse(file.modified) / 1000) > Math.floor(date / 1000);
    }
    return false;
  };

  const sendFile = async (res: ServerResponse, file: StoredFile | undefined) => {
    if (!file) return sendJson(res, 404, { error: 'no such file' });
    res.writeHead(200, fileHeaders(file));
    await pipeline(createReadStream(blobPath(file)), res).catch(() => {});
  };

  const route = async (req: IncomingMessage, res: ServerResponse) => {
    // The Host the client used, as a real server does: absolute links then go through a proxy too.
    const url = new URL(req.url ?? '/', req.headers.host ? `http://${req.headers.host}` : baseUrl);
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
    requestHeaders.push({ method, url: req.url ?? '', headers: req.headers });
    if (method === 'HEAD' && faults.noHead) return sendJson(res, 405, { error: 'HEAD not supported' });
    await api.beforeRequest?.(method, url);
    const segments = url.pathname.split('/').slice(1).map(decodeURIComponent);
    if (segments[0] === 'api' && segments[1] === 'redirect') {
      res.writeHead(302, { location: url.searchParams.get('to') ?? '/' }).end();
      return;
    }
    const read = method === 'GET' || method === 'HEAD';
    if (read && segments[0] === 'api' && segments[1] === 'by-name') {
      return sendFile(res, byName.get(segments.slice(2).join('/')));
    }
    if (segments[0] !== 'api' || segments[1] !== 'files') return sendJson(res, 404, { error: 'not found' });
    const rest = segments.slice(2);
    if (method === 'GET' && rest.length === 0) return listFiles(url, res);
    if (read && rest.length === 2 && rest[1] === 'content') return sendFile(res, byId.get(rest[0]));
    if (read && rest.length === 2 && rest[1] === 'download') {
      // Like a storage API: a redirect to a presigned URL, signed whether the file exists or not.
      const target = `/api/files/${encodeURIComponent(rest[0])}/content?X-Amz-Credential=AKIATEST%2F20240101&X-Amz-Signature=${sign()}`;
      res.writeHead(302, { location: target }).end();
      return;
    }
    if (method === 'HEAD' && rest.length > 0) return sendFile(res, byName.get(rest.join('/')));
    if (method === 'DELETE' && rest.length === 1) {
      const file = byId.get(rest[0]);
      if (preconditionFails(req, file)) return sendJson(res, 412, { error: 'precondition failed' });
      if (!file) return sendJson(res, 404, { error: 'no such file' });
      byId.delete(file.id);
      byName.delete(file.name);
      await rm(blobPath(file), { force: true });
      res.writeHead(204).end();
      return;
    }
    if ((method === 'PUT' || method === 'POST') && rest.length > 0)
      return receiveUpload(req, res, rest.join('/'));
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

  return Object.assign(api, {
    url: baseUrl,
    faults,
    requests,
    requestHeaders,
    signatures,
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
  } satisfies Omit<RestApi, 'beforeRequest' | 'nextBase'>);
}
