/**
 * strftime / strptime with the POSIX tokens people actually write in paths and file names.
 * UTC by default; an IANA timezone (`Europe/Paris`) is honoured through Intl. English names only.
 *
 * Tokens: %Y %y %m %d %e %H %I %M %S %p %j %b %B %a %A %Z %z %s %F (=%Y-%m-%d) %T (=%H:%M:%S) %%
 */

export class TimeFormatError extends Error {
  /** Character offset of the offending `%` in `format`. */
  readonly offset: number;
  readonly format: string;

  constructor(message: string, format: string, offset: number) {
    super(message);
    this.name = 'TimeFormatError';
    this.format = format;
    this.offset = offset;
  }
}

export interface TimeZoneOption {
  /** `UTC` (default) or an IANA name such as `Europe/Paris`. */
  timezone?: string;
}

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

const TOKENS = 'YymdeHIMSpjbBaAZzsFT%';
const SUPPORTED = [...TOKENS].map((t) => `%${t}`).join(' ');

type FormatPart = { literal: string } | { token: string };

/** `%F` and `%T`: [first token, separator, second token, third token]. */
const SHORTHANDS: Record<string, [string, string, string, string]> = {
  F: ['Y', '-', 'm', 'd'],
  T: ['H', ':', 'M', 'S'],
};

/** Splits a format into literals and tokens; throws TimeFormatError on `%Q` or a lone `%`. */
function tokenize(format: string): FormatPart[] {
  const parts: FormatPart[] = [];
  let literal = '';
  for (let i = 0; i < format.length; i++) {
    const ch = format[i];
    if (ch !== '%') {
      literal += ch;
      continue;
    }
    const token = format[i + 1];
    if (token === undefined) {
      throw new TimeFormatError(
        `format "${format}" ends with a lone "%" at offset ${i} (write "%%" for a literal percent sign)`,
        format,
        i,
      );
    }
    if (!TOKENS.includes(token)) {
      throw new TimeFormatError(
        `unknown format token "%${token}" at offset ${i} in "${format}" (supported: ${SUPPORTED})`,
        format,
        i,
      );
    }
    i++;
    if (token === '%') {
      literal += '%';
      continue;
    }
    if (literal) parts.push({ literal });
    literal = '';
    const expansion = SHORTHANDS[token];
    if (expansion)
      parts.push(
        { token: expansion[0] },
        { literal: expansion[1] },
        { token: expansion[2] },
        { literal: expansion[1] },
        { token: expansion[3] },
      );
    else parts.push({ token });
  }
  if (literal) parts.push({ literal });
  return parts;
}

/** Throws TimeFormatError when `format` has an unknown token or a dangling `%`. */
export function validateFormat(format: string): void {
  tokenize(format);
}

/* ------------------------------------------------------------------------- timezones */

/** Wall-clock fields of an instant in some timezone. */
interface WallClock {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
  minute: number;
  second: number;
  weekday: number; // 0 = Sunday
  /** Minutes east of UTC. */
  offsetMinutes: number;
  zoneName: string;
}

const zoneFormatters = new Map<string, Intl.DateTimeFormat>();

function isUtc(timezone: string | undefined): boolean {
  return timezone === undefined || timezone === 'UTC' || timezone === 'Etc/UTC' || timezone === 'GMT';
}

function zoneFormatter(timezone: string): Intl.DateTimeFormat {
  let formatter = zoneFormatters.get(timezone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      timeZoneName: 'short',
    });
    zoneFormatters.set(timezone, formatter);
  }
  return formatter;
}

/** Throws a RangeError naming the timezone when Intl does not know it. */
export function validateTimezone(timezone: string): void {
  if (isUtc(timezone)) return;
  try {
    zoneFormatter(timezone);
  } catch {
    throw new RangeError(`unknown timezone "${timezone}" (use UTC or an IANA name such as Europe/Paris)`);
  }
}

function wallClock(date: Date, timezone: string | undefined): WallClock {
  if (isUtc(timezone)) {
    return {
      year: date.getUTCFullYear(),
      month: date.getUTCMonth() + 1,
      day: date.getUTCDate(),
      hour: date.getUTCHours(),
      minute: date.getUTCMinutes(),
      second: date.getUTCSeconds(),
      weekday: date.getUTCDay(),
      offsetMinutes: 0,
      zoneName: 'UTC',
    };
  }
  validateTimezone(timezone as string);
  const fields: Record<string, string> = {};
  for (const part of zoneFormatter(timezone as string).formatToParts(date)) fields[part.type] = part.value;
  const year = Number(fields.year);
  const month = Number(fields.month);
  const day = Number(fields.day);
  const hour = Number(fields.hour);
  const minute = Number(fields.minute);
  const second = Number(fields.second);
  const asUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  const wholeSeconds = Math.floor(date.getTime() / 1000) * 1000;
  return {
    year,
    month,
    day,
    hour,
    minute,
    second,
    weekday: new Date(asUtc).getUTCDay(),
    offsetMinutes: Math.round((asUtc - wholeSeconds) / 60_000),
    zoneName: fields.timeZoneName ?? timezone ?? 'UTC',
  };
}

/** The instant at which the wall clock in `timezone` shows the given UTC-encoded fields. */
function wallClockToInstant(wallAsUtc: number, timezone: string | undefined): number {
  if (isUtc(timezone)) return wallAsUtc;
  // Two passes settle the offset on either side of a DST change.
  let instant = wallAsUtc - wallClock(new Date(wallAsUtc), timezone).offsetMinutes * 60_000;
  instant = wallAsUtc - wallClock(new Date(instant), timezone).offsetMinutes * 60_000;
  return instant;
}

/* --------------------------------------------------------------------------- strftime */

const pad = (n: number, width = 2, fill = '0') => String(n).padStart(width, fill);

function dayOfYear(year: number, month: number, day: number): number {
  return Math.round((Date.UTC(year, month - 1, day) - Date.UTC(year, 0, 1)) / 86_400_000) + 1;
}

function formatOffset(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
}

function formatToken(token: string, w: WallClock, date: Date): string {
  switch (token) {
    case 'Y':
      return pad(w.year, 4);
    case 'y':
      return pad(w.year % 100);
    case 'm':
      return pad(w.month);
    case 'd':
      return pad(w.day);
    case 'e':
      return pad(w.day, 2, ' ');
    case 'H':
      return pad(w.hour);
    case 'I':
      return pad(w.hour % 12 === 0 ? 12 : w.hour % 12);
    case 'M':
      return pad(w.minute);
    case 'S':
      return pad(w.second);
    case 'p':
      return w.hour < 12 ? 'AM' : 'PM';
    case 'j':
      return pad(dayOfYear(w.year, w.month, w.day), 3);
    case 'b':
      return MONTHS[w.month - 1].slice(0, 3);
    case 'B':
      return MONTHS[w.month - 1];
    case 'a':
      return WEEKDAYS[w.weekday].slice(0, 3);
    case 'A':
      return WEEKDAYS[w.weekday];
    case 'Z':
      return w.zoneName;
    case 'z':
      return formatOffset(w.offsetMinutes);
    case 's':
      return String(Math.floor(date.getTime() / 1000));
    default:
      throw new Error(`strftime: unhandled token %${token}`);
  }
}

export type Strftime = (date: Date, timezone?: string) => string;

/** Compiles a strftime format once; the result formats any date, in UTC unless told otherwise. */
export function compileStrftime(format: string): Strftime {
  const parts = tokenize(format);
  return (date, timezone) => {
    if (Number.isNaN(date.getTime())) throw new RangeError('strftime: invalid date');
    const w = wallClock(date, timezone);
    let out = '';
    for (const part of parts) out += 'literal' in part ? part.literal : formatToken(part.token, w, date);
    return out;
  };
}

const strftimeCache = new Map<string, Strftime>();

/** Formats `date` with `format` (compiled formats are cached). */
export function strftime(date: Date, format: string, opts: TimeZoneOption = {}): string {
  let compiled = strftimeCache.get(format);
  if (!compiled) {
    compiled = compileStrftime(format);
    if (strftimeCache.size < 256) strftimeCache.set(format, compiled);
  }
  return compiled(date, opts.timezone);
}

/* --------------------------------------------------------------------------- strptime */

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
