/**
 * A run asked for through the control API, in cluster mode. The process that accepted the run
 * lists it (under the pipeline's lister lock, like any pass) and tags each job it enqueues with
 * the run id (`ItemJobData.run`). Outcomes come back the way every pass gets them (the job's
 * return value in its BullMQ hash); what only a worker sees while an item runs — it started,
 * it is retried and why — goes to a per-run stream:
 *
 *   sluice:{pipeline}:run:<id>:events   XADD by the workers (MAXLEN ~10,000, expires after a day)
 *                                        XRANGE by the lister of the run, deleted when it ends
 *
 * So `GET /api/runs/{id}` and `/events` on the accepting node show every worker's items.
 */
import type { Redis } from 'ioredis';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { redact } from '../observe/redact.js';
import type { PipelineRunner } from '../runtime/runner.js';
import { pipelineKey } from './connection.js';

/** Stream entries kept per run: a late reader loses the oldest, never memory. */
const MAX_EVENTS = 10_000;
/** A stream nobody reads any more (its lister died) goes away by itself. */
const EVENTS_TTL_SECONDS = 24 * 3600;
const READ_BATCH = 1000;

export type RunItemEvent =
  | { type: 'started'; job: string; source: string; path: string; size?: number }
  | { type: 'retry'; job: string; source: string; path: string; attempt: number; error: string };

export function runEventsKey(pipeline: string, run: string): string {
  return pipelineKey(pipeline, 'run', run, 'events');
}

/**
 * The worker's side: reports the items of runs to their streams. One per pipeline; the jobs
 * running now are known by item (the runner's events name source and path, not the job).
 */
export class RunEventReporter {
  private readonly active = new Map<string, { run: string; job: string }>();
  private readonly watched = new WeakSet<PipelineRunner>();
  private warned = false;

  constructor(
    private readonly redis: Redis,
    private readonly pipeline: string,
    private readonly log: Logger,
  ) {}

  /** Follows the item events of a runner this worker made for the pipeline. */
  watch(runner: PipelineRunner): void {
    if (this.watched.has(runner)) return;
    this.watched.add(runner);
    runner.on('item:start', (e) => {
      const at = this.active.get(itemKey(e.source, e.path));
      if (at) this.add(at.run, { type: 'started', job: at.job, ...e });
    });
    runner.on('item:retry', (e) => {
      const at = this.active.get(itemKey(e.source, e.path));
      if (at)
        this.add(at.run, {
          type: 'retry',
          job: at.job,
          source: e.source,
          path: e.path,
          attempt: e.attempt,
          error: e.error,
        });
    });
  }

  /** The job of `run` runs item source:path here until the returned function is called. */
  running(run: string | undefined, job: string, source: string, path: string): () => void {
    if (!run) return () => undefined;
    const key = itemKey(source, path);
    this.active.set(key, { run, job });
    return () => {
      if (this.active.get(key)?.job === job) this.active.delete(key);
    };
  }

  private add(run: string, event: RunItemEvent): void {
    const key = runEventsKey(this.pipeline, run);
    const text = JSON.stringify(event.type === 'retry' ? { ...event, error: redact(event.error) } : event);
    // Progress only: an item never waits for it, nor fails because Redis refused it.
    this.redis
      .multi()
      .xadd(key, 'MAXLEN', '~', MAX_EVENTS, '*', 'e', text)
      .expire(key, EVENTS_TTL_SECONDS)
      .exec()
      .catch((err) => {
        if (this.warned) return;
        this.warned = true;
        this.log.warn(
          { pipeline: this.pipeline, run, err: errorMessage(err) },
          'cannot report item events of an API run (its progress misses them)',
        );
      });
  }
}

const itemKey = (source: string, path: string) => `${source}\u0000${path}`;

/** The lister's side: the events of a run after stream id `after`, and the id to read from next. */
export async function readRunEvents(
  redis: Redis,
  key: string,
  after: string,
): Promise<{ events: RunItemEvent[]; last: string }> {
  const events: RunItemEvent[] = [];
  let last = after;
  for (;;) {
    const entries = await redis.xrange(key, `(${last}`, '+', 'COUNT', READ_BATCH);
    for (const [id, fields] of entries) {
      last = id;
      const at = fields.indexOf('e');
      if (at < 0) continue;
      try {
        events.push(JSON.parse(fields[at + 1]) as RunItemEvent);
      } catch {
        // not ours: skipped
      }
    }
    if (entries.length < READ_BATCH) return { events, last };
  }
}
