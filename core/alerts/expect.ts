/**
 * Expected arrivals: `expect: {files: 1, by: "06:00", timezone: Europe/Paris, days: [mon-fri]}`
 * as a schedule of deadlines, and the count of files delivered since the previous one.
 *
 * A deadline counts the files delivered (finalized) since the previous deadline, or since the
 * pipeline started when there was none in this process: a nightly file that lands at 23:50 counts
 * for 06:00, and one that lands at 06:01 counts for the next day. What a process did not see (it
 * was started after the file came) is not counted: the ledger is not asked.
 */

import type { ExpectT } from '../config/schema.js';
import { scheduleOf } from '../config/trigger.js';

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/** The cron expression of the deadlines (`0 0 6 * * 1-5`), seconds first. */
export function deadlineCron(expect: ExpectT): string {
  const [h, m, s = '0'] = expect.by.split(':');
  const days = (expect.days ?? ['sun-sat'])
    .map((d) =>
      d
        .split('-')
        .map((day) => DAYS.indexOf(day))
        .join('-'),
    )
    .join(',');
  return `${Number(s)} ${Number(m)} ${Number(h)} * * ${days}`;
}

/** The deadlines of `expect`; throws a config error for an unknown timezone. */
export function deadlines(expect: ExpectT): { description: string; nextAfter(after: Date): Date } {
  const schedule = scheduleOf({ cron: deadlineCron(expect), timezone: expect.timezone ?? 'UTC' });
  return {
    description: `${expect.files ?? 1} file(s) by ${expect.by} (${expect.timezone ?? 'UTC'}${expect.days ? `, ${expect.days.join(',')}` : ''})`,
    nextAfter: (after) => schedule.nextAfter(after) as Date,
  };
}

/** Files delivered, counted between deadlines. */
export class ArrivalWindow {
  private delivered = 0;
  since = new Date();

  add(files: number): void {
    this.delivered += files;
  }

  /** Closes the window at `deadline`: the count, and a new window from there. */
  close(deadline: Date): { delivered: number; since: Date } {
    const closed = { delivered: this.delivered, since: this.since };
    this.delivered = 0;
    this.since = deadline;
    return closed;
  }
}
