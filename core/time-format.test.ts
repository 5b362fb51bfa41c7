import { describe, expect, it } from 'vitest';
import {
  compileStrftime,
  strftime,
  TimeFormatError,
  validateFormat,
  validateTimezone,
} from './time-format.js';
import { compileStrptime } from './time-parse.js';

// Tuesday 5 March 2024, 07:08:09 UTC (a leap year, day 65).
const MARCH_5 = new Date(Date.UTC(2024, 2, 5, 7, 8, 9));
// Sunday 15 December 2024, 19:04:05 UTC (day 350).
const DEC_15 = new Date(Date.UTC(2024, 11, 15, 19, 4, 5));

describe('strftime', () => {
  it.each([
    ['%Y', '2024'],
    ['%y', '24'],
    ['%m', '03'],
    ['%d', '05'],
    ['%e', ' 5'],
    ['%H', '07'],
    ['%I', '07'],
    ['%M', '08'],
    ['%S', '09'],
    ['%p', 'AM'],
    ['%j', '065'],
    ['%b', 'Mar'],
    ['%B', 'March'],
    ['%a', 'Tue'],
    ['%A', 'Tuesday'],
    ['%Z', 'UTC'],
    ['%z', '+0000'],
    ['%s', String(MARCH_5.getTime() / 1000)],
    ['%F', '2024-03-05'],
    ['%T', '07:08:09'],
    ['%%', '%'],
    ['100%% at %Y/%m/%d/%H', '100% at 2024/03/05/07'],
  ])('formats %s', (format, expected) => {
    expect(strftime(MARCH_5, format)).toBe(expected);
  });

  it('formats afternoon hours, two-digit days and late days of year', () => {
    expect(strftime(DEC_15, '%I %p %e %j %a %A %b %B')).toBe('07 PM 15 350 Sun Sunday Dec December');
    expect(strftime(new Date(Date.UTC(2024, 0, 1, 0, 0, 0)), '%I %p %j')).toBe('12 AM 001');
    expect(strftime(new Date(Date.UTC(2024, 0, 1, 12, 0, 0)), '%I %p')).toBe('12 PM');
  });

  it('formats in an IANA timezone, with its offset and abbreviation', () => {
    // 23:30 UTC on 31 Dec is already 1 Jan in Paris (UTC+1 in winter).
    const newYearsEve = new Date(Date.UTC(2023, 11, 31, 23, 30, 0));
    expect(strftime(newYearsEve, '%Y-%m-%d %H:%M %z', { timezone: 'Europe/Paris' })).toBe(
      '2024-01-01 00:30 +0100',
    );
    expect(strftime(new Date(Date.UTC(2024, 6, 1, 12, 0, 0)), '%H %z', { timezone: 'Europe/Paris' })).toBe(
      '14 +0200',
    );
    expect(
      strftime(new Date(Date.UTC(2024, 6, 1, 12, 0, 0)), '%H %z %a', { timezone: 'America/New_York' }),
    ).toBe('08 -0400 Mon');
    expect(strftime(MARCH_5, '%Z', { timezone: 'America/New_York' })).toBe('EST');
  });

  it('compiles once and formats many dates', () => {
    const format = compileStrftime('%Y/%m');
    expect(format(MARCH_5)).toBe('2024/03');
    expect(format(DEC_15)).toBe('2024/12');
  });

  it('rejects an unknown token with its offset', () => {
    const error = (() => {
      try {
        validateFormat('%Y-%Q');
      } catch (err) {
        return err;
      }
    })();
    expect(error).toBeInstanceOf(TimeFormatError);
    expect((error as TimeFormatError).offset).toBe(3);
    expect((error as TimeFormatError).message).toBe(
      'unknown format token "%Q" at offset 3 in "%Y-%Q" (supported: %Y %y %m %d %e %H %I %M %S %p %j %b %B %a %A %Z %z %s %F %T %%)',
    );
  });

  it('rejects a dangling percent sign', () => {
    expect(() => strftime(MARCH_5, '%Y%')).toThrow(
      new TimeFormatError(
        'format "%Y%" ends with a lone "%" at offset 2 (write "%%" for a literal percent sign)',
        '%Y%',
        2,
      ),
    );
  });

  it('rejects an unknown timezone and an invalid date', () => {
    expect(() => validateTimezone('Mars/Olympus')).toThrow('unknown timezone "Mars/Olympus"');
    expect(() => strftime(MARCH_5, '%Y', { timezone: 'Mars/Olympus' })).toThrow(RangeError);
    expect(() => strftime(new Date(Number.NaN), '%Y')).toThrow('invalid date');
  });
});

describe('strptime', () => {
  const parse = (format: string, text: string, timezone?: string) =>
    compileStrptime(format, { timezone })(text);

  it('parses compact digit runs (CDR names)', () => {
    expect(parse('%Y%m%d%H', '2024031507')).toEqual(new Date(Date.UTC(2024, 2, 15, 7)));
    expect(parse('%Y%m%d', '20240315')).toEqual(new Date(Date.UTC(2024, 2, 15)));
  });

  it.each([
    ['%Y-%m-%d %H:%M:%S', '2024-03-05 07:08:09', Date.UTC(2024, 2, 5, 7, 8, 9)],
    ['%y%m%d', '240305', Date.UTC(2024, 2, 5)],
    ['%y', '69', Date.UTC(1969, 0, 1)],
    ['%y', '68', Date.UTC(2068, 0, 1)],
    ['%d/%m/%Y', '5/3/2024', Date.UTC(2024, 2, 5)],
    ['%e %b %Y', ' 5 Mar 2024', Date.UTC(2024, 2, 5)],
    ['%d %B %Y', '05 march 2024', Date.UTC(2024, 2, 5)],
    ['%a %d %b %Y', 'Tue 05 Mar 2024', Date.UTC(2024, 2, 5)],
    ['%A %d %B %Y', 'Tuesday 05 March 2024', Date.UTC(2024, 2, 5)],
    ['%Y-%j', '2024-065', Date.UTC(2024, 2, 5)],
    ['%Y-%j', '2024-366', Date.UTC(2024, 11, 31)],
    ['%I:%M %p', '07:08 PM', Date.UTC(1970, 0, 1, 19, 8)],
    ['%I:%M %p', '12:00 am', Date.UTC(1970, 0, 1, 0, 0)],
    ['%I:%M %p', '12:00 PM', Date.UTC(1970, 0, 1, 12, 0)],
    ['%F %T', '2024-03-05 07:08:09', Date.UTC(2024, 2, 5, 7, 8, 9)],
    ['%F %T %Z', '2024-03-05 07:08:09 UTC', Date.UTC(2024, 2, 5, 7, 8, 9)],
    ['%FT%T%z', '2024-03-05T07:08:09+01:30', Date.UTC(2024, 2, 5, 5, 38, 9)],
    ['%FT%T%z', '2024-03-05T07:08:09-0200', Date.UTC(2024, 2, 5, 9, 8, 9)],
    ['%FT%T%z', '2024-03-05T07:08:09Z', Date.UTC(2024, 2, 5, 7, 8, 9)],
    ['%s', '1709622489', Date.UTC(2024, 2, 5, 7, 8, 9)],
    ['100%% %Y', '100% 2024', Date.UTC(2024, 0, 1)],
    ['report(%Y).csv', 'report(2024).csv', Date.UTC(2024, 0, 1)],
  ])('parses %s from %j', (format, text, expected) => {
    expect(parse(format, text)).toEqual(new Date(expected));
  });

  it.each([
    ['%Y%m%d', '20241301', 'month 13'],
    ['%Y%m%d', '20240230', '30 February'],
    ['%Y%m%d', '20230229', '29 February of a common year'],
    ['%Y%m%d', '20240400', 'day 0'],
    ['%Y%m%d', '20240431', '31 April'],
    ['%H:%M', '24:00', 'hour 24'],
    ['%H:%M', '12:60', 'minute 60'],
    ['%H:%M:%S', '12:00:60', 'second 60'],
    ['%I %p', '13 PM', '12-hour clock past 12'],
    ['%I %p', '00 AM', '12-hour clock hour 0'],
    ['%Y-%j', '2023-366', 'day 366 of a common year'],
    ['%Y-%j', '2024-000', 'day 0 of the year'],
    ['%a %Y-%m-%d', 'Mon 2024-03-05', 'a weekday contradicting the date'],
  ])('rejects %s on %j (%s)', (format, text) => {
    expect(parse(format, text)).toBeNull();
  });

  it('accepts 29 February of a leap year and of year 2000, not of 1900', () => {
    expect(parse('%Y%m%d', '20240229')).toEqual(new Date(Date.UTC(2024, 1, 29)));
    expect(parse('%Y%m%d', '20000229')).toEqual(new Date(Date.UTC(2000, 1, 29)));
    expect(parse('%Y%m%d', '19000229')).toBeNull();
  });

  it('matches the whole text only', () => {
    expect(parse('%Y%m%d', '20240305x')).toBeNull();
    expect(parse('%Y%m%d', 'x20240305')).toBeNull();
    expect(parse('%Y-%m', '2024/03')).toBeNull();
    expect(parse('%Y', '24')).toBeNull();
  });

  it('reads the wall clock in an IANA timezone, across DST', () => {
    expect(parse('%F %T', '2024-01-15 10:00:00', 'Europe/Paris')).toEqual(new Date(Date.UTC(2024, 0, 15, 9)));
    expect(parse('%F %T', '2024-07-15 10:00:00', 'Europe/Paris')).toEqual(new Date(Date.UTC(2024, 6, 15, 8)));
    // An explicit offset in the text wins over the configured timezone.
    expect(parse('%F %T%z', '2024-07-15 10:00:00+0000', 'Europe/Paris')).toEqual(
      new Date(Date.UTC(2024, 6, 15, 10)),
    );
  });

  it('round-trips strftime output', () => {
    const format = '%Y-%m-%d %H:%M:%S %a %j';
    expect(parse(format, strftime(DEC_15, format))).toEqual(DEC_15);
  });

  it('rejects a bad format at compile time', () => {
    expect(() => compileStrptime('%Y%m%Q')).toThrow(TimeFormatError);
    expect(() => compileStrptime('%Y', { timezone: 'Nowhere/Land' })).toThrow('unknown timezone');
  });
});
