/**
 * When passes run: once (default), `every: <duration>` or `cron: "<expr>"` (+ `timezone`).
 * A schedule only answers "when is the next pass due after t"; the supervisor owns the loop.
 */
import { CronExpressionParser } from 'cron-parser';
import { SluiceError } from '../errors.js';
import { parseDuration } from '../units.js';
import type { TriggerT } from './schema.js';

export interface Schedule {
  /** `once`, `every 15m`, `cron 0 6 * * 1-5 (Europe/Paris)`: for logs and /status. */
  readonly description: string;
  /** The first due time strictly after `after`; undefined for a one-shot trigger. */
  nextAfter(after: Date): Date | undefined;
}

export function scheduleOf(trigger: TriggerT | undefined): Schedule {
  if (trigger?.timezone !== undefined) checkTimezone(trigger.timezone);
  if (trigger?.every !== undefined) {
    const intervalMs = parseDuration(trigger.every);
    if (!(intervalMs > 0))
      throw new SluiceError(
        'SLUICE_E_CONFIG',
        `trigger.every must be longer than 0, got "${trigger.every}"`,
        { context: { jsonPath: '/trigger/every' } },
      );
    return {
      description: `every ${trigger.every}`,
      nextAfter: (after) => new Date(after.getTime() + intervalMs),
    };
  }
  if (trigger?.cron !== undefined) {
    const expression = trigger.cron;
    const tz = trigger.timezone ?? 'UTC';
    checkCronFields(expression);
    try {
      // Parsing once up front turns a bad expression into a config error.
      CronExpressionParser.parse(expression, { tz }).next();
    } catch (err) {
      throw new SluiceError(
        'SLUICE_E_CONFIG',
        `trigger.cron "${expression}" (timezone ${tz}) is invalid: ${(err as Error).message}`,
        {
          context: { jsonPath: '/trigger/cron' },
        },
      );
    }
    return {
      description: `cron ${expression} (${tz})`,
      nextAfter: (after) =>
        CronExpressionParser.parse(expression, { tz, currentDate: after }).next().toDate(),
    };
  }
  return { description: 'once', nextAfter: () => undefined };
}

/**
 * cron-parser reads fewer fields than five as a shorter expression (`0 0 1 *` is accepted, and
 * means something else than its writer meant), so the count is checked here: five fields
 * (minute hour day month weekday), six with seconds first, or an alias such as `@daily`.
 */
function checkCronFields(expression: string): void {
  const fields = expression.trim().split(/\s+/).filter(Boolean);
  if (fields.length === 1 && fields[0].startsWith('@')) return;
  if (fields.length === 5 || fields.length === 6) return;
  throw new SluiceError(
    'SLUICE_E_CONFIG',
    `trigger.cron "${expression}" has ${fields.length} field${fields.length === 1 ? '' : 's'}; a cron expression has 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)`,
    { context: { jsonPath: '/trigger/cron', hint: 'e.g. "0 6 * * 1-5" for 06:00 on weekdays, or "@daily"' } },
  );
}

/** Only a zone the runtime knows (IANA, as Intl reads it): cron-parser accepts some others and misreads them. */
function checkTimezone(tz: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new SluiceError('SLUICE_E_CONFIG', `trigger.timezone "${tz}" is not a known IANA timezone`, {
      context: { jsonPath: '/trigger/timezone', hint: 'e.g. "UTC", "Europe/Paris", "America/New_York"' },
    });
  }
}

/**
 * Due times that fell inside a pass which ran past them: they are skipped, not queued, so
 * passes never overlap nor pile up. Returns how many were skipped and the next due time.
 */
export function skipMissed(
  schedule: Schedule,
  due: Date,
  now: Date,
): { skipped: number; next: Date | undefined } {
  let next: Date | undefined = schedule.nextAfter(due);
  let skipped = 0;
  while (next && next.getTime() <= now.getTime()) {
    skipped++;
    next = schedule.nextAfter(next);
    if (skipped > 100_000) break; // a sub-millisecond schedule against a long pass: stop counting
  }
  return { skipped, next };
}
