/**
 * `http` source: lists files through a paginated JSON REST API, or from the rows of a SQL query
 * (`list.sql`), and downloads each with a streamed GET. After success it can delete a file with
 * its own request (the API's DELETE).
 */
import { createHash } from 'node:crypto';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Static, Type } from '@sinclair/typebox';
import { isRetryableByDefault, SluiceError } from '../../core/errors.js';
import { createItem, itemIdentity } from '../../core/item.js';
import { definePlugin, type Item, type SourceInstance } from '../../core/plugin-api.js';
import { sourceCommon } from '../../core/schema-fragments.js';
import { pipeThrough } from '../../core/streams.js';
import { listRows, SqlListing, validateSqlListing } from '../sql/listing.js';
import { displayUrl, HttpClient, registerHttpSecrets } from './client.js';
import { headersFor, mergeHeaders } from './headers.js';
import { getDotted } from './json-path.js';
import { rejectedItem, toDate, toSize, unsafePathReason } from './listed.js';
import { clientOptions, connectionFields, HeaderMap, UrlTemplateField } from './schema.js';
import { rowToItem } from './sql-rows.js';
import { compileUrlTemplate } from './url-template.js';

const { after_success: _sharedAfterSuccess, ...sourceFields } = sourceCommon;

const FieldPath = (description: string) => Type.Optional(Type.String({ description }));

const HttpAfterSuccess = Type.Union(
  [
    Type.Literal('keep'),
    Type.Object(
      {
        delete: Type.Object(
          {
            url: UrlTemplateField(
              'URL of the request that deletes a file, e.g. `https://api/files/{meta.id}`.',
            ),
            // Optional: ajv fills no defaults inside a union branch.
            method: Type.Optional(
              Type.Union(
                [Type.Literal('DELETE'), Type.Literal('POST'), Type.Literal('PUT'), Type.Literal('PATCH')],
                {
                  default: 'DELETE',
                  description: 'HTTP method of the delete request.',
                },
              ),
            ),
            headers: Type.Optional(HeaderMap('Extra headers for the delete request.')),
          },
          { additionalProperties: false },
        ),
      },
      { additionalProperties: false },
    ),
  ],
  {
    default: 'keep',
    description:
      'What to do with a file once every copy of it is committed and verified: `keep` it, or `delete` it with a request (a 404/410 answer counts as already deleted). The request is conditional on the listed version: `If-Match` with its etag (list.fields.etag), else `If-Unmodified-Since` with its mtime; a 412 answer leaves the newer file for the next pass. Moving is not supported over HTTP.',
  },
);

export const httpSourceConfig = Type.Object(
  {
    ...sourceFields,
    headers: Type.Optional(HeaderMap('Headers sent with every request (list, download, delete).')),
    ...connectionFields,
    list: Type.Object(
      {
        url: Type.Optional(
          Type.String({
            minLength: 1,
            description: 'URL of the first page of the file list (GET, JSON). Either this or `sql`.',
          }),
        ),
        sql: Type.Optional(
          SqlListing({
            description:
              'List from the rows of a PostgreSQL query instead of a URL (either this or `url`): each row is a file. Column `path` (required) is its relative path, `size` (bytes, checked against the download), `mtime` and `etag` are its version; every other column is `meta.<column>` (e.g. `{meta.id}` in `download.url`). Rows are read through a cursor, `batch_size` at a time. The URL-listing keys (`headers`, `items`, `next`, `fields`…) do not apply.',
          }),
        ),
        headers: Type.Optional(
          HeaderMap(
            'Headers for the list requests; also sent with download/delete requests to the same origin (scheme, host, port) as `list.url`.',
          ),
        ),
        items: Type.String({
          default: '',
          description:
            'Dotted path to the array of files in each page (`files`, `data.items`); empty: the page is the array.',
        }),
        next: Type.Optional(
          Type.String({
            description:
              'Dotted path to the next page in each page: a URL (absolute or relative to the page), or a cursor/page token when `next_param` is set. Null, absent or empty: last page. A next page on another origin than `list.url` is fetched without the configured headers. A listing whose pages loop (a next URL seen before, or a page listing exactly the files of an earlier one) fails with an error naming the page.',
          }),
        ),
        next_param: Type.Optional(
          Type.String({
            description:
              'Query parameter that carries the `next` token: the next page is `list.url` with `?<next_param>=<token>` (an absolute URL in `next` is still followed).',
          }),
        ),
        max_pages: Type.Integer({
          minimum: 1,
          default: 10_000,
          description:
            'Most pages one listing fetches: a listing that reaches it fails with an error naming the page, so an API whose `next` never ends cannot keep a pass running forever. Raise it for APIs with more pages.',
        }),
        attempts: Type.Integer({
          minimum: 1,
          default: 3,
          description:
            'Tries per list page on retryable failures (429/5xx/network), waiting at least what Retry-After asks, so one throttled page does not end the listing.',
        }),
        fields: Type.Optional(
          Type.Object(
            {
              path: Type.String({
                description: 'Dotted path to the file’s relative path or name (required).',
              }),
              id: FieldPath('Dotted path to the file id (`{meta.id}` in URL templates).'),
              size: FieldPath(
                'Dotted path to the size in bytes (checked against Content-Length on download).',
              ),
              mtime: FieldPath(
                'Dotted path to the modification time (ISO 8601 string, or epoch seconds/milliseconds).',
              ),
              etag: FieldPath('Dotted path to a version tag (part of the item identity when present).'),
              sha256: FieldPath('Dotted path to the hex sha256 of the content, if the API gives it.'),
            },
            {
              additionalProperties: false,
              description:
                'Where each item field is in a list element (required with `url`). Every element’s own keys also land in `meta`, and each mapped field as `meta.<field>`.',
            },
          ),
        ),
      },
      {
        additionalProperties: false,
        description: 'How to list the files: a paginated JSON API (`url`) or a SQL query (`sql`).',
      },
    ),
    download: Type.Object(
      {
        url: UrlTemplateField(
          'URL that returns a file’s bytes (GET), e.g. `https://api/files/{meta.id}/content`.',
        ),
        headers: Type.Optional(HeaderMap('Extra headers for downloads.')),
      },
      { additionalProperties: false, description: 'How to fetch one file’s bytes.' },
    ),
    after_success: Type.Optional(HttpAfterSuccess),
  },
  { additionalProperties: false },
);

export const httpSource = definePlugin({
  name: 'http',
  kind: 'source',
  summary: 'Lists files through a paginated JSON REST API and downloads them with streamed GETs.',
  description:
    'Pages are followed through `list.next` (a URL, or a token with `list.next_param`). Downloads stream; a `Content-Length` that differs from the listed size fails the item. 429/5xx/network errors are retryable (Retry-After is honoured), other 4xx are not. `after_success: {delete: {url}}` deletes a file with its own request.',
  config: httpSourceConfig,
  examples: [
    {
      title: 'Files of one month from a REST API, deleted once copied',
      yaml: `list:
  url: "\${DATAHUB_URL}/api/files?month=\${MONTH}&year=\${YEAR}"
  headers:
    Authorization: "Bearer \${DATAHUB_TOKEN}"
  items: files
  next: next_page
  fields: { id: id, path: name, size: size, mtime: modified }
download:
  url: "\${DATAHUB_URL}/api/files/{meta.id}/content"
after_success:
  delete:
    url: "\${DATAHUB_URL}/api/files/{meta.id}"`,
    },
    {
      title: 'Cursor pagination',
      yaml: `list:
  url: https://api.example.com/v2/objects
  items: data.items
  next: data.cursor
  next_param: cursor
  fields: { path: key, size: bytes, etag: version }
download:
  url: https://api.example.com/v2/objects/{path}`,
    },
  ],
  validate(config) {
    checkListing(config);
  },
  create(config, ctx): SourceInstance {
    checkListing(config);
    const sourceName = config.name ?? 'http';
    const afterDelete = typeof config.after_success === 'object' ? config.after_success.delete : undefined;
    registerHttpSecrets(
      mergeHeaders(config.headers, config.list.headers, config.download.headers, afterDelete?.headers),
      [config.list.url ?? '', config.download.url, afterDelete?.url ?? ''],
    );
    const sql = config.list.sql;
    // Set exactly when the files come from a URL listing (checkListing).
    const firstPage = sql ? undefined : parseListUrl(config.list.url ?? '');
    const downloadUrl = compileUrlTemplate(config.download.url, '/download/url');
    const deleteUrl = afterDelete
      ? compileUrlTemplate(afterDelete.url, '/after_success/delete/url')
      : undefined;
    const client = new HttpClient(clientOptions(config, 'SLUICE_E_SOURCE'));
    const listHeaders = mergeHeaders(config.headers, config.list.headers);
    // The list's headers go with downloads to its origin; a SQL listing has no origin.
    const inherited = { origin: firstPage?.origin ?? '', headers: config.list.headers };
    const fields = config.list.fields ?? { path: 'path' };
    const itemsPath = config.list.items ?? '';

    const download = async (item: Item, signal?: AbortSignal): Promise<Readable> => {
      const url = downloadUrl.render(item, item.path);
      const res = (await client.get(
        url,
        headersFor(url, config.headers, inherited, config.download.headers),
        signal,
      ))!;
      const announced = res.headers['content-length'];
      if (item.size === undefined) return res;
      if (announced === undefined) return pipeThrough(res, new ExpectLength(item.size, item.path));
      if (Number(announced) !== item.size) {
        res.destroy();
        throw new SluiceError(
          'SLUICE_E_SOURCE',
          `GET ${displayUrl(url)} announces ${announced} bytes but the listing said ${item.size} for "${item.path}" (did the file change?)`,
          { retryable: false },
        );
      }
      return res;
    };

    const toItem = (element: unknown, pageUrl: URL, index: number): Item => {
      const where = `element ${index} of list page ${displayUrl(pageUrl)}`;
      if (element === null || typeof element !== 'object' || Array.isArray(element)) {
        throw new SluiceError('SLUICE_E_SOURCE', `${where} is not an object`, { retryable: false });
      }
      const path = getDotted(element, fields.path);
      if (typeof path !== 'string' || path.trim() === '') {
        throw new SluiceError(
          'SLUICE_E_SOURCE',
          `${where} has no file path at "${fields.path}" (list.fields.path)`,
          {
            retryable: false,
          },
        );
      }
      const meta: Record<string, unknown> = { ...(element as Record<string, unknown>) };
      for (const [field, fieldPath] of Object.entries(fields)) {
        if (fieldPath !== undefined) meta[field] = getDotted(element, fieldPath);
      }
      const unsafe = unsafePathReason(path);
      if (unsafe) return rejectedItem(sourceName, path, meta, where, unsafe);
      const sha256 = fields.sha256 ? getDotted(element, fields.sha256) : undefined;
      const etag = fields.etag ? getDotted(element, fields.etag) : undefined;
      const item: Item = createItem({
        source: sourceName,
        path,
        size: fields.size ? toSize(getDotted(element, fields.size)) : undefined,
        mtime: fields.mtime ? toDate(getDotted(element, fields.mtime)) : undefined,
        etag: typeof etag === 'string' || typeof etag === 'number' ? String(etag) : undefined,
        checksums:
          typeof sha256 === 'string' && /^[0-9a-f]{64}$/i.test(sha256)
            ? { sha256: sha256.toLowerCase() }
            : undefined,
        meta,
        open: (signal) => download(item, signal),
      });
      return item;
    };

    const nextPage = (page: unknown, current: URL): URL | null => {
      if (!config.list.next) return null;
      const value = getDotted(page, config.list.next);
      if (value === undefined || value === null || value === '' || value === false) return null;
      if (typeof value !== 'string' && typeof value !== 'number') {
        throw new SluiceError(
          'SLUICE_E_SOURCE',
          `list page ${displayUrl(current)}: "${config.list.next}" (list.next) is neither a URL nor a token`,
          { retryable: false },
        );
      }
      const text = String(value);
      if (config.list.next_param && !/^https?:\/\//i.test(text)) {
        const url = new URL(firstPage!);
        url.searchParams.set(config.list.next_param, text);
        return url;
      }
      return new URL(text, current);
    };

    const fetchPage = async (url: URL, signal: AbortSignal): Promise<unknown> => {
      const attempts = config.list.attempts ?? 3;
      // A next link is data from the server: credentials go only to the origin they were given for.
      const headers = url.origin === firstPage!.origin ? listHeaders : {};
      for (let attempt = 1; ; attempt++) {
        try {
          return await client.getJson(url, headers, signal);
        } catch (err) {
          if (attempt >= attempts || !isRetryableByDefault(err)) throw err;
          const backoffMs = Math.min(30_000, 500 * 2 ** (attempt - 1));
          const waitMs = Math.max(backoffMs, err instanceof SluiceError ? (err.retryAfterMs ?? 0) : 0);
          ctx.log.warn(
            { page: displayUrl(url), attempt, waitMs, err: (err as Error).message },
            'list page failed; retrying',
          );
          await sleep(waitMs, undefined, { signal });
        }
      }
    };

    /** True when the download URL answers 404/410 (the file is gone), false on any other answer. */
    const isGone = async (item: Item): Promise<boolean> => {
      const url = downloadUrl.render(item, item.path);
      const { status } = await client.head(
        url,
        headersFor(url, config.headers, inherited, config.download.headers),
      );
      return status === 404 || status === 410;
    };

    /*
     * A listing that does not end is an error, not a warning: the pass cannot know which files
     * it never saw, so it must not look complete (exit 0) while files stay undelivered.
     */
    const loops = (pageUrl: URL, why: string) =>
      new SluiceError('SLUICE_E_SOURCE', `list page ${displayUrl(pageUrl)} ${why}; the listing stops here`, {
        retryable: false,
      });

    return {
      async *list(signal) {
        if (sql) {
          // Each row once, as the query gives them; the runtime takes each path once per pass.
          const where = `the SQL listing (list.sql.query)`;
          let n = 0;
          for await (const row of listRows(sql, signal)) {
            yield rowToItem(row, ++n, { source: sourceName, where, open: download });
          }
          return;
        }
        const maxPages = config.list.max_pages ?? 10_000;
        const fetched = new Set<string>();
        /** Fingerprint of each non-empty page's items → the page that listed them first. */
        const pageContents = new Map<string, URL>();
        /** Version of each path yielded: one listing yields a path once, whatever the pages repeat. */
        const yielded = new Map<string, string>();
        let pageUrl: URL | null = firstPage!;
        while (pageUrl && !signal.aborted) {
          if (fetched.has(pageUrl.href)) throw loops(pageUrl, 'was already fetched (list.next loops)');
          if (fetched.size >= maxPages) {
            throw loops(pageUrl, `would be page ${maxPages + 1}, more than list.max_pages (${maxPages})`);
          }
          fetched.add(pageUrl.href);
          const page = await fetchPage(pageUrl, signal);
          const elements = getDotted(page, itemsPath);
          if (!Array.isArray(elements)) {
            throw new SluiceError(
              'SLUICE_E_SOURCE',
              `list page ${displayUrl(pageUrl)} has no array at "${itemsPath}" (list.items); found ${describeJson(elements)}`,
              { retryable: false },
            );
          }
          const items = elements.map((element, index) => toItem(element, pageUrl!, index));
          if (items.length > 0) {
            const fingerprint = pageFingerprint(items);
            const earlier = pageContents.get(fingerprint);
            if (earlier) {
              throw loops(
                pageUrl,
                `lists exactly the files of the earlier page ${displayUrl(earlier)} (list.next loops)`,
              );
            }
            pageContents.set(fingerprint, pageUrl);
          }
          for (const item of items) {
            const version = versionOf(item);
            // A rejected entry must never hide a listed file whose path looks like its display form.
            const key = item.rejected ? `\u0000${item.path}` : item.path;
            const seen = yielded.get(key);
            if (seen !== undefined) {
              if (seen !== version) {
                ctx.log.warn(
                  { path: item.path, page: displayUrl(pageUrl) },
                  'a file is listed twice with different versions; the first is processed, the other is left for the next pass',
                );
              }
              continue;
            }
            yielded.set(key, version);
            yield item;
          }
          pageUrl = nextPage(page, pageUrl);
        }
      },
      // Siblings can be fetched by path only when the download URL needs nothing but the path.
      openPath: downloadUrl.usesMeta
        ? undefined
        : async (path, signal) => {
            const url = downloadUrl.render({ meta: {} }, path);
            return client.get(
              url,
              headersFor(url, config.headers, inherited, config.download.headers),
              signal,
              true,
            );
          },
      remove: afterDelete
        ? async (item) => {
            if (item.rejected) throw new SluiceError('SLUICE_E_NAME', item.rejected, { retryable: false });
            const url = deleteUrl!.render(item, item.path);
            const method = afterDelete.method ?? 'DELETE';
            const headers = mergeHeaders(
              headersFor(url, config.headers, inherited, afterDelete.headers),
              versionCondition(item),
            );
            const res = await client.request(method, url, headers);
            const status = res.statusCode ?? 0;
            if (status === 404 || status === 410) {
              res.resume();
              return;
            }
            if (status === 412) {
              res.resume();
              // A server may answer 412 for a file that is gone too (no current version matches).
              if (await isGone(item)) return;
              throw new SluiceError(
                'SLUICE_E_CHANGED',
                `${method} ${displayUrl(url)}: "${item.path}" changed after it was listed (412 Precondition Failed); the newer file is left for the next pass`,
                { retryable: false },
              );
            }
            await client.expectSuccess(res, method, url);
            res.resume();
          }
        : undefined,
      async close() {
        client.close();
      },
    };
  },
});

type HttpSourceConfig = Static<typeof httpSourceConfig>;

/**
 * A listing is a URL or a SQL query, never both: the keys of one are checked here, not by a
 * schema union, so that an error names the key (ajv reports a failed union as a whole).
 */
function checkListing(config: HttpSourceConfig): void {
  const { list } = config;
  const problem = (jsonPath: string, message: string) =>
    new SluiceError('SLUICE_E_CONFIG', message, { context: { jsonPath } });
  if (list.url !== undefined && list.sql !== undefined) {
    throw problem('/list', 'list has both `url` and `sql`: list from a URL or from a SQL query, not both');
  }
  if (list.sql !== undefined) {
    const urlOnly = (['headers', 'next', 'next_param', 'fields'] as const).filter(
      (k) => list[k] !== undefined,
    );
    if (urlOnly.length > 0) {
      throw problem(
        `/list/${urlOnly[0]}`,
        `list.${urlOnly[0]} is for a URL listing; with list.sql the columns name the fields (path, size, mtime, etag; others are meta) and headers go under \`headers\` or \`download.headers\``,
      );
    }
    validateSqlListing(list.sql, '/list/sql');
    return;
  }
  if (list.url === undefined) {
    throw problem('/list', 'list needs `url` (a JSON API) or `sql` (a PostgreSQL query)');
  }
  if (list.fields === undefined) {
    throw problem(
      '/list/fields',
      'list.fields is required with list.url: where each file’s path (and size, mtime…) is in a list element',
    );
  }
}

function parseListUrl(text: string): URL {
  try {
    const url = new URL(text);
    if (url.protocol === 'http:' || url.protocol === 'https:') return url;
  } catch {
    // reported below
  }
  throw new SluiceError('SLUICE_E_CONFIG', `"${text}" is not an http(s) URL`, {
    context: { jsonPath: '/list/url' },
  });
}

function versionOf(item: Item): string {
  return itemIdentity(item).version;
}

/** What a page lists, independent of order: equal for two pages that list the same files. */
function pageFingerprint(items: readonly Item[]): string {
  const keys = items.map((item) => `${item.path}\u0000${versionOf(item)}`).sort();
  return createHash('sha256').update(keys.join('\n')).digest('hex');
}

/**
 * The precondition that makes a delete act only on the listed version: `If-Match` with a strong
 * etag, else `If-Unmodified-Since` with the mtime (a weak etag never matches `If-Match`).
 */
function versionCondition(item: Item): Record<string, string> {
  if (item.etag && !item.etag.startsWith('W/')) {
    return { 'if-match': item.etag.startsWith('"') ? item.etag : `"${item.etag}"` };
  }
  if (item.mtime) return { 'if-unmodified-since': item.mtime.toUTCString() };
  return {};
}

function describeJson(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

/** Fails the stream when a body without Content-Length ends at another size than listed. */
class ExpectLength extends Transform {
  private received = 0;

  constructor(
    private readonly expected: number,
    private readonly path: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.received === this.expected) {
      callback();
      return;
    }
    callback(
      new SluiceError(
        'SLUICE_E_SOURCE',
        `download of "${this.path}" gave ${this.received} bytes but the listing said ${this.expected} (did the file change?)`,
        { retryable: false },
      ),
    );
  }
}
