/**
 * Destination templates: `segregated/{date:%Y/%m/%d}/{name}`.
 *
 * Placeholders: `{name}` `{stem}` `{ext}` (no dot) `{dir}` (empty at the root) `{path}`
 * `{source}` `{size}` (bytes) `{sha256}` `{md5}` `{meta.KEY}` `{match.NAME}` (a named regex
 * group) `{date:STRFTIME}` `{mtime:STRFTIME}` (the item's own mtime) `{now:STRFTIME}`; bare
 * `{date}`, `{mtime}` and `{now}` mean `%Y-%m-%d`. `{{` and `}}` are literal braces. A template is parsed once, at
 * config time, and a substituted value is never parsed again: an item named `{meta.x}%Y.csv`
 * stays exactly that.
 */
import { SluiceError } from './errors.js';
import { itemDir, itemExt, itemName, itemStem } from './item.js';
import type { Item } from './plugin-api.js';
import { compileStrftime, TimeFormatError } from './time-format.js';

export interface RenderScope {
  /** The run's clock (`{now:…}`, and `{date:…}` for an item without date or mtime). */
  now: Date;
  /** sha256 of the item's bytes, when the caller computed it (`{sha256}`; else the item's own). */
  sha256?: string;
  /** md5 of the item's bytes, when the caller computed it (`{md5}`; else the item's own). */
  md5?: string;
  /** Size of the item's bytes when the caller knows it (`{size}`; else the item's own). */
  size?: number;
  /** Timezone for `{date:…}` and `{now:…}`: `UTC` (default) or an IANA name. */
  timezone?: string;
  /** Named groups of the route's regexes (`{match.NAME}`); they win over the item's own. */
  match?: Readonly<Record<string, string>>;
  /** Applied to every substituted value, never to the template's own text (e.g. URL encoding). */
  escape?: (value: string) => string;
}

export interface CompiledTemplate {
  readonly source: string;
  /** The digests the template uses (`{sha256}`, `{md5}`): the caller must hash the bytes first. */
  readonly digests: readonly Digest[];
  /** True when the template uses `{sha256}` (`digests` includes it). */
  readonly needsSha256: boolean;
  /** True when the template uses `{date…}`. */
  readonly needsDate: boolean;
  render(item: Item, scope: RenderScope): string;
}

/** A template syntax error; `offset` is the character offset in the template text. */
export class TemplateError extends SluiceError {
  readonly offset: number;

  constructor(message: string, offset: number, hint?: string, jsonPath?: string) {
    super('SLUICE_E_CONFIG', message, { context: { hint, jsonPath } });
    this.name = 'TemplateError';
    this.offset = offset;
  }
}

/** A digest a template can name, which the caller computes before rendering. */
export type Digest = 'sha256' | 'md5';
const DIGESTS: readonly Digest[] = ['sha256', 'md5'];

type ValueOf = (item: Item, scope: RenderScope) => string;

const ITEM_FIELDS: Record<string, ValueOf> = {
  name: (item) => itemName(item),
  stem: (item) => itemStem(item),
  ext: (item) => itemExt(item),
  dir: (item) => itemDir(item),
  path: (item) => item.path,
  source: (item) => item.source,
};

const PLACEHOLDER_NAMES = [
  ...Object.keys(ITEM_FIELDS),
  'size',
  ...DIGESTS,
  'date',
  'mtime',
  'now',
  'meta.KEY',
  'match.NAME',
];
const DEFAULT_DATE_FORMAT = '%Y-%m-%d';

type Part = { literal: string } | { placeholder: string; value: ValueOf };

export interface CompileTemplateOptions {
  /** JSON path of the template in the plugin config, copied into a TemplateError's context. */
  jsonPath?: string;
  /**
   * The template makes a path relative to a sink root: refuse literal text that would escape
   * it (`../`, a leading `/`, a drive letter, a backslash) when the pipeline is loaded rather
   * than on the first item.
   */
  relativePath?: boolean;
}

/** Parses a template once; throws TemplateError (with offset and a suggestion) on bad syntax. */
export function compileTemplate(text: string, options: CompileTemplateOptions = {}): CompiledTemplate {
  const parts: Part[] = [];
  let literal = '';
  const digests = new Set<Digest>();
  let needsDate = false;
  const fail = (message: string, offset: number, hint?: string): never => {
    throw new TemplateError(message, offset, hint, options.jsonPath);
  };

  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '}') {
      if (text[i + 1] === '}') {
        literal += '}';
        i++;
        continue;
      }
      fail(`unmatched "}" at offset ${i} in template "${text}"`, i, 'write "}}" for a literal brace');
    }
    if (ch !== '{') {
      literal += ch;
      continue;
    }
    if (text[i + 1] === '{') {
      literal += '{';
      i++;
      continue;
    }
    const close = text.indexOf('}', i + 1);
    const nextOpen = text.indexOf('{', i + 1);
    if (close === -1 || (nextOpen !== -1 && nextOpen < close)) {
      fail(
        `unclosed "{" at offset ${i} in template "${text}"`,
        i,
        'close the placeholder with "}" or write "{{" for a literal brace',
      );
    }
    const body = text.slice(i + 1, close);
    if (literal) parts.push({ literal });
    literal = '';
    const value = compilePlaceholder(body, i, text, fail);
    parts.push({ placeholder: body, value });
    if ((DIGESTS as readonly string[]).includes(body)) digests.add(body as Digest);
    if (body === 'date' || body.startsWith('date:')) needsDate = true;
    i = close;
  }
  if (literal) parts.push({ literal });
  if (options.relativePath) {
    const probe = parts.map((p) => ('literal' in p ? p.literal : 'x')).join('');
    const escapeReason = pathEscapeReason(probe);
    if (escapeReason)
      fail(`template "${text}" ${escapeReason}`, 0, 'destinations are relative to the sink root');
  }

  return {
    source: text,
    digests: [...digests],
    needsSha256: digests.has('sha256'),
    needsDate,
    render: (item, scope) => renderParts(parts, item, scope),
  };
}

function compilePlaceholder(
  body: string,
  offset: number,
  text: string,
  fail: (message: string, offset: number, hint?: string) => never,
): ValueOf {
  const field = ITEM_FIELDS[body];
  if (field) return field;
  if (body === 'sha256' || body === 'md5') {
    return (item, scope) => known(scope[body] ?? item.checksums[body], body, item, text);
  }
  if (body === 'size') return (item, scope) => known(scope.size ?? item.size, body, item, text).toString();
  if (body.startsWith('meta.') && body.length > 'meta.'.length) {
    const key = body.slice('meta.'.length);
    return (item) => metaValue(item, key, text);
  }
  if (body.startsWith('match.') && body.length > 'match.'.length) {
    const group = body.slice('match.'.length);
    return (item, scope) => matchValue(item, scope, group, text);
  }
  const colon = body.indexOf(':');
  const head = colon === -1 ? body : body.slice(0, colon);
  if (head === 'date' || head === 'now' || head === 'mtime') {
    const format = colon === -1 ? DEFAULT_DATE_FORMAT : body.slice(colon + 1);
    const formatOffset = offset + 1 + colon + 1;
    // `{date:YYYY/MM/DD}` would make literal YYYY/MM/DD folders without a word.
    const momentStyle = /YYYY|YY|MM|DD|HH|mm|ss/.exec(format.replace(/%./g, ''));
    if (momentStyle)
      return fail(
        `{${body}} in template "${text}": "${momentStyle[0]}" is not a date field here; date formats are strftime (%Y, %m, %d…)`,
        formatOffset,
        `write {${head}:${strftimeOf(format)}}`,
      );
    let formatDate: ReturnType<typeof compileStrftime>;
    try {
      formatDate = compileStrftime(format);
    } catch (err) {
      if (!(err instanceof TimeFormatError)) throw err;
      const at = formatOffset + err.offset;
      return fail(`bad date format in {${body}} at offset ${at} in template "${text}": ${err.message}`, at);
    }
    if (head === 'now') return (_item, scope) => formatDate(scope.now, scope.timezone);
    if (head === 'mtime')
      return (item, scope) => formatDate(known(item.mtime, 'mtime', item, text), scope.timezone);
    return (item, scope) => formatDate(item.date ?? item.mtime ?? scope.now, scope.timezone);
  }
  const suggestion = nearestPlaceholder(body);
  return fail(
    `unknown placeholder "{${body}}" at offset ${offset} in template "${text}"` +
      (suggestion ? `: did you mean "{${suggestion}}"?` : ''),
    offset,
    `valid placeholders: ${PLACEHOLDER_NAMES.map((n) => `{${n}}`).join(' ')}`,
  );
}

/** A value the template needs; an item without it fails with what is missing. */
function known<T>(value: T | undefined, placeholder: string, item: Item, text: string): T {
  if (value !== undefined) return value;
  throw new SluiceError(
    'SLUICE_E_TEMPLATE',
    `template "${text}" uses {${placeholder}} but no ${placeholder} is known for item "${item.path}"`,
    {
      context: {
        item: item.path,
        ...(placeholder === 'size'
          ? { hint: 'a step that changes bytes leaves the size unknown until written' }
          : {}),
      },
    },
  );
}

function metaValue(item: Item, key: string, text: string): string {
  const value = item.meta[key];
  if (value === undefined || value === null) {
    const known = Object.keys(item.meta);
    throw new SluiceError(
      'SLUICE_E_TEMPLATE',
      `template "${text}" uses {meta.${key}} but item "${item.path}" has no meta "${key}" (meta keys: ${known.length ? known.join(', ') : 'none'})`,
      { context: { item: item.path, hint: 'set it earlier with set_meta, or fix the key' } },
    );
  }
  if (value instanceof Date) return value.toISOString();
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function matchValue(item: Item, scope: RenderScope, group: string, text: string): string {
  const value = scope.match?.[group] ?? item.match?.[group];
  if (value === undefined) {
    throw new SluiceError(
      'SLUICE_E_TEMPLATE',
      `template "${text}" uses {match.${group}} but no regex captured "${group}" for item "${item.path}"`,
      {
        context: { item: item.path, hint: 'name the group in the `when.regex` that selects this item' },
        retryable: false,
      },
    );
  }
  return value;
}

/**
 * Concatenates the parts. When a placeholder renders empty between two slashes (or at the start
 * before one), the following slash is dropped, so `{dir}/{name}` at the root gives `x.csv`
 * rather than `/x.csv`; slashes written in the template are otherwise kept (URLs need `//`).
 */
function renderParts(parts: readonly Part[], item: Item, scope: RenderScope): string {
  let out = '';
  let dropLeadingSlash = false;
  for (const part of parts) {
    if ('literal' in part) {
      out += dropLeadingSlash && part.literal.startsWith('/') ? part.literal.slice(1) : part.literal;
      dropLeadingSlash = false;
      continue;
    }
    const raw = part.value(item, scope);
    const value = scope.escape ? scope.escape(raw) : raw;
    if (value === '') {
      dropLeadingSlash = dropLeadingSlash || out === '' || out.endsWith('/');
    } else {
      out += value;
      dropLeadingSlash = false;
    }
  }
  return out;
}

function nearestPlaceholder(body: string): string | undefined {
  if (body === 'meta' || body === 'meta.') return 'meta.KEY';
  const head = body.split(':')[0];
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const name of PLACEHOLDER_NAMES) {
    const distance = editDistance(head.toLowerCase(), name);
    if (distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  if (best === undefined || bestDistance > Math.max(2, Math.floor(head.length / 3))) return undefined;
  if ((best === 'date' || best === 'now' || best === 'mtime') && head !== body)
    return `${best}${body.slice(head.length)}`;
  return best;
}

/** Edit distance counting a swap of two neighbours as one edit (`stme` is one from `stem`). */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const substitution = rows[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, substitution);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
      }
    }
  }
  return rows[a.length][b.length];
}

function pathEscapeReason(path: string): string | undefined {
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return 'makes an absolute path';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.split('/').includes('..')) return 'escapes the sink root with ".."';
  return undefined;
}

const MOMENT_TO_STRFTIME: Array<[RegExp, string]> = [
  [/YYYY/g, '%Y'],
  [/YY/g, '%y'],
  [/MM/g, '%m'],
  [/DD/g, '%d'],
  [/HH/g, '%H'],
  [/mm/g, '%M'],
  [/ss/g, '%S'],
];

/** `YYYY/MM/DD` → `%Y/%m/%d`, for the hint. */
function strftimeOf(format: string): string {
  return MOMENT_TO_STRFTIME.reduce((f, [re, to]) => f.replace(re, to), format);
}
