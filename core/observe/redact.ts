/**
 * Secrets never reach a terminal, a log file, an error report or the ledger: every message
 * Sluice prints or stores passes through `redact`. Two kinds are masked:
 * - values registered once (`registerSecret`): what a pipeline's schema marks `x-secret`,
 *   credentials found inside its other strings, and what plugins learn at run time;
 * - credentials recognisable by their form wherever they come from (a server's error text, a
 *   presigned URL in a listing): a URL's userinfo password and signature/key parameters.
 */
import type { TSchema } from '@sinclair/typebox';

const secrets = new Set<string>();
let pattern: RegExp | null = null;

/** Values shorter than this are not registered: masking "a" everywhere helps nobody. */
const MIN_SECRET_LENGTH = 4;

/**
 * `scheme://user:PASSWORD@host`. The password runs to the last `@` of the authority, as URL
 * parsers read it; quotes, backslashes and angle brackets end it so that a JSON log line or
 * an XML error body keeps its shape.
 */
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s/?#@:"'<>\\]*:)([^\s/?#"'<>\\]+)(?=@)/gi;

/**
 * `NAME=VALUE` where NAME carries a credential: presigned S3/GCS query parameters, Azure SAS
 * `sig`, connection-string keys (`AccountKey=`, `SharedAccessSignature=`, `Password=`), and the
 * usual token parameters. The value ends at the next `&`, `;`, `#`, comma, space or quote.
 */
const CREDENTIAL_PARAM =
  /(^|[?&;,\s"'(>])((?:x-amz-(?:signature|credential|security-token)|x-goog-(?:signature|credential)|signature|sig|credential|awsaccesskeyid|accountkey|sharedaccesskey|sharedaccesssignature|password|passwd|pwd|access_token|refresh_token|client_secret|api_key|apikey|token)=)([^&;#,\s"'<>\\]+)/gi;

/** Every value registered so far (a pool thread registers them again: runtime/pool.ts). */
export function registeredSecrets(): string[] {
  return [...secrets];
}

export function registerSecret(value: unknown): void {
  if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH || secrets.has(value)) return;
  secrets.add(value);
  const escaped = [...secrets]
    .sort((a, b) => b.length - a.length)
    .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  pattern = new RegExp(escaped.join('|'), 'g');
}

export function redact(text: string): string {
  if (text.length === 0) return text;
  const masked = pattern ? text.replace(pattern, '***') : text;
  return masked.replace(URL_PASSWORD, '$1***').replace(CREDENTIAL_PARAM, '$1$2***');
}

/** A copy of a JSON-like value with every string redacted (summaries written as JSON). */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map(redactDeep) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)])) as T;
  }
  return value;
}

/**
 * The credentials inside one string, as written and percent-decoded: URL passwords and the
 * values of credential parameters. Registered, they are masked also where they appear alone.
 */
export function credentialsIn(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(URL_PASSWORD)) found.push(m[2]);
  for (const m of text.matchAll(CREDENTIAL_PARAM)) found.push(m[3]);
  for (const raw of [...found]) {
    try {
      const decoded = decodeURIComponent(raw);
      if (decoded !== raw) found.push(decoded);
    } catch {
      // not percent-encoded text: the raw form is all there is
    }
  }
  return found;
}

/**
 * Header and query parameter names whose values are credentials. For config keys the schema
 * decides (`x-secret`); a name is the signal only where no schema can list the keys: free-form
 * maps such as HTTP headers, query strings.
 */
export const SECRET_KEY =
  /pass(word|phrase)?|secret|token|private_key$|(^|[_-])key$|account_key|connection_string|sas|authorization|credential|api_key|cookie|signature/i;

/** Environment variables whose values are secrets wherever a pipeline interpolates them. */
export const SECRET_ENV_NAME = /pass|secret|token|key$|credential|connection/i;

type Schema = TSchema & {
  'x-secret'?: boolean;
  properties?: Record<string, Schema>;
  patternProperties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema | Schema[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
};

/**
 * Registers the secrets of a config `value` that `schema` describes, before it is validated
 * (a problem elsewhere may quote one): every string under a property marked `x-secret`, the
 * credentials inside every other string (`credentialsIn`), and the values of credential-named
 * entries of free-form string maps (`headers: {Authorization: …}`). The value need not be
 * valid; parts the schema does not describe are searched for credentials only.
 */
export function registerSecretsIn(schema: TSchema | undefined, value: unknown): void {
  walk(schema ? [schema as Schema] : [], value, false);
}

function walk(schemas: Schema[], value: unknown, secret: boolean): void {
  const all = schemas.flatMap(branches);
  const isSecret = secret || all.some((s) => s['x-secret'] === true);
  if (typeof value === 'string') {
    if (isSecret) registerSecret(value);
    for (const c of credentialsIn(value)) registerSecret(c);
    return;
  }
  if (typeof value === 'number' || typeof value === 'bigint') {
    if (isSecret) registerSecret(String(value));
    return;
  }
  if (Array.isArray(value)) {
    const items = all.flatMap((s) =>
      s.items === undefined ? [] : Array.isArray(s.items) ? s.items : [s.items],
    );
    for (const v of value) walk(items, v, isSecret);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  for (const [key, v] of Object.entries(value)) {
    const declared = all.flatMap((s) => (s.properties?.[key] ? [s.properties[key]] : []));
    const free = declared.length > 0 ? [] : all.flatMap((s) => freeFormValueSchemas(s, key));
    // A free-form map of strings (headers) cannot mark its entries: its key names them.
    const named = free.some((f) => f.type === 'string') && SECRET_KEY.test(key);
    walk(declared.length > 0 ? declared : free, v, isSecret || named);
  }
}

/** `s` and the alternatives of its unions, recursively. */
function branches(s: Schema): Schema[] {
  return [s, ...[...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])].flatMap(branches)];
}

function freeFormValueSchemas(s: Schema, key: string): Schema[] {
  const matched = Object.entries(s.patternProperties ?? {})
    .filter(([p]) => new RegExp(p, 'u').test(key))
    .map(([, schema]) => schema);
  if (matched.length > 0) return matched;
  return typeof s.additionalProperties === 'object' ? [s.additionalProperties] : [];
}
