/**
 * strftime (and the tokens strptime in `time-parse.ts` reads) with the POSIX tokens people actually write in paths and file names.
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

export const MONTHS = [
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
export const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

const TOKENS = 'YymdeHIMSpjbBaAZzsFT%';
const SUPPORTED = [...TOKENS].map((t) => `%${t}`).join(' ');

type FormatPart = { literal: string } | { token: string };

/** `%F` and `%T`: [first token, separator, second token, third token]. */
const SHORTHANDS: Record<string, [string, string, string, string]> = {
  F: ['Y', '-', 'm', 'd'],
  T: ['H', ':', 'M', 'S'],
};

/** Splits a format into literals and tokens; throws TimeFormatError on `%Q` or a lone `%`. */
export function tokenize(format: string): FormatPart[] {
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
export function wallClockToInstant(wallAsUtc: number, timezone: string | undefined): number {
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
