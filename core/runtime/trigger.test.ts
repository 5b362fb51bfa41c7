import { describe, expect, it } from 'vitest';
import { scheduleOf, skipMissed } from './trigger.js';

describe('scheduleOf', () => {
  it('is one-shot without a trigger', () => {
    const s = scheduleOf(undefined);
    expect(s.description).toBe('once');
    expect(s.nextAfter(new Date())).toBeUndefined();
  });

  it('adds the interval for every', () => {
    const s = scheduleOf({ every: '15m' });
    expect(s.nextAfter(new Date('2024-01-01T10:00:00Z'))?.toISOString()).toBe('2024-01-01T10:15:00.000Z');
  });

  it('follows cron in the given timezone, across a DST change', () => {
    const s = scheduleOf({ cron: '30 6 * * *', timezone: 'Europe/Paris' });
    expect(s.description).toBe('cron 30 6 * * * (Europe/Paris)');
    // 06:30 Paris is 05:30Z in winter and 04:30Z in summer (DST began 2024-03-31).
    expect(s.nextAfter(new Date('2024-03-30T12:00:00Z'))?.toISOString()).toBe('2024-03-31T04:30:00.000Z');
    expect(s.nextAfter(new Date('2024-03-29T12:00:00Z'))?.toISOString()).toBe('2024-03-30T05:30:00.000Z');
  });

  it('defaults cron to UTC', () => {
    expect(scheduleOf({ cron: '0 * * * *' }).nextAfter(new Date('2024-01-01T10:20:00Z'))?.toISOString()).toBe('2024-01-01T11:00:00.000Z');
  });

  it('rejects a bad expression or timezone as a config error at /trigger/cron', () => {
    expect(() => scheduleOf({ cron: '61 * * * *' })).toThrow(/trigger\.cron "61 \* \* \* \*" \(timezone UTC\) is invalid/);
    try {
      scheduleOf({ cron: '0 * * * *', timezone: 'Mars/Olympus' });
      expect.unreachable();
    } catch (err) {
      expect((err as { code: string; context: { jsonPath: string } }).code).toBe('SLUICE_E_CONFIG');
      expect((err as { context: { jsonPath: string } }).context.jsonPath).toBe('/trigger/cron');
    }
  });
});

describe('skipMissed', () => {
  it('skips the due times a long pass ran past, and gives the first one after it', () => {
    const s = scheduleOf({ every: '1m' });
    const due = new Date('2024-01-01T10:00:00Z');
    const r = skipMissed(s, due, new Date('2024-01-01T10:03:30Z'));
    expect(r.skipped).toBe(3);
    expect(r.next?.toISOString()).toBe('2024-01-01T10:04:00.000Z');
  });

  it('skips nothing when the pass ended before the next due time', () => {
    const r = skipMissed(scheduleOf({ every: '1m' }), new Date('2024-01-01T10:00:00Z'), new Date('2024-01-01T10:00:20Z'));
    expect(r).toEqual({ skipped: 0, next: new Date('2024-01-01T10:01:00Z') });
  });

  it('ends a one-shot schedule', () => {
    expect(skipMissed(scheduleOf(undefined), new Date(), new Date())).toEqual({ skipped: 0, next: undefined });
  });
});
