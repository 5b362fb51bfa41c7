/**
 * The HTTP client both http plugins share: node:http(s) with a bounded keep-alive agent,
 * streaming in both directions, and every failure turned into a SluiceError whose
 * `retryable`/`retryAfterMs` the runtime's retry policy reads (429/5xx/network: retry;
 * other 4xx: do not).
 */

import type * as Http from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import { type ErrorCode, isAbortError, isRetryableByDefault, SluiceError } from '../../core/errors.js';
import { credentialsIn, registerSecret, SECRET_KEY } from '../../core/observe/redact.js';

export type Headers = Readonly<Record<string, string>>;

export interface HeadResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The URL that answered (after redirects). */
  readonly url: URL;
}

export interface HttpClientOptions {
  /** Most sockets open at once per host (the agent's maxSockets). */
  maxConnections: number;
  /** A socket idle this long fails the request (retryable). */
  timeoutMs: number;
  /** Code of the errors this client throws: `SLUICE_E_SOURCE` or `SLUICE_E_SINK`. */
  errorCode: ErrorCode;
}

/**
 * node:http and node:https, required when the first client is made: every command loads this
 * module with the built-in plugins, and importing those two (their ESM facade brings undici)
 * cost ~30–40 ms of every start on Node 22, for pipelines without an HTTP step too.
 */
let modules: { http: typeof Http; https: typeof Https } | undefined;
function httpModules(): { http: typeof Http; https: typeof Https } {
  if (!modules) {
    const require = createRequire(import.meta.url);
    modules = { http: require('node:http') as typeof Http, https: require('node:https') as typeof Https };
  }
  return modules;
}

const MAX_REDIRECTS = 5;
const ERROR_BODY_SNIPPET = 300;

export class HttpClient {
  private readonly http: typeof Http;
  private readonly https: typeof Https;
  private readonly httpAgent: Http.Agent;
  private readonly httpsAgent: Https.Agent;

  constructor(private readonly options: HttpClientOptions) {
    ({ http: this.http, https: this.https } = httpModules());
    const agentOptions = { keepAlive: true, maxSockets: options.maxConnections };
    this.httpAgent = new this.http.Agent(agentOptions);
    this.httpsAgent = new this.https.Agent(agentOptions);
  }

  /**
   * GET that follows redirects (see `follow`) and resolves with a 2xx response whose body the
   * caller must consume. `allow404` resolves null on 404/410.
   */
  async get(
    url: URL,
    headers: Headers,
    signal?: AbortSignal,
    allow404 = false,
  ): Promise<IncomingMessage | null> {
    const { res, url: final } = await this.follow('GET', url, headers, signal);
    const status = res.statusCode ?? 0;
    if (allow404 && (status === 404 || status === 410)) {
      res.resume();
      return null;
    }
    return this.expectSuccess(res, 'GET', final);
  }

  /**
   * HEAD that follows redirects like `get`; resolves with whatever status the server answered
   * (the caller decides what a 404 or a 405 means) and the headers.
   */
  async head(url: URL, headers: Headers, signal?: AbortSignal): Promise<HeadResult> {
    const { res, url: final } = await this.follow('HEAD', url, headers, signal);
    res.resume();
    return { status: res.statusCode ?? 0, headers: res.headers, url: final };
  }

  /**
   * Sends a body-less GET/HEAD and follows up to MAX_REDIRECTS redirects. A Location is data
   * from the server, so: configured headers are dropped once a redirect leaves the origin (a
   * token never travels to, say, a presigned storage URL), and only http(s) targets are
   * followed, never from https down to plain http.
   */
  private async follow(
    method: 'GET' | 'HEAD',
    url: URL,
    headers: Headers,
    signal?: AbortSignal,
  ): Promise<{ res: IncomingMessage; url: URL }> {
    let current = url;
    let currentHeaders = headers;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res = await this.send(method, current, currentHeaders, signal);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (!(status >= 300 && status < 400 && location)) return { res, url: current };
      res.resume();
      const next = this.redirectTarget(method, current, location);
      if (next.origin !== current.origin) currentHeaders = {};
      current = next;
    }
    throw new SluiceError(
      this.options.errorCode,
      `${method} ${displayUrl(url)}: more than ${MAX_REDIRECTS} redirects`,
      { retryable: false },
    );
  }

  private redirectTarget(method: string, from: URL, location: string): URL {
    const refuse = (why: string) =>
      new SluiceError(
        this.options.errorCode,
        `${method} ${displayUrl(from)} redirects ${why}; not followed`,
        { retryable: false },
      );
    let next: URL;
    try {
      next = new URL(location, from);
    } catch {
      throw refuse('to an invalid URL');
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw refuse(`to a ${next.protocol} URL`);
    if (from.protocol === 'https:' && next.protocol === 'http:') {
      throw refuse(`from https to plain http (${displayUrl(next)})`);
    }
    return next;
  }

  /** GET of a JSON document (small: list pages). */
  async getJson(url: URL, headers: Headers, signal?: AbortSignal): Promise<unknown> {
    const res = (await this.get(url, { accept: 'application/json', ...headers }, signal))!;
    return this.readJson(res, 'GET', url);
  }

  /** A body-less request (DELETE…) without redirects; the caller reads the status. */
  request(method: string, url: URL, headers: Headers, signal?: AbortSignal): Promise<IncomingMessage> {
    return this.send(method, url, headers, signal);
  }

  /**
   * Streams `body` as the request body (Content-Length when `size` is known, else chunked)
   * and resolves with the server's response once the whole body was sent. If `body` errors,
   * the request is destroyed mid-way, so the server sees an aborted upload and (if it behaves)
   * stores nothing; the body's own error is rethrown unchanged. A refusal (non-2xx) the server
   * sends before the body is complete resolves at once, with `body` unpiped and left to the
   * caller (drain it or destroy it); the connection is dropped once that reply was read.
   */
  upload(
    method: string,
    url: URL,
    headers: Headers,
    body: Readable,
    size: number | undefined,
    signal?: AbortSignal,
  ): Promise<IncomingMessage> {
    const allHeaders: Record<string, string> = { ...headers };
    if (size !== undefined) allHeaders['content-length'] = String(size);
    const request = this.createRequest(method, url, allHeaders, signal);
    // A body that yields more or fewer bytes than announced must fail, not hang the server.
    // (Node ≥ 18.12 has the property; @types/node 20 does not declare it.)
    if (size !== undefined)
      (request as ClientRequest & { strictContentLength: boolean }).strictContentLength = true;
    return new Promise<IncomingMessage>((resolve, reject) => {
      let response: IncomingMessage | undefined;
      let sent = false;
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        body.off('error', onBodyError);
        outcome();
      };
      const onBodyError = (err: unknown) => {
        request.destroy();
        settle(() => reject(err));
      };
      body.once('error', onBodyError);
      request.on('error', (err) => {
        body.unpipe(request);
        body.destroy();
        settle(() => reject(this.networkFailure(err, method, url)));
      });
      request.once('finish', () => {
        sent = true;
        if (response) settle(() => resolve(response!));
      });
      request.once('response', (res) => {
        response = res;
        if (isSuccess(res.statusCode)) {
          if (sent) settle(() => resolve(res));
          return;
        }
        body.unpipe(request);
        res.once('close', () => request.destroy());
        settle(() => resolve(res));
      });
      body.pipe(request);
    });
  }

  /** Turns a non-2xx response into a thrown SluiceError; passes a 2xx one through. */
  async expectSuccess(res: IncomingMessage, method: string, url: URL): Promise<IncomingMessage> {
    if (isSuccess(res.statusCode)) return res;
    throw await this.statusError(res, method, url);
  }

  async readJson(res: IncomingMessage, method: string, url: URL): Promise<unknown> {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of res) chunks.push(chunk as Buffer);
    } catch (err) {
      throw this.networkFailure(err, method, url);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      return JSON.parse(text);
    } catch {
      throw new SluiceError(
        this.options.errorCode,
        `${method} ${displayUrl(url)} did not return JSON (starts with ${JSON.stringify(text.slice(0, 80))})`,
        { retryable: false },
      );
    }
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private send(method: string, url: URL, headers: Headers, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const request = this.createRequest(method, url, headers, signal);
      request.once('response', resolve);
      // `on`, not `once`: a second socket error after the response must not crash the process.
      request.on('error', (err) => reject(this.networkFailure(err, method, url)));
      request.end();
    });
  }

  private createRequest(method: string, url: URL, headers: Headers, signal?: AbortSignal): ClientRequest {
    const isHttps = url.protocol === 'https:';
    const request = (isHttps ? this.https : this.http).request(url, {
      method,
      headers,
      agent: isHttps ? this.httpsAgent : this.httpAgent,
      signal,
    });
    request.setTimeout(this.options.timeoutMs, () => {
      request.destroy(
        new SluiceError(
          this.options.errorCode,
          `${method} ${displayUrl(url)}: no data for ${this.options.timeoutMs} ms (timeout)`,
          { retryable: true },
        ),
      );
    });
    return request;
  }

  private async statusError(res: IncomingMessage, method: string, url: URL): Promise<SluiceError> {
    const status = res.statusCode ?? 0;
    const retryable = status === 429 || status === 408 || status >= 500;
    const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
    let detail: string;
    if (status === 401) {
      res.resume();
      detail = 'the server rejected the credentials — check the token in the Authorization header';
    } else if (status === 403) {
      res.resume();
      detail = 'access denied — the credentials lack permission for this request';
    } else {
      detail = await readSnippet(res);
    }
    const where = `${method} ${displayUrl(url)}`;
    return new SluiceError(
      this.options.errorCode,
      `HTTP ${status} ${res.statusMessage ?? ''} from ${where}${detail ? `: ${detail}` : ''}`,
      {
        retryable,
        retryAfterMs,
      },
    );
  }

  /** Network-level failure → SluiceError (retryable when it is a reset, refusal, timeout…). */
  networkFailure(err: unknown, method: string, url: URL): unknown {
    if (err instanceof SluiceError || isAbortError(err)) return err;
    const cause = err as NodeJS.ErrnoException;
    const reason =
      cause.code && !cause.message.includes(cause.code) ? `${cause.message} (${cause.code})` : cause.message;
    return new SluiceError(this.options.errorCode, `${method} ${displayUrl(url)} failed: ${reason}`, {
      cause: err,
      retryable: isRetryableByDefault(err),
    });
  }
}

export function isSuccess(status: number | undefined): boolean {
  return status !== undefined && status >= 200 && status < 300;
}

/** Milliseconds from a Retry-After header: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Query parameters that carry a credential beyond the config keys SECRET_KEY knows: presigned
 * URL signatures (S3 `X-Amz-Signature`, GCS `X-Goog-Signature`, Azure SAS `sig`, S3 v2
 * `Signature`) and the access key ids that go with them.
 */
const URL_SECRET_PARAM = /signature|^sig$|credential|accesskeyid/i;

function isSecretParam(name: string): boolean {
  return SECRET_KEY.test(name) || URL_SECRET_PARAM.test(name);
}

/**
 * The URL for messages, logs and the ledger: userinfo and secret-looking query parameters
 * (tokens, keys, presigned signatures) masked. Every URL the http plugins print goes through it.
 */
export function displayUrl(url: URL): string {
  const shown = new URL(url);
  if (shown.username) shown.username = '***';
  if (shown.password) shown.password = '***';
  for (const key of new Set(shown.searchParams.keys())) {
    if (isSecretParam(key)) shown.searchParams.set(key, '***');
  }
  return shown.href;
}

/**
 * Registers credentials found in headers and URLs so no message ever prints them: the whole
 * value of an auth-looking header and its credential part (`xyz` of `Bearer xyz`).
 */
export function registerHttpSecrets(headers: Headers | undefined, urls: readonly string[] = []): void {
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!SECRET_KEY.test(name) && !/auth|key|cookie|signature/i.test(name)) continue;
    registerSecret(value);
    const credential = /^\S+\s+(\S.*)$/.exec(value)?.[1];
    if (credential) registerSecret(credential);
  }
  // Templates are not URLs yet; the credentials in them are found by their form.
  for (const text of urls) for (const credential of credentialsIn(text)) registerSecret(credential);
}

async function readSnippet(res: IncomingMessage): Promise<string> {
  let text = '';
  try {
    for await (const chunk of res) {
      text += (chunk as Buffer).toString('utf8');
      if (text.length >= ERROR_BODY_SNIPPET) break;
    }
  } catch {
    // The reason text is a courtesy; the status already says what went wrong.
  }
  return text.slice(0, ERROR_BODY_SNIPPET).replace(/\s+/g, ' ').trim();
}
