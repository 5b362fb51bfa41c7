/**
 * Where an item's date comes from, for `segregate`: its name, path or a meta value (through a
 * regex and a strptime format), its mtime, or the clock; plus an optional offset.
 */
import { type Static, Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { itemName } from '../../core/item.js';
import { compileRegex } from '../../core/item-match.js';
import type { Item } from '../../core/plugin-api.js';
import { compileStrptime, type Strptime } from '../../core/time-parse.js';
import { parseDuration } from '../../core/units.js';

const SIGNED_DURATION = /^\s*([+-])?\s*(\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w))\s*$/;

export const DateRule = Type.Object(
  {
    from: Type.Union(
      [
        Type.Literal('name'),
        Type.Literal('path'),
        Type.Literal('mtime'),
        Type.Literal('now'),
        Type.Literal('meta'),
      ],
      {
        description:
          'Where the date comes from: the file `name`, its relative `path`, a `meta` value (see `key`), its `mtime` (the clock when unknown), or `now`.',
      },
    ),
    pattern: Type.Optional(
      Type.String({
        description:
          'Regular expression (JavaScript syntax) applied to the name/path/meta text. A named group `(?<date>…)` is the date text; otherwise all capture groups are joined; without groups, the whole match. No match: the item is "unmatched".',
      }),
    ),
    format: Type.Optional(
      Type.String({
        description:
          'strptime format of the date text (`%Y%m%d%H`). Default: by the digit count, 8 → `%Y%m%d`, 10 → `%Y%m%d%H`, 12 → `%Y%m%d%H%M`, 14 → `%Y%m%d%H%M%S`; otherwise ISO 8601 (`2024-03-15`, `2024-03-15T07:00:00`, with optional `Z`/offset).',
      }),
    ),
    key: Type.Optional(Type.String({ description: 'Meta key holding the date, with `from: meta`.' })),
    offset: Type.Optional(
      Type.String({
        pattern: SIGNED_DURATION.source,
        description:
          'Duration added to the date, e.g. `-1d` (files dropped after midnight belong to yesterday) or `2h`.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'How to find the item’s date (default: its mtime, or the clock).',
  },
);
export type DateRule = Static<typeof DateRule>;

/** A found date, or why there is none (the item is then "unmatched"). */
export type DateOutcome = { date: Date; captures?: Record<string, string> } | { reason: string };

export type DateResolver = (item: Item, now: Date) => DateOutcome;

const ISO_FORMATS = ['%Y-%m-%d', '%Y-%m-%dT%H:%M', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%d %H:%M:%S'].flatMap((f) =>
  f.includes('%H') ? [f, `${f}%z`] : [f],
);
const DIGIT_FORMATS: Record<number, string> = {
  8: '%Y%m%d',
  10: '%Y%m%d%H',
  12: '%Y%m%d%H%M',
  14: '%Y%m%d%H%M%S',
};

function defaultParser(timezone: string): { parse: Strptime; describe: (text: string) => string } {
  const digitParsers = new Map(
    Object.entries(DIGIT_FORMATS).map(([digits, f]) => [Number(digits), compileStrptime(f, { timezone })]),
  );
  const isoParsers = ISO_FORMATS.map((f) => compileStrptime(f, { timezone }));
  return {
    parse: (text) => {
      const digitParser = /^\d+$/.test(text) ? digitParsers.get(text.length) : undefined;
      if (digitParser) return digitParser(text);
      for (const parse of isoParsers) {
        const date = parse(text.replace(/(\.\d+)(?=Z|[+-]\d{2}:?\d{2}$|$)/, ''));
        if (date) return date;
      }
      return null;
    },
    describe: (text) =>
      /^\d+$/.test(text) && DIGIT_FORMATS[text.length] ? `format ${DIGIT_FORMATS[text.length]}` : 'ISO 8601',
  };
}

function configError(message: string, jsonPath: string, cause?: unknown): SluiceError {
  return new SluiceError('SLUICE_E_CONFIG', message, { cause, context: { jsonPath } });
}

/** Extracts the date text from a regex match: named group `date`, else joined groups, else all. */
function dateText(match: RegExpExecArray): string {
  if (match.groups?.date !== undefined) return match.groups.date;
  const groups = match.slice(1).filter((g): g is string => g !== undefined);
  return groups.length > 0 ? groups.join('') : match[0];
}

/**
 * Compiles a date rule found at `jsonPath` (e.g. `/date`); throws SLUICE_E_CONFIG naming the
 * offending field for a bad regex, format or offset. Without a rule: the item's date, its
 * mtime, or the clock.
 */
export function compileDateRule(
  rule: DateRule | undefined,
  timezone: string,
  jsonPath: string,
): DateResolver {
  if (rule === undefined) return (item, now) => ({ date: item.date ?? item.mtime ?? now });
  const offsetMs = rule.offset === undefined ? 0 : signedOffset(rule.offset, `${jsonPath}/offset`);
  const shift = (date: Date) => (offsetMs === 0 ? date : new Date(date.getTime() + offsetMs));

  if (rule.from === 'mtime' || rule.from === 'now') {
    for (const field of ['pattern', 'format', 'key'] as const) {
      if (rule[field] !== undefined) {
        throw configError(
          `\`${field}\` applies only to \`from: name\`, \`path\` or \`meta\``,
          `${jsonPath}/${field}`,
        );
      }
    }
    if (rule.from === 'now') return (_item, now) => ({ date: shift(now) });
    return (item, now) => ({ date: shift(item.mtime ?? now) });
  }

  if (rule.from === 'meta' && rule.key === undefined) {
    throw configError('`from: meta` needs `key`: the meta key that holds the date', `${jsonPath}/key`);
  }
  if (rule.from !== 'meta' && rule.key !== undefined) {
    throw configError('`key` applies only to `from: meta`', `${jsonPath}/key`);
  }
  const pattern = rule.pattern === undefined ? undefined : compileRegex(rule.pattern, `${jsonPath}/pattern`);
  let parse: Strptime;
  let describe: (text: string) => string;
  if (rule.format === undefined) {
    ({ parse, describe } = defaultParser(timezone));
  } else {
    const format = rule.format;
    try {
      parse = compileStrptime(format, { timezone });
    } catch (err) {
      throw configError(
        `invalid date format at ${jsonPath}/format: ${(err as Error).message}`,
        `${jsonPath}/format`,
        err,
      );
    }
    describe = () => `format ${format}`;
  }

  const what = rule.from === 'meta' ? `meta "${rule.key}"` : rule.from;
  return (item) => {
    let text: string;
    if (rule.from === 'meta') {
      const value = item.meta[rule.key as string];
      if (value instanceof Date) return { date: shift(value) };
      if (value === undefined || value === null) return { reason: `the item has no meta "${rule.key}"` };
      text = String(value);
    } else {
      text = rule.from === 'name' ? itemName(item) : item.path;
    }
    let captures: Record<string, string> | undefined;
    if (pattern) {
      const match = pattern.exec(text);
      if (!match) return { reason: `${what} "${text}" does not match pattern /${pattern.source}/` };
      text = dateText(match);
      captures = namedGroups(match);
    }
    const date = parse(text);
    if (!date) return { reason: `"${text}" (from ${what}) is not a valid date for ${describe(text)}` };
    return captures ? { date: shift(date), captures } : { date: shift(date) };
  };
}

/** The named groups that took part in a match (`{match.NAME}` in segregate's templates). */
function namedGroups(match: RegExpExecArray): Record<string, string> | undefined {
  const entries = Object.entries(match.groups ?? {}).filter((e): e is [string, string] => e[1] !== undefined);
  return entries.length > 0 ? Object.fromEntries(entries) : undefined;
}

/** Milliseconds of a signed duration (`-1d`, `+2h`, `30m`). */
function signedOffset(text: string, jsonPath: string): number {
  const m = SIGNED_DURATION.exec(text);
  if (!m) throw configError(`invalid offset "${text}" at ${jsonPath} (use e.g. -1d, 2h, +30m)`, jsonPath);
  return (m[1] === '-' ? -1 : 1) * parseDuration(m[2]);
}
