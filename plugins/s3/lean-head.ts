/**
 * HeadObject and single-part PutObject without the AWS SDK's middleware stack, for the hot
 * paths: the s3 source's tidy-up (one version check per deleted or moved key) and the s3 sink's
 * small objects (one PutObject each). A SigV4-signed request over a keep-alive agent. The SDK
 * costs ~1–2.5 ms of CPU per HeadObject here, this ~0.2–0.4 ms; see bench/RESULTS.md for PUT.
 *
 * Only for a custom endpoint addressed path-style (`endpoint/bucket/key`: MinIO, Ceph,
 * s3rver…), where the URL is plain; AWS itself (virtual-hosted buckets, endpoint rules) keeps
 * the SDK. Credentials, the region and the clock-skew correction are the SDK client's own, so
 * every credential source (keys, profile, role) works alike. A PUT is lean only when the SDK
 * would add nothing to it: no request checksum (`request_checksum: when_required`) and
 * metadata that is printable ASCII.
 */
import { createHash, createHmac } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';

/** Size and ETag (unquoted) of an object, or null when there is none. */
export type LeanHead = (
  key: string,
  signal?: AbortSignal,
) => Promise<{ size?: number; etag?: string } | null>;

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** RFC 3986 encoding of one path segment, as SigV4 and S3 want it. */
function escapeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export interface SignedHead {
  path: string;
  headers: Record<string, string>;
}

export interface SignOptions {
  host: string;
  /** The endpoint's path, `` or `/base` (no trailing `/`). */
  basePath: string;
  bucket: string;
  key: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  now: Date;
  signingKey?: (day: string) => Buffer;
}

/** The path and signed headers of a HEAD of `key` (exported to compare with the SDK's signer). */
export function signHead(options: SignOptions): SignedHead {
  return signRequest({ ...options, method: 'HEAD', payloadHash: EMPTY_SHA256 });
}

/**
 * The path and signed headers of a request on `key`: `headers` (lower-case names) are sent and
 * signed with host, the payload hash and the date.
 */
export function signRequest(
  options: SignOptions & { method: 'HEAD' | 'PUT'; payloadHash: string; headers?: Record<string, string> },
): SignedHead {
  const { host, bucket, key, region, credentials } = options;
  const path = `${options.basePath}/${escapeSegment(bucket)}/${key.split('/').map(escapeSegment).join('/')}`;
  const amzDate = options.now.toISOString().replace(/[-:]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = {
    ...options.headers,
    host,
    'x-amz-content-sha256': options.payloadHash,
    'x-amz-date': amzDate,
    ...(credentials.sessionToken ? { 'x-amz-security-token': credentials.sessionToken } : {}),
  };
  const names = Object.keys(headers).sort();
  const canonical = [
    options.method,
    path,
    '',
    // SigV4 canonical values: trimmed, runs of spaces as one.
    ...names.map((name) => `${name}:${headers[name].trim().replace(/ +/g, ' ')}`),
    '',
    names.join(';'),
    options.payloadHash,
  ].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const stringToSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    scope,
    createHash('sha256').update(canonical).digest('hex'),
  ].join('\n');
  const key4 = options.signingKey?.(day) ?? signingKey(credentials.secretAccessKey, day, region);
  const signature = createHmac('sha256', key4).update(stringToSign).digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return { path, headers };
}

function signingKey(secret: string, day: string, region: string): Buffer {
  const hmac = (k: string | Buffer, s: string) => createHmac('sha256', k).update(s).digest();
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), 's3'), 'aws4_request');
}

/**
 * The error a failed request is, named as the SDK names it: the `<Code>` and `<Message>` of the
 * answer's XML body when it has one (a HEAD answer has none), else a name for the status.
 */
function requestError(status: number, message: string | undefined, body = ''): Error {
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
  const said = /<Message>([^<]*)<\/Message>/.exec(body)?.[1];
  const name =
    code ||
    (
      {
        301: 'PermanentRedirect',
        400: 'BadRequest',
        403: 'Forbidden',
        404: 'NotFound',
        412: 'PreconditionFailed',
      } as const
    )[status as 301] ||
    (status >= 500 ? 'ServiceUnavailable' : 'UnknownError');
  return Object.assign(new Error(said || message || `HTTP ${status}`), {
    name,
    $metadata: { httpStatusCode: status },
  });
}

/** A single-part PutObject of `body`; resolves to the object's ETag (unquoted). */
export type LeanPut = (request: {
  key: string;
  body: Buffer;
  /** User metadata (`x-amz-meta-*`). */
  metadata?: Record<string, string>;
  /** Create only (`If-None-Match: *`). */
  exclusive?: boolean;
  signal?: AbortSignal;
}) => Promise<string | undefined>;

/**
 * A server-side CopyObject into the connection's bucket; resolves to the copy's ETag (unquoted).
 * `replace`: the headers of a REPLACE copy (content headers, `x-amz-meta-*`).
 */
export type LeanCopy = (request: {
  key: string;
  /** The `x-amz-copy-source` value (`bucket/escaped-key`). */
  copySource: string;
  /** Quoted ETag the source must have. */
  ifMatch?: string;
  exclusive?: boolean;
  replace?: Record<string, string>;
  signal?: AbortSignal;
}) => Promise<string | undefined>;

/** The headers of a HeadObject of any bucket on the endpoint; a missing object throws NotFound. */
export type LeanHeaders = (request: {
  bucket: string;
  key: string;
  ifMatch?: string;
  signal?: AbortSignal;
}) => Promise<import('node:http').IncomingHttpHeaders>;

/** Codes of an error in a 200 answer that a retry may cure (the rest are 400s, as the SDK has them). */
const RETRYABLE_IN_BODY = new Set(['InternalError', 'SlowDown', 'ServiceUnavailable', 'RequestTimeout']);

/** A 200 body without its result: true when a retry may cure it (no error, or a transient one). */
function failedInBody(body: string): boolean {
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
  return code === undefined || RETRYABLE_IN_BODY.has(code);
}

/** Header values the SDK would send as they are: printable ASCII. */
const PLAIN_VALUE = /^[\x20-\x7e]*$/;

/**
 * A lean HeadObject for `bucket` at `endpoint`, or undefined when the SDK must do it (no custom
 * endpoint, or virtual-hosted addressing).
 */
export async function leanHeadObject(options: {
  client: S3Client;
  endpoint: string | undefined;
  pathStyle: boolean;
  bucket: string;
  region: string;
  maxSockets: number;
  /** Whether the SDK computes request checksums (then PUTs stay the SDK's). */
  checksums: boolean;
}): Promise<
  { head: LeanHead; put?: LeanPut; copy?: LeanCopy; headersOf?: LeanHeaders; destroy(): void } | undefined
> {
  const { client, bucket, region } = options;
  if (options.endpoint === undefined || !options.pathStyle) return undefined;
  const url = new URL(options.endpoint);
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.username !== '') {
    return undefined;
  }
  const secure = url.protocol === 'https:';
  // Loaded here, not at the top: every command imports the plugin modules (node:http costs
  // tens of milliseconds of start-up, for pipelines that never talk to S3).
  const transport = secure ? await import('node:https') : await import('node:http');
  const agent = new transport.Agent({ keepAlive: true, maxSockets: options.maxSockets });
  const basePath = url.pathname.replace(/\/+$/, '');
  let cached: { secret: string; day: string; key: Buffer } | undefined;
  const sign = async (
    method: 'HEAD' | 'PUT',
    key: string,
    payloadHash: string,
    headers?: Record<string, string>,
    inBucket = bucket,
  ): Promise<SignedHead> => {
    const credentials = await client.config.credentials();
    const offset = (client.config as { systemClockOffset?: number }).systemClockOffset ?? 0;
    return signRequest({
      method,
      host: url.host,
      basePath,
      bucket: inBucket,
      key,
      region,
      credentials,
      now: new Date(Date.now() + offset),
      payloadHash,
      headers,
      signingKey: (day) => {
        if (cached?.secret !== credentials.secretAccessKey || cached.day !== day) {
          cached = {
            secret: credentials.secretAccessKey,
            day,
            key: signingKey(credentials.secretAccessKey, day, region),
          };
        }
        return cached.key;
      },
    });
  };

  const put: LeanPut = async ({ key, body, metadata = {}, exclusive, signal }) => {
    const extra: Record<string, string> = exclusive ? { 'if-none-match': '*' } : {};
    for (const [name, value] of Object.entries(metadata)) extra[`x-amz-meta-${name.toLowerCase()}`] = value;
    // Over plain http the body is signed (as the SDK does); TLS already protects it in transit.
    const payloadHash = secure ? 'UNSIGNED-PAYLOAD' : createHash('sha256').update(body).digest('hex');
    // The type the SDK gives a body it does not know (a server must not guess one from the name).
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(body.length) };
    const answer = await send(() => sign('PUT', key, payloadHash, extra), 'PUT', body, signal, headers);
    if (answer.status !== 200) throw requestError(answer.status, answer.message, answer.body);
    return unquoted(answer.headers.etag);
  };

  const headersOf: LeanHeaders = async ({ bucket: inBucket, key, ifMatch, signal }) => {
    const conditions: Record<string, string> = ifMatch === undefined ? {} : { 'if-match': ifMatch };
    const answer = await send(
      () => sign('HEAD', key, EMPTY_SHA256, conditions, inBucket),
      'HEAD',
      undefined,
      signal,
    );
    if (answer.status !== 200) throw requestError(answer.status, answer.message);
    return answer.headers;
  };

  const head: LeanHead = async (key, signal) => {
    let headers: Answer['headers'];
    try {
      headers = await headersOf({ bucket, key, signal });
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return null;
      throw err;
    }
    const length = headers['content-length'];
    return { size: length === undefined ? undefined : Number(length), etag: unquoted(headers.etag) };
  };

  const copy: LeanCopy = async ({ key, copySource, ifMatch, exclusive, replace, signal }) => {
    const extra: Record<string, string> = { 'x-amz-copy-source': copySource, ...replace };
    if (ifMatch !== undefined) extra['x-amz-copy-source-if-match'] = ifMatch;
    if (exclusive) extra['if-none-match'] = '*';
    if (replace) extra['x-amz-metadata-directive'] = 'REPLACE';
    const payloadHash = secure ? 'UNSIGNED-PAYLOAD' : EMPTY_SHA256;
    // S3 may answer 200 and fail the copy later in the body (keep-alive spaces, then an
    // <Error>), or end the body with nothing (the SDK's "S3 aborted request"): only a
    // CopyObjectResult is a copy; an internal error there is tried again like a 503.
    const resultOf = (answer: Answer) =>
      /<CopyObjectResult[\s>][\s\S]*<\/CopyObjectResult>/.exec(answer.body)?.[0];
    const answer = await send(
      () => sign('PUT', key, payloadHash, extra),
      'PUT',
      undefined,
      signal,
      { 'content-length': '0' },
      (a) => a.status === 200 && resultOf(a) === undefined && failedInBody(a.body),
    );
    if (answer.status !== 200) throw requestError(answer.status, answer.message, answer.body);
    const result = resultOf(answer);
    if (result === undefined) {
      const code = /<Code>([^<]*)<\/Code>/.exec(answer.body)?.[1];
      throw requestError(
        failedInBody(answer.body) ? 503 : 400,
        'the copy was answered 200 without a CopyObjectResult',
        code === undefined ? '<Code>InternalError</Code>' : answer.body,
      );
    }
    const etag = /<ETag>([^<]*)<\/ETag>/.exec(result)?.[1];
    return etag === undefined ? undefined : unquoted(etag.replace(/&quot;|&#34;/g, '"'));
  };

  /**
   * One request; a dropped keep-alive socket, a server error or a throttling answer is tried
   * again, up to the SDK client's own `maxAttempts` (3 unless configured, as AWS_MAX_ATTEMPTS
   * does): a HEAD is idempotent, and so is a PUT of the whole object, which never shows half
   * of it.
   */
  async function send(
    signed: () => Promise<SignedHead>,
    method: 'HEAD' | 'PUT',
    body: Buffer | undefined,
    signal: AbortSignal | undefined,
    unsigned: Record<string, string> = {},
    /** An answer that is a transient failure although its status does not say so. */
    transient: (answer: Answer) => boolean = () => false,
  ): Promise<Answer> {
    const attempts = Math.max(1, (await client.config.maxAttempts()) || 3);
    for (let n = 1; ; n++) {
      const last = n >= attempts || signal?.aborted === true;
      let answer: Answer | undefined;
      try {
        // Signed again for each attempt: the clock offset may have been corrected.
        const { path, headers } = await signed();
        answer = await once(method, path, { ...headers, ...unsigned }, body, signal);
      } catch (err) {
        if ((err as { code?: string }).code === 'ABORT_ERR' || last) throw err;
      }
      const skewed = answer !== undefined && correctedClock(answer);
      const again = skewed || answer?.status === 429 || (answer?.status ?? 0) >= 500;
      if (answer && (last || !(again || transient(answer)))) return answer;
      await new Promise((r) => setTimeout(r, 100 * n));
    }
  }
  /**
   * A 403 whose Date is more than 5 minutes from this host's corrected clock: the request was
   * refused for the clock (RequestTimeTooSkewed; a HEAD has no body to say so). The offset is
   * set on the SDK client, as the SDK does, so its requests and these agree; true to try again.
   */
  function correctedClock(answer: Answer): boolean {
    const date = answer.headers.date;
    if (answer.status !== 403 || date === undefined) return false;
    const config = client.config as { systemClockOffset?: number };
    const offset = Date.parse(date) - Date.now();
    if (!Number.isFinite(offset) || Math.abs(offset - (config.systemClockOffset ?? 0)) < 5 * 60_000)
      return false;
    config.systemClockOffset = offset;
    return true;
  }
  function once(
    method: 'HEAD' | 'PUT',
    path: string,
    headers: Record<string, string>,
    body: Buffer | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const request = transport.request(
        { agent, hostname: url.hostname, port: url.port || undefined, method, path, headers, signal },
        (response) => {
          const status = response.statusCode ?? 0;
          // An error's XML body says why, a copy's says its ETag (bounded); a HEAD or a PUT of an
          // object answer with no body.
          let text = '';
          if (status >= 300 || method === 'PUT') {
            response.setEncoding('utf8');
            // The end of it (a copy's verdict comes after any keep-alive spaces), bounded.
            response.on('data', (chunk: string) => {
              text = (text + chunk).slice(-64 * 1024);
            });
          } else response.resume();
          response.once('end', () =>
            resolve({ status, message: response.statusMessage, headers: response.headers, body: text }),
          );
          response.once('error', reject);
        },
      );
      request.once('error', reject);
      request.end(body);
    });
  }
  return {
    head,
    ...(options.checksums ? {} : { put, copy, headersOf }),
    destroy: () => agent.destroy(),
  };
}

interface Answer {
  status: number;
  message: string | undefined;
  headers: import('node:http').IncomingHttpHeaders;
  body: string;
}

function unquoted(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, '');
}

/** Whether `metadata` can go as it is in headers of a lean PUT (printable ASCII values). */
export function leanMetadata(metadata: Record<string, string> | undefined): boolean {
  return metadata === undefined || Object.values(metadata).every((v) => PLAIN_VALUE.test(v));
}
