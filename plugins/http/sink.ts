/**
 * `http` sink: uploads each item with one streamed PUT or POST. Atomicity is the server's
 * business: when the item's stream fails mid-way the request is destroyed before its end, so a
 * well-behaved server (one that stores a body only once it was received completely) keeps
 * nothing. What the server stored comes from its JSON reply or a HEAD of the stored file
 * (`verify_from`); a 2xx alone proves nothing, and the bytes sent are never reported as stored.
 */
import type { IncomingMessage } from 'node:http';
import { type Static, Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import {
  definePlugin,
  type SinkCommit,
  type SinkInstance,
  type SinkWriteRequest,
} from '../../core/plugin-api.js';
import { displayUrl, HttpClient, registerHttpSecrets } from './client.js';
import { mergeHeaders } from './headers.js';
import { getDotted } from './json-path.js';
import { clientOptions, connectionFields, HeaderMap, UrlTemplateField } from './schema.js';
import { compileUrlTemplate } from './url-template.js';

export const httpSinkConfig = Type.Object(
  {
    method: Type.Union([Type.Literal('PUT'), Type.Literal('POST')], {
      default: 'PUT',
      description: 'HTTP method of the upload.',
    }),
    url: UrlTemplateField('Upload URL; `{path}` is the item’s destination, e.g. `https://api/files/{path}`.'),
    headers: Type.Optional(HeaderMap('Headers sent with every upload.')),
    content_type: Type.String({
      default: 'application/octet-stream',
      description: 'Content-Type of the uploads.',
    }),
    ...connectionFields,
    response: Type.Optional(
      Type.Object(
        {
          size: Type.Optional(
            Type.String({ description: 'Dotted path to the stored size in the JSON reply.' }),
          ),
          sha256: Type.Optional(
            Type.String({ description: 'Dotted path to the stored content’s hex sha256 in the JSON reply.' }),
          ),
        },
        {
          additionalProperties: false,
          description:
            'Where the server’s JSON reply reports what it stored, for verification. Default: `size` and `sha256` at the top level when present; a path named here must be present.',
        },
      ),
    ),
    if_exists: Type.Union([Type.Literal('overwrite'), Type.Literal('skip'), Type.Literal('fail')], {
      default: 'overwrite',
      description:
        'When the destination exists: `overwrite`; or send `If-None-Match: *` and, on 412 Precondition Failed, `skip` the item or `fail`. Needs a server that honours If-None-Match.',
    }),
    verify_from: Type.Union([Type.Literal('auto'), Type.Literal('response'), Type.Literal('head')], {
      default: 'auto',
      description:
        'Where the size `verify: size` compares comes from: `response` — the JSON reply (`response.size`); `head` — a HEAD request to `head_url` after the upload, whose Content-Length is the stored size; `auto` — the reply’s size when it has one, else that HEAD (for POST only when `head_url` is set). An upload whose stored size cannot be learned fails (the bytes sent are never taken for the bytes stored) unless `verify: none`.',
    }),
    head_url: Type.Optional(
      UrlTemplateField(
        'URL of the stored file for the HEAD of `verify_from` and of `if_exists: skip` (which reports the existing file’s size). Default: the upload URL, for PUT.',
      ),
    ),
    verify: Type.Optional(
      Type.Union([Type.Literal('size'), Type.Literal('sha256'), Type.Literal('none')], {
        default: 'size',
        description:
          '`size` (default): the stored size (see `verify_from`) must equal the bytes sent; `sha256`: the reply must report the stored content’s sha256 (`response.sha256`), as HTTP has no read-back; `none`: accept a 2xx answer without checking what the server stored — the explicit opt-out for APIs that report nothing.',
      }),
    ),
  },
  { additionalProperties: false },
);

const DEFAULT_RESPONSE_FIELDS = { size: 'size', sha256: 'sha256' };

const VERIFIABLE_HINT =
  'set response.size to where the JSON reply reports the stored size, or head_url to a URL whose HEAD answers the stored file’s Content-Length (verify_from), or write verify: none to accept uploads unchecked';

type HttpSinkConfig = Static<typeof httpSinkConfig>;

/**
 * What `sluice validate` can see without a server: the URL templates, and contradictions in how
 * to verify (each error's hint says how to make the sink verifiable).
 */
function checkVerifiable(config: HttpSinkConfig): void {
  compileUrlTemplate(config.url, '/url');
  if (config.head_url) compileUrlTemplate(config.head_url, '/head_url');
  const verifyFrom = config.verify_from ?? 'auto';
  const verify = config.verify ?? 'size';
  if (verify === 'sha256' && verifyFrom === 'head') {
    throw new SluiceError(
      'SLUICE_E_CONFIG',
      'a HEAD reports no sha256, so verify: sha256 cannot be checked',
      {
        context: {
          jsonPath: '/verify_from',
          hint: 'use verify_from: response with response.sha256 naming the sha256 in the upload’s JSON reply, or verify: size',
        },
      },
    );
  }
  if (verify !== 'none' && verifyFrom === 'head' && (config.method ?? 'PUT') === 'POST' && !config.head_url) {
    throw new SluiceError(
      'SLUICE_E_CONFIG',
      'verify_from: head with method POST needs head_url: a POST URL names where files are sent, not the stored file',
      {
        context: {
          jsonPath: '/verify_from',
          hint: `set head_url to the stored file’s URL (e.g. https://api/files/{path}), or ${VERIFIABLE_HINT}`,
        },
      },
    );
  }
}

export const httpSink = definePlugin({
  name: 'http',
  kind: 'sink',
  summary: 'Uploads each file with a streamed PUT or POST to a REST API.',
  description:
    'The body streams (Content-Length when the size is known, chunked otherwise); 2xx is success. `verify` compares what the server stored — its JSON reply (`response`) or a HEAD of the stored file (`verify_from`, `head_url`) — with what was sent; an upload whose stored size cannot be learned fails unless `verify: none`. There is no read-back, so `verify: sha256` needs a sha256 in the reply. A failing item stream destroys the request mid-body, so a well-behaved server stores nothing. 429/5xx/network errors are retryable (Retry-After is honoured), other 4xx are not.',
  config: httpSinkConfig,
  validate: checkVerifiable,
  examples: [
    {
      title: 'PUT to a REST API',
      yaml: `method: PUT
url: "\${DATAHUB_URL}/api/files/{path}"
headers:
  Authorization: "Bearer \${DATAHUB_TOKEN}"`,
    },
  ],
  create(config): SinkInstance {
    registerHttpSecrets(config.headers, [config.url, config.head_url ?? '']);
    const uploadUrl = compileUrlTemplate(config.url, '/url');
    const client = new HttpClient(clientOptions(config, 'SLUICE_E_SINK'));
    const ifExists = config.if_exists ?? 'overwrite';
    const headers = mergeHeaders(
      { 'content-type': config.content_type ?? 'application/octet-stream' },
      ifExists === 'overwrite' ? undefined : { 'if-none-match': '*' },
      config.headers,
    );
    const method = config.method ?? 'PUT';

    const readCommit = async (res: IncomingMessage, url: URL): Promise<SinkCommit> => {
      const location = displayUrl(url);
      if (!/\bjson\b/i.test(res.headers['content-type'] ?? '')) {
        res.resume();
        if (config.response || config.verify === 'sha256') throw missingField(method, url, 'a JSON reply');
        return { location };
      }
      const reply = await client.readJson(res, method, url);
      const size = pickField(reply, config.response?.size ?? DEFAULT_RESPONSE_FIELDS.size, 'number');
      const sha256 = pickField(reply, config.response?.sha256 ?? DEFAULT_RESPONSE_FIELDS.sha256, 'string');
      if (config.response?.size && size === undefined) {
        throw missingField(method, url, `size at "${config.response.size}"`);
      }
      if (config.response?.sha256 && sha256 === undefined) {
        throw missingField(method, url, `sha256 at "${config.response.sha256}"`);
      }
      if (config.verify === 'sha256' && sha256 === undefined) {
        throw missingField(method, url, 'sha256, which verify: sha256 needs (HTTP has no read-back)');
      }
      return {
        location,
        size: size as number | undefined,
        sha256: (sha256 as string | undefined)?.toLowerCase(),
      };
    };

    const verify = config.verify ?? 'size';
    const verifyFrom = config.verify_from ?? 'auto';
    const headUrl = config.head_url ? compileUrlTemplate(config.head_url, '/head_url') : undefined;
    /** The stored file's URL for a HEAD, or undefined when there is none to ask (a POST without head_url). */
    const storedUrl = (req: SinkWriteRequest, uploadedTo: URL): URL | undefined =>
      headUrl ? headUrl.render(req.item, req.destination) : method === 'PUT' ? uploadedTo : undefined;

    /** Content-Length of a HEAD of the stored file, or why there is none. */
    const headSize = async (url: URL, signal: AbortSignal): Promise<number | string> => {
      const { status, headers: answer } = await client.head(url, config.headers ?? {}, signal);
      if (status === 404 || status === 410)
        return `HEAD ${displayUrl(url)} answered ${status}: nothing is there`;
      if (status < 200 || status >= 300) return `HEAD ${displayUrl(url)} answered ${status}`;
      const length = Number(answer['content-length']);
      return answer['content-length'] !== undefined && Number.isSafeInteger(length) && length >= 0
        ? length
        : `HEAD ${displayUrl(url)} has no Content-Length`;
    };

    /** Adds the stored size `verify: size` needs, from the reply or a HEAD; fails when there is none. */
    const confirmStored = async (
      commit: SinkCommit,
      req: SinkWriteRequest,
      url: URL,
      status: number,
    ): Promise<SinkCommit> => {
      if (verify !== 'size' || (verifyFrom !== 'head' && commit.size !== undefined)) return commit;
      const unverifiable = (why: string) =>
        new SluiceError(
          'SLUICE_E_VERIFY',
          `${method} ${displayUrl(url)} answered ${status} but did not say what it stored (${why}): ${VERIFIABLE_HINT}`,
          { retryable: false },
        );
      const target = verifyFrom === 'response' ? undefined : storedUrl(req, url);
      if (!target) {
        throw unverifiable(
          verifyFrom === 'response'
            ? 'its reply has no size'
            : 'its reply has no size and a POST has no head_url to ask',
        );
      }
      const size = await headSize(target, req.signal);
      if (typeof size === 'string')
        throw unverifiable(commit.size === undefined ? `its reply has no size; ${size}` : size);
      return { ...commit, size };
    };

    return {
      async write(req) {
        const url = uploadUrl.render(req.item, req.destination);
        // The server makes the bytes visible as the request ends; this is the last point before it.
        await req.reserve?.(req.destination);
        const res = await client.upload(method, url, headers, req.body, req.size, req.signal);
        if (res.statusCode === 412 && ifExists !== 'overwrite') {
          res.resume();
          if (ifExists === 'fail') {
            req.body.destroy();
            throw new SluiceError('SLUICE_E_EXISTS', `${displayUrl(url)} already exists (if_exists: fail)`, {
              retryable: false,
            });
          }
          // The contract says a sink consumes the body: drain what was not sent.
          req.body.resume();
          // The runtime counts a skip as delivered only when the existing file holds the same
          // bytes: say its size when the server tells it, never the size of what was not sent.
          const target = storedUrl(req, url);
          const size = target ? await headSize(target, req.signal) : undefined;
          return { location: displayUrl(url), skipped: true, ...(typeof size === 'number' ? { size } : {}) };
        }
        try {
          await client.expectSuccess(res, method, url);
        } catch (err) {
          req.body.destroy();
          throw err;
        }
        return confirmStored(await readCommit(res, url), req, url, res.statusCode ?? 0);
      },
      async close() {
        client.close();
      },
    };
  },
});

function pickField(reply: unknown, path: string, type: 'number' | 'string'): unknown {
  const value = getDotted(reply, path);
  if (type === 'number') return typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined;
  return typeof value === 'string' && /^[0-9a-f]{64}$/i.test(value) ? value : undefined;
}

function missingField(method: string, url: URL, what: string): SluiceError {
  return new SluiceError(
    'SLUICE_E_SINK',
    `${method} ${displayUrl(url)} succeeded but its reply has no ${what} (response)`,
    {
      retryable: false,
    },
  );
}
