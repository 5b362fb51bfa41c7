import { afterEach, describe, expect, it, vi } from 'vitest';
import { PluginRegistry } from '../registry.js';
import { MAX_TIMER_MS, RateLimiter, sleep } from '../runtime/timing.js';
import { loadPipeline } from './load.js';
import { firstPassDue, scheduleOf, skipMissed } from './trigger.js';

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
    expect(scheduleOf({ cron: '0 * * * *' }).nextAfter(new Date('2024-01-01T10:20:00Z'))?.toISOString()).toBe(
      '2024-01-01T11:00:00.000Z',
    );
  });

  it('rejects a bad expression or timezone as a config error at /trigger/cron or /trigger/timezone', () => {
    expect(() => scheduleOf({ cron: '61 * * * *' })).toThrow(
      /trigger\.cron "61 \* \* \* \*" \(timezone UTC\) is invalid/,
    );
    const thrown = (trigger: Parameters<typeof scheduleOf>[0]) => {
      try {
        scheduleOf(trigger);
      } catch (err) {
        return err as { code: string; message: string; context: { jsonPath: string } };
      }
      return expect.unreachable();
    };
    const tz = thrown({ cron: '0 * * * *', timezone: 'Mars/Olympus' });
    expect(tz.code).toBe('SLUICE_E_CONFIG');
    expect(tz.context.jsonPath).toBe('/trigger/timezone');
    expect(tz.message).toBe('trigger.timezone "Mars/Olympus" is not a known IANA timezone');
    // cron-parser takes a fixed offset, Intl does not: only real zones pass.
    expect(thrown({ cron: '0 * * * *', timezone: 'UTC+2' }).context.jsonPath).toBe('/trigger/timezone');
    expect(thrown({ every: '1h', timezone: 'Europe/Pariss' }).context.jsonPath).toBe('/trigger/timezone');
  });

  it('rejects a cron expression without 5 or 6 fields (cron-parser accepts "0 1 * *" and "0")', () => {
    for (const cron of ['0 1 * *', '0', '0 0 1 * * * *']) {
      expect(() => scheduleOf({ cron }), cron).toThrow(
        /a cron expression has 5 \(minute hour day-of-month month day-of-week\) or 6 \(seconds first\)/,
      );
    }
    expect(scheduleOf({ cron: '@monthly' }).nextAfter(new Date('2024-01-02T00:00:00Z'))?.toISOString()).toBe(
      '2024-02-01T00:00:00.000Z',
    );
    expect(
      scheduleOf({ cron: '0 0 6 * * 1-5' }).nextAfter(new Date('2024-01-05T07:00:00Z'))?.toISOString(),
    ).toBe('2024-01-08T06:00:00.000Z');
  });

  it('reports a 4-field cron and an unknown timezone from the pipeline file, with file:line:col', async () => {
    const text = (trigger: string) =>
      `name: p\ntrigger:\n${trigger}\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n`;
    const load = (trigger: string) =>
      loadPipeline('/tmp/sluice-trigger-test/p.yaml', {
        registry: new PluginRegistry(),
        text: text(trigger),
      }).then(
        () => expect.unreachable(),
        (err: Error & { toUserString(): string }) => err.toUserString(),
      );
    // The plugins are unknown to an empty registry: those errors come after the trigger's.
    expect(await load('  cron: "0 0 1 *"')).toMatch(
      /^\/tmp\/sluice-trigger-test\/p\.yaml:3:9: \/trigger\/cron: trigger\.cron "0 0 1 \*" has 4 fields; a cron expression has 5 .* — e\.g\. "0 6 \* \* 1-5"/m,
    );
    expect(await load('  cron: "0 0 1 * *"\n  timezone: Europe/Pariss')).toMatch(
      /^\/tmp\/sluice-trigger-test\/p\.yaml:4:13: \/trigger\/timezone: trigger\.timezone "Europe\/Pariss" is not a known IANA timezone/m,
    );
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
    const r = skipMissed(
      scheduleOf({ every: '1m' }),
      new Date('2024-01-01T10:00:00Z'),
      new Date('2024-01-01T10:00:20Z'),
    );
    expect(r).toEqual({ skipped: 0, next: new Date('2024-01-01T10:01:00Z') });
  });

  it('ends a one-shot schedule', () => {
    expect(skipMissed(scheduleOf(undefined), new Date(), new Date())).toEqual({
      skipped: 0,
      next: undefined,
    });
  });
});

describe('timers longer than setTimeout can take (2^31-1 ms, about 24.8 days)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  const DAY = 24 * 3600 * 1000;

  it('a wait of 40 days does not end early: it is chained in chunks, not overflowed to 1 ms', async () => {
    vi.useFakeTimers();
    let done = false;
    void sleep(40 * DAY).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(1000);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(40 * DAY - MAX_TIMER_MS - 1000 - 1);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
  });

  it('a trigger due 30 days ahead (every: 30d, cron on the 1st seen from the 2nd) is waited for', async () => {
    vi.useFakeTimers({ now: new Date('2024-03-02T00:00:00Z') });
    for (const schedule of [scheduleOf({ every: '30d' }), scheduleOf({ cron: '0 0 1 * *' })]) {
      const next = schedule.nextAfter(new Date())!;
      let done = false;
      void sleep(next.getTime() - Date.now()).then(() => {
        done = true;
      });
      await vi.advanceTimersByTimeAsync(next.getTime() - Date.now() - 1);
      expect(done, schedule.description).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(done, schedule.description).toBe(true);
    }
  });

  it('an abort during a later chunk still rejects the wait at once', async () => {
    vi.useFakeTimers();
    const stop = new AbortController();
    const wait = sleep(60 * DAY, stop.signal);
    await vi.advanceTimersByTimeAsync(30 * DAY);
    stop.abort(new Error('stopped'));
    await expect(wait).rejects.toThrow('stopped');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a rate limit slower than one item per 25 days waits its full interval', async () => {
    vi.useFakeTimers();
    const limiter = new RateLimiter(1 / (30 * 24 * 3600));
    await limiter.take();
    let second = false;
    void limiter.take().then(() => {
      second = true;
    });
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS + 1000);
    expect(second).toBe(false);
    await vi.advanceTimersByTimeAsync(30 * DAY);
    expect(second).toBe(true);
  });
});

describe('firstPassDue (trigger.run_at_start, reloads)', () => {
  const now = new Date('2024-01-01T10:20:00Z');
  const nightly = { cron: '0 2 * * *' };
  const text =
    'name: n\ndescription: one\ntrigger: { cron: "0 2 * * *" }\nsource: { local: { path: ./in } }\n';
  const at = (d: Date | undefined) => d?.toISOString();

  it('runs at once by default, or waits for the first due time with run_at_start: false', () => {
    expect(at(firstPassDue(scheduleOf(nightly), nightly, text, now))).toBe(now.toISOString());
    const waits = { ...nightly, run_at_start: false };
    expect(at(firstPassDue(scheduleOf(waits), waits, text, now))).toBe('2024-01-02T02:00:00.000Z');
    expect(at(firstPassDue(scheduleOf(undefined), undefined, text, now))).toBe(now.toISOString());
  });

  it('keeps the next due time across an edit of the description alone (or comments)', () => {
    const due = new Date('2024-01-02T02:00:00Z');
    const edited = `# a comment\n${text.replace('description: one', 'description:   two')}`;
    const replaced = { text, running: false, due };
    expect(at(firstPassDue(scheduleOf(nightly), nightly, edited, now, replaced))).toBe(due.toISOString());
    // Anything else: as at start.
    const changed = text.replace('./in', './incoming');
    expect(at(firstPassDue(scheduleOf(nightly), nightly, changed, now, replaced))).toBe(now.toISOString());
    const waits = { ...nightly, run_at_start: false };
    expect(at(firstPassDue(scheduleOf(waits), waits, changed, now, replaced))).toBe(due.toISOString());
  });

  it('goes on at once after a reload that drained a pass', () => {
    const waits = { ...nightly, run_at_start: false };
    expect(at(firstPassDue(scheduleOf(waits), waits, text, now, { text, running: true }))).toBe(
      now.toISOString(),
    );
  });

  it('refuses run_at_start: false without every or cron', () => {
    expect(() => scheduleOf({ run_at_start: false })).toThrow(/needs `every` or `cron`/);
  });
});
