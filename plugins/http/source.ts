/**
 * `http` source: lists files through a paginated JSON REST API and downloads each with a
 * streamed GET. After success it can delete a file with its own request (the API's DELETE).
 */
import { Transform, type TransformCallback, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import { isRetryableByDefault, SluiceError } from '../../core/errors.js';
import { createItem } from '../../core/item.js';
import { definePlugin, type Item, type SourceInstance } from '../../core/plugin-api.js';
import { sourceCommon } from '../../core/schema-fragments.js';
import { pipeThrough } from '../../core/streams.js';
import { displayUrl, HttpClient, registerHttpSecrets } from './client.js';
import { headersFor, mergeHeaders } from './headers.js';
import { getDotted } from './json-path.js';
import { clientOptions, connectionFields, HeaderMap, UrlTemplateField } from './schema.js';
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
      'What to do with a file once every copy of it is committed and verified: `keep` it, or `delete` it with a request (a 404/410 answer counts as already deleted). Moving is not supported over HTTP.',
  },
);

export const httpSourceConfig = Type.Object(
  {
    ...sourceFields,
    headers: Type.Optional(HeaderMap('Headers sent with every request (list, download, delete).')),
    ...connectionFields,
    list: Type.Object(
      {
        url: Type.String({
          minLength: 1,
          description: 'URL of the first page of the file list (GET, JSON).',
        }),
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
              'Dotted path to the next page in each page: a URL (absolute or relative to the page), or a cursor/page token when `next_param` is set. Null, absent or empty: last page.',
          }),
        ),
        next_param: Type.Optional(
          Type.String({
            description:
              'Query parameter that carries the `next` token: the next page is `list.url` with `?<next_param>=<token>` (an absolute URL in `next` is still followed).',
          }),
        ),
        attempts: Type.Integer({
          minimum: 1,
          default: 3,
          description:
            'Tries per list page on retryable failures (429/5xx/network), waiting at least what Retry-After asks, so one throttled page does not end the listing.',
        }),
        fields: Type.Object(
          {
            path: Type.String({ description: 'Dotted path to the file’s relative path or name (required).' }),
            id: FieldPath('Dotted path to the file id (`{meta.id}` in URL templates).'),
            size: FieldPath('Dotted path to the size in bytes (checked against Content-Length on download).'),
            mtime: FieldPath(
              'Dotted path to the modification time (ISO 8601 string, or epoch seconds/milliseconds).',
            ),
            etag: FieldPath('Dotted path to a version tag (part of the item identity when present).'),
            sha256: FieldPath('Dotted path to the hex sha256 of the content, if the API gives it.'),
          },
          {
            additionalProperties: false,
            description:
              'Where each item field is in a list element. Every element’s own keys also land in `meta`, and each mapped field as `meta.<field>`.',
          },
        ),
      },
      { additionalProperties: false, description: 'How to list the files.' },
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
  create(config, ctx): SourceInstance {
    const sourceName = config.name ?? 'http';
    const afterDelete = typeof config.after_success === 'object' ? config.after_success.delete : undefined;
    registerHttpSecrets(
      mergeHeaders(config.headers, config.list.headers, config.download.headers, afterDelete?.headers),
      [config.list.url, config.download.url, afterDelete?.url ?? ''],
    );
    const firstPage = parseListUrl(config.list.url);
    const downloadUrl = compileUrlTemplate(config.download.url, '/download/url');
    const deleteUrl = afterDelete
      ? compileUrlTemplate(afterDelete.url, '/after_success/delete/url')
      : undefined;
    const client = new HttpClient(clientOptions(config, 'SLUICE_E_SOURCE'));
    const listHeaders = mergeHeaders(config.headers, config.list.headers);
    const inherited = { origin: firstPage.origin, headers: config.list.headers };
    const fields = config.list.fields;
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
        const url = new URL(firstPage);
        url.searchParams.set(config.list.next_param, text);
        return url;
      }
      return new URL(text, current);
    };

    const fetchPage = async (url: URL, signal: AbortSignal): Promise<unknown> => {
      const attempts = config.list.attempts ?? 3;
      for (let attempt = 1; ; attempt++) {
        try {
          return await client.getJson(url, listHeaders, signal);
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

    return {
      async *list(signal) {
        const fetched = new Set<string>();
        let pageUrl: URL | null = firstPage;
        while (pageUrl && !signal.aborted) {
          if (fetched.has(pageUrl.href)) {
            throw new SluiceError(
              'SLUICE_E_SOURCE',
              `list pagination loops: ${displayUrl(pageUrl)} was already fetched`,
              {
                retryable: false,
              },
            );
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
          for (const [index, element] of elements.entries()) yield toItem(element, pageUrl, index);
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
            const url = deleteUrl!.render(item, item.path);
            await client.call(
              afterDelete.method ?? 'DELETE',
              url,
              headersFor(url, config.headers, inherited, afterDelete.headers),
              true,
            );
          }
        : undefined,
      async close() {
        client.close();
      },
    };
  },
});

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

function toSize(value: unknown): number | undefined {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** ISO strings, or epoch numbers: below 1e11 they are seconds (1e11 s is the year 5138). */
function toDate(value: unknown): Date | undefined {
  let date: Date | undefined;
  if (typeof value === 'number') date = new Date(value < 1e11 ? value * 1000 : value);
  else if (typeof value === 'string' && value.trim() !== '')
    date = /^\d+$/.test(value) ? toDate(Number(value)) : new Date(value);
  return date && !Number.isNaN(date.getTime()) ? date : undefined;
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
