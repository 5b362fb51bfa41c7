import { describe, expect, it } from 'vitest';
import { ArrivalWindow, deadlineCron, deadlines } from './expect.js';

describe('expect deadlines', () => {
  it('06:00 Paris on weekdays: Friday 06:00 is followed by Monday 06:00 (05:00 UTC in winter)', () => {
    const paris = { by: '06:00', timezone: 'Europe/Paris', days: ['mon-fri'] };
    expect(deadlineCron(paris)).toBe('0 0 6 * * 1-5');
    const schedule = deadlines(paris);
    expect(schedule.nextAfter(new Date('2026-12-04T04:59:00Z')).toISOString()).toBe(
      '2026-12-04T05:00:00.000Z',
    );
    expect(schedule.nextAfter(new Date('2026-12-04T05:00:00Z')).toISOString()).toBe(
      '2026-12-07T05:00:00.000Z',
    );
  });

  it('every day by default, seconds allowed, single days and lists', () => {
    expect(deadlineCron({ by: '23:59:30' })).toBe('30 59 23 * * 0-6');
    expect(deadlineCron({ by: '07:05', days: ['sat', 'sun'] })).toBe('0 5 7 * * 6,0');
  });

  it('counts deliveries between deadlines', () => {
    const window = new ArrivalWindow();
    window.add(2);
    const deadline = new Date('2026-12-04T05:00:00Z');
    expect(window.close(deadline).delivered).toBe(2);
    const next = window.close(new Date('2026-12-07T05:00:00Z'));
    expect(next).toEqual({ delivered: 0, since: deadline });
  });
});
