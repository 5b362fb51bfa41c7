/**
 * One error type with a code table (like Fastify's FST_ERR_* or undici's UND_ERR_*). Every
 * error the runtime surfaces to a user is a SluiceError: it carries a code, a cause and the
 * context that says where (file:line:col for config; pipeline/step/plugin/item at run time).
 */
import { redact } from './observe/redact.js';

export const ERROR_CODES = {
  SLUICE_E_CONFIG:
    'The pipeline file is invalid: YAML syntax, shape, a plugin config, a template or a pattern.',
  SLUICE_E_ENV: 'A `${VAR}` reference names an environment variable that is not set and has no default.',
  SLUICE_E_UNKNOWN_PLUGIN: 'A pipeline names a plugin that is neither built in nor listed under `plugins:`.',
  SLUICE_E_PLUGIN_LOAD: 'A third-party plugin could not be loaded, or is of the wrong kind or API version.',
  SLUICE_E_PLUGIN: 'A plugin failed while processing an item; the message names plugin, step and item.',
  SLUICE_E_SOURCE: 'A source could not list or read its files.',
  SLUICE_E_SINK: 'A sink could not write or commit an item.',
  SLUICE_E_DESTINATION:
    'A destination path escapes the sink root (`..`, absolute, NUL, backslash tricks) or is empty.',
  SLUICE_E_EXISTS: 'The destination exists, holds different bytes, and the sink has `if_exists: fail`.',
  SLUICE_E_VERIFY: 'What the sink stored differs from what was sent (size or checksum).',
  SLUICE_E_TEMPLATE:
    'A destination template could not be rendered for an item (e.g. a missing `{meta.KEY}`).',
  SLUICE_E_BAD_DATA:
    'The item’s bytes are invalid for a step (corrupt archive, wrong key, tampered message…).',
  SLUICE_E_LIMIT: 'A safety limit stopped an item (archive bomb, entry count, traversal).',
  SLUICE_E_LEDGER: 'The ledger (state store) could not be opened or written.',
  SLUICE_E_USAGE: 'The command line is invalid.',
  SLUICE_E_ABORTED: 'The run was interrupted before the item finished.',
  SLUICE_E_NAME:
    'A listed file’s name cannot be represented safely (invalid UTF-8, a control character, or a character that would make it another path); it is reported, never read, deleted or moved.',
  SLUICE_E_CHANGED:
    'The source file changed after it was listed (another version is there now): its tidy-up (delete / move_to) was not done, and the new version is left for the next pass.',
  SLUICE_E_COLLISION:
    'Two items of one pass would land on the same destination; the second is failed and its source kept.',
  SLUICE_E_LOCKED:
    'Another process is running this pipeline on the same state folder (or another file declares the same pipeline name).',
  SLUICE_E_FENCED:
    'A cluster worker lost its job (it was paused past the stall interval and another worker took the item over); it stopped without side effects.',
  SLUICE_E_PREFLIGHT:
    'A connection failed its check at the start of a run (login, host key, missing bucket, container or folder): nothing was touched.',
  SLUICE_E_INTERNAL: 'An unexpected error inside Sluice: please report it with the log.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorContext {
  file?: string;
  line?: number;
  column?: number;
  /** JSON path in the pipeline document, e.g. `/steps/1/segregate/pattern`. */
  jsonPath?: string;
  pipeline?: string;
  /** Step id, e.g. `steps[1].segregate`, `source.sftp`, `sink.s3`. */
  step?: string;
  plugin?: string;
  /** Item path (and source) the error happened on. */
  item?: string;
  /** Suggestion shown after the message (`did you mean …`). */
  hint?: string;
}

export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;
  /** Whether the retry policy may try again; undefined = decide by the default rules. */
  readonly retryable?: boolean;
  /** Minimum wait before a retry, when the server said so (HTTP Retry-After). */
  readonly retryAfterMs?: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; context?: ErrorContext; retryable?: boolean; retryAfterMs?: number } = {},
  ) {
    super(redact(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SluiceError';
    this.code = code;
    this.context = options.context ?? {};
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
  }

  /** Location prefix `file:line:col` when known. */
  get where(): string {
    const { file, line, column } = this.context;
    if (!file) return '';
    return line ? `${file}:${line}:${column ?? 1}` : file;
  }

  /** The one-line message a user sees. */
  toUserString(): string {
    const parts: string[] = [];
    if (this.where) parts.push(`${this.where}:`);
    const scope = [this.context.pipeline, this.context.step].filter(Boolean).join(' ');
    if (scope) parts.push(`[${scope}]`);
    if (this.context.item) parts.push(`item "${escapeControl(this.context.item)}":`);
    parts.push(this.message);
    let text = parts.join(' ');
    if (this.context.hint) text += ` — ${this.context.hint}`;
    return redact(text);
  }
}

/** Control characters (a newline in a file name…) shown as `\xNN`, so one error stays one line. */
export function escapeControl(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Message of any thrown value, secrets redacted. */
export function errorMessage(err: unknown): string {
  if (err instanceof SluiceError) return err.toUserString();
  if (err instanceof AggregateError && err.errors.length > 0) {
    return redact(err.errors.map((e) => errorMessage(e)).join('; '));
  }
  if (err instanceof Error) return redact(err.message || err.name);
  return redact(String(err));
}

/**
 * Wraps an error thrown by plugin code with where it happened, keeping a SluiceError's own
 * code and the original as `cause` (Rollup's PluginDriver does the same for its hooks).
 */
export function wrapPluginError(
  err: unknown,
  context: ErrorContext,
  fallback: ErrorCode = 'SLUICE_E_PLUGIN',
): SluiceError {
  if (err instanceof SluiceError) {
    const merged = { ...context, ...stripUndefined(err.context) };
    return new SluiceError(err.code, err.message, {
      cause: err.cause ?? err,
      context: merged,
      retryable: err.retryable,
      retryAfterMs: err.retryAfterMs,
    });
  }
  const code = hasCode(err) && isAbortError(err) ? 'SLUICE_E_ABORTED' : fallback;
  return new SluiceError(code, errorMessage(err), { cause: err, context });
}

/** Where a stream error came from: the step (or source) that made the bytes, and its fallback code. */
export interface StreamOrigin {
  context: ErrorContext;
  code: ErrorCode;
}

/** Errors streams emitted, keyed by the error object, with the stream that emitted them first. */
const streamOrigins = new WeakMap<object, StreamOrigin>();

/**
 * Attributes every error `stream` emits to `origin`, unless a stream upstream of it claimed the
 * error first. Stream errors travel downstream as the same object (each stage destroys the next
 * with it) and only surface where the sink consumes the last stage: remembering the first stream
 * that emitted an error lets the runtime name the step that produced it instead of the sink.
 */
export function attributeStreamErrors(
  stream: { on(event: 'error', listener: (err: unknown) => void): unknown },
  origin: StreamOrigin,
): void {
  stream.on('error', (err) => {
    if (typeof err === 'object' && err !== null && !streamOrigins.has(err)) streamOrigins.set(err, origin);
  });
}

/** The stream-attributed error in `err` or its chain of causes, with where it came from. */
export function streamErrorOrigin(err: unknown): { error: unknown; origin: StreamOrigin } | undefined {
  const seen = new Set<unknown>();
  for (
    let e = err;
    typeof e === 'object' && e !== null && !seen.has(e);
    e = (e as { cause?: unknown }).cause
  ) {
    seen.add(e);
    const origin = streamOrigins.get(e);
    if (origin) return { error: e, origin };
  }
  return undefined;
}

export function isAbortError(err: unknown): boolean {
  return hasCode(err) && (err.code === 'ABORT_ERR' || (err as Error).name === 'AbortError');
}

function hasCode(err: unknown): err is { code?: unknown; name?: string } {
  return typeof err === 'object' && err !== null;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const RETRYABLE_NET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENOTCONN',
  'ESOCKETTIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ERR_SSH_CHANNEL_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

const RETRYABLE_MESSAGES =
  /socket hang up|timed? ?out|connection (reset|closed|lost)|ECONNRESET|not connected|client is closed|No response from server|read ECONNRESET|Throttl|SlowDown|Too Many Requests|ServiceUnavailable|RequestTimeout/i;

/**
 * The default retry classification: network resets, timeouts, 5xx, 429 and throttling retry;
 * auth, not-found, bad data and config errors do not. Plugins refine it with `isRetryable`.
 */
export function isRetryableByDefault(err: unknown): boolean {
  if (err instanceof SluiceError) {
    if (err.retryable !== undefined) return err.retryable;
    if (err.code !== 'SLUICE_E_PLUGIN' && err.code !== 'SLUICE_E_SINK' && err.code !== 'SLUICE_E_SOURCE')
      return false;
    return err.cause !== undefined && err.cause !== err && isRetryableByDefault(err.cause);
  }
  if (typeof err !== 'object' || err === null) return false;
  const e = err as Record<string, unknown> & {
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
  };
  if (e.retryable === true || e.$retryable) return true;
  if (e.retryable === false) return false;
  const status = numberOr(e.statusCode) ?? numberOr(e.status) ?? e.$metadata?.httpStatusCode;
  if (status !== undefined) return status === 429 || status === 408 || status >= 500;
  if (typeof e.code === 'string' && RETRYABLE_NET_CODES.has(e.code)) return true;
  if (
    typeof e.code === 'number' &&
    (e.code === 421 || e.code === 425 || e.code === 426 || e.code === 450 || e.code === 451)
  ) {
    return true; // FTP transient replies
  }
  const message = typeof e.message === 'string' ? e.message : '';
  if (RETRYABLE_MESSAGES.test(message)) return true;
  if (e.cause !== undefined && e.cause !== err) return isRetryableByDefault(e.cause);
  return false;
}

function numberOr(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
