/**
 * When passes run: once (default), `every: <duration>` or `cron: "<expr>"` (+ `timezone`).
 * A schedule only answers "when is the next pass due after t"; the supervisor owns the loop.
 * `firstPassDue` decides when a version's first pass runs: at start (`run_at_start`) and after
 * a reload.
 */
import { createRequire } from 'node:module';
import { parse } from 'yaml';
import { SluiceError } from '../errors.js';
import { parseDuration } from '../units.js';
import type { TriggerT } from './schema.js';

/**
 * cron-parser (and luxon, which it brings: ~365 KB) is loaded on the first cron trigger, not
 * with this module: most pipelines have none, and every `sluice run` imports this module. A
 * synchronous require keeps `scheduleOf` synchronous for its callers; the CLI bundle leaves
 * cron-parser in node_modules (scripts/build-cli.mjs).
 */
let cronParser: typeof import('cron-parser').CronExpressionParser | undefined;
function cron(): typeof import('cron-parser').CronExpressionParser {
  cronParser ??= (createRequire(import.meta.url)('cron-parser') as typeof import('cron-parser'))
    .CronExpressionParser;
  return cronParser;
}

export interface Schedule {
  /** `once`, `every 15m`, `cron 0 6 * * 1-5 (Europe/Paris)`: for logs and /status. */
  readonly description: string;
  /** The first due time strictly after `after`; undefined for a one-shot trigger. */
  nextAfter(after: Date): Date | undefined;
}

export function scheduleOf(trigger: TriggerT | undefined): Schedule {
  if (trigger?.timezone !== undefined) checkTimezone(trigger.timezone);
  if (trigger?.run_at_start === false && trigger.every === undefined && trigger.cron === undefined)
    throw new SluiceError(
      'SLUICE_E_CONFIG',
      'trigger.run_at_start: false needs `every` or `cron`: without one the pipeline would never run',
      { context: { jsonPath: '/trigger/run_at_start' } },
    );
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
      cron().parse(expression, { tz }).next();
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
      nextAfter: (after) => cron().parse(expression, { tz, currentDate: after }).next().toDate(),
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

/** What a new version knows of the one a reload replaces. */
export interface ReplacedVersion {
  /** Its file text (after `--set`). */
  text: string;
  /** It was running a pass, which the reload drained. */
  running: boolean;
  /** Its next due time, when it was waiting for one. */
  due?: Date;
}

/**
 * When the first pass of a version is due. A one-shot pipeline runs at once. A scheduled one
 * (`every` / `cron`) runs at once when `run_at_start` is true (the default), else at its first
 * due time. After a reload: a pass the reload drained goes on at once; an edit that changes
 * nothing but `description` (or comments and formatting) keeps the replaced version's next due
 * time; any other edit starts the new version as at start.
 */
export function firstPassDue(
  schedule: Schedule,
  trigger: TriggerT | undefined,
  text: string,
  now: Date,
  replaced?: ReplacedVersion,
): Date | undefined {
  if (schedule.nextAfter(now) === undefined || replaced?.running) return now;
  if (replaced?.due && sameButDescription(replaced.text, text)) return replaced.due;
  return trigger?.run_at_start === false ? schedule.nextAfter(now) : now;
}

/** Two pipeline texts that differ at most in `description`, comments and formatting. */
function sameButDescription(a: string, b: string): boolean {
  const content = (text: string) => {
    const doc = parse(text, { merge: true }) as Record<string, unknown> | null;
    if (doc && typeof doc === 'object') delete doc.description;
    return JSON.stringify(doc);
  };
  try {
    return content(a) === content(b);
  } catch {
    return false;
  }
}
