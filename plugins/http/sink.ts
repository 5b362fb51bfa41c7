/**
 * `http` sink: uploads each item with one streamed PUT or POST. Atomicity is the server's
 * business: when the item's stream fails mid-way the request is destroyed before its end, so a
 * well-behaved server (one that stores a body only once it was received completely) keeps
 * nothing. The server's JSON reply may report size/sha256 for verification.
 */
import type { IncomingMessage } from 'node:http';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { definePlugin, type SinkCommit, type SinkInstance } from '../../core/plugin-api.js';
import { Verify } from '../../core/schema-fragments.js';
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
    verify: Type.Optional(Verify),
  },
  { additionalProperties: false },
);

const DEFAULT_RESPONSE_FIELDS = { size: 'size', sha256: 'sha256' };

export const httpSink = definePlugin({
  name: 'http',
  kind: 'sink',
  summary: 'Uploads each file with a streamed PUT or POST to a REST API.',
  description:
    'The body streams (Content-Length when the size is known, chunked otherwise); 2xx is success. `verify` compares what the server’s JSON reply reports (`response`); there is no read-back, so `verify: sha256` needs a sha256 in the reply. A failing item stream destroys the request mid-body, so a well-behaved server stores nothing. 429/5xx/network errors are retryable (Retry-After is honoured), other 4xx are not.',
  config: httpSinkConfig,
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
    registerHttpSecrets(config.headers, [config.url]);
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

    return {
      async write(req) {
        const url = uploadUrl.render(req.item, req.destination);
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
          return { location: displayUrl(url), skipped: true };
        }
        try {
          await client.expectSuccess(res, method, url);
        } catch (err) {
          req.body.destroy();
          throw err;
        }
        return readCommit(res, url);
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
