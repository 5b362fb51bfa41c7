/**
 * strptime: reads a date out of text with the same POSIX tokens `time-format.ts` writes
 * (`%Y%m%d`, `%d-%b-%Y`…), for dates in file names. UTC by default; an IANA timezone is
 * honoured through Intl.
 */
import {
  MONTHS,
  type TimeZoneOption,
  tokenize,
  validateTimezone,
  WEEKDAYS,
  wallClockToInstant,
} from './time-format.js';

const NAME_ALTERNATIVES = (names: string[], abbreviated: boolean) =>
  names.map((n) => (abbreviated ? n.slice(0, 3) : n)).join('|');

const TOKEN_PATTERNS: Record<string, string> = {
  Y: '(\\d{4})',
  y: '(\\d{2})',
  m: '(\\d{1,2})',
  d: '(\\d{1,2})',
  e: '( ?\\d{1,2})',
  H: '(\\d{1,2})',
  I: '(\\d{1,2})',
  M: '(\\d{1,2})',
  S: '(\\d{1,2})',
  p: '(AM|PM)',
  j: '(\\d{1,3})',
  b: `(${NAME_ALTERNATIVES(MONTHS, true)})`,
  B: `(${NAME_ALTERNATIVES(MONTHS, false)})`,
  a: `(${NAME_ALTERNATIVES(WEEKDAYS, true)})`,
  A: `(${NAME_ALTERNATIVES(WEEKDAYS, false)})`,
  Z: '(UTC|GMT|Z)',
  z: '(Z|[+-]\\d{2}:?\\d{2})',
  s: '(-?\\d+)',
};

interface ParsedFields {
  year?: number;
  month?: number;
  day?: number;
  hour?: number;
  hour12?: number;
  pm?: boolean;
  minute?: number;
  second?: number;
  yearDay?: number;
  weekday?: number;
  offsetMinutes?: number;
  epochSeconds?: number;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function indexOfName(names: string[], value: string, abbreviated: boolean): number {
  const lower = value.toLowerCase();
  return names.findIndex((n) => (abbreviated ? n.slice(0, 3) : n).toLowerCase() === lower);
}

function assignField(fields: ParsedFields, token: string, value: string): void {
  switch (token) {
    case 'Y':
      fields.year = Number(value);
      break;
    case 'y': {
      // POSIX: 69-99 are 1969-1999, 00-68 are 2000-2068.
      const yy = Number(value);
      fields.year = yy >= 69 ? 1900 + yy : 2000 + yy;
      break;
    }
    case 'm':
      fields.month = Number(value);
      break;
    case 'd':
    case 'e':
      fields.day = Number(value.trim());
      break;
    case 'H':
      fields.hour = Number(value);
      break;
    case 'I':
      fields.hour12 = Number(value);
      break;
    case 'p':
      fields.pm = value.toUpperCase() === 'PM';
      break;
    case 'M':
      fields.minute = Number(value);
      break;
    case 'S':
      fields.second = Number(value);
      break;
    case 'j':
      fields.yearDay = Number(value);
      break;
    case 'b':
    case 'B':
      fields.month = indexOfName(MONTHS, value, token === 'b') + 1;
      break;
    case 'a':
    case 'A':
      fields.weekday = indexOfName(WEEKDAYS, value, token === 'a');
      break;
    case 'Z':
      fields.offsetMinutes = 0;
      break;
    case 'z': {
      if (value === 'Z') {
        fields.offsetMinutes = 0;
        break;
      }
      const digits = value.replace(':', '');
      const minutes = Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5));
      fields.offsetMinutes = digits[0] === '-' ? -minutes : minutes;
      break;
    }
    case 's':
      fields.epochSeconds = Number(value);
      break;
  }
}

const isLeapYear = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const daysInMonth = (y: number, m: number) =>
  [31, isLeapYear(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1];

/** Turns parsed fields into an instant, or null when they describe an impossible date. */
function resolveFields(f: ParsedFields, timezone: string | undefined): Date | null {
  if (f.epochSeconds !== undefined) return new Date(f.epochSeconds * 1000);
  const year = f.year ?? 1970;
  let month = f.month ?? 1;
  let day = f.day ?? 1;
  if (f.yearDay !== undefined) {
    if (f.yearDay < 1 || f.yearDay > (isLeapYear(year) ? 366 : 365)) return null;
    const fromYearDay = new Date(Date.UTC(year, 0, f.yearDay));
    if (f.month !== undefined && f.month !== fromYearDay.getUTCMonth() + 1) return null;
    if (f.day !== undefined && f.day !== fromYearDay.getUTCDate()) return null;
    month = fromYearDay.getUTCMonth() + 1;
    day = fromYearDay.getUTCDate();
  }
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  let hour = f.hour ?? 0;
  if (f.hour12 !== undefined) {
    if (f.hour12 < 1 || f.hour12 > 12) return null;
    hour = (f.hour12 % 12) + (f.pm ? 12 : 0);
    if (f.hour !== undefined && f.hour !== hour) return null;
  }
  const minute = f.minute ?? 0;
  const second = f.second ?? 0;
  if (hour > 23 || minute > 59 || second > 59) return null;
  const wallAsUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear keeps the year as written.
  const wall = new Date(wallAsUtc);
  if (year < 100) wall.setUTCFullYear(year);
  if (f.weekday !== undefined && wall.getUTCDay() !== f.weekday) return null;
  const instant =
    f.offsetMinutes !== undefined
      ? wall.getTime() - f.offsetMinutes * 60_000
      : wallClockToInstant(wall.getTime(), timezone);
  return new Date(instant);
}

export type Strptime = (text: string) => Date | null;

/**
 * Compiles a strptime format. The parser matches the whole text (case-insensitive names) and
 * returns null when it does not match or names an impossible date (month 13, 30 February,
 * 25:00, a weekday that contradicts the date). Fields absent from the format default to
 * 1970-01-01 00:00:00; the wall clock is read in `timezone` (UTC by default) unless the text
 * carries `%z`/`%Z`.
 */
export function compileStrptime(format: string, opts: TimeZoneOption = {}): Strptime {
  const parts = tokenize(format);
  if (opts.timezone !== undefined) validateTimezone(opts.timezone);
  const tokens: string[] = [];
  let source = '^';
  for (const part of parts) {
    if ('literal' in part) {
      source += escapeRegExp(part.literal);
    } else {
      tokens.push(part.token);
      source += TOKEN_PATTERNS[part.token];
    }
  }
  const matcher = new RegExp(`${source}$`, 'i');
  return (text) => {
    const match = matcher.exec(text);
    if (!match) return null;
    const fields: ParsedFields = {};
    tokens.forEach((token, i) => {
      assignField(fields, token, match[i + 1]);
    });
    return resolveFields(fields, opts.timezone);
  };
}
