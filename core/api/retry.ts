/**
 * `POST /api/pipelines/{name}/retry`: replays parked items as `sluice retry` does — their
 * `failed` records re-opened in the pipeline's ledger (ledger/reopen.ts), then a run queued
 * exactly like `POST …/runs` (same queue, run record and events), whose pass takes them.
 *
 * Embedded mode only: the ledger is the one the supervisor's current version holds open. In
 * cluster mode the records are in Redis and the passes run on workers; the route answers 409
 * and points to `sluice retry --cluster`, rather than opening a second Redis connection from
 * the status server.
 */
import { errorMessage, SluiceError } from '../errors.js';
import { NothingParkedError, reopenParked } from '../ledger/reopen.js';
import type { PipelineSupervisor } from '../runtime/supervisor.js';
import { HttpError } from './http-error.js';

export type RetryWhich = { paths: string[] } | { all: true };

/** `{"paths": ["in/a.csv", "local:b.csv"]}` or `{"all": true}`, nothing else. */
export function parseRetryBody(body: unknown): RetryWhich {
  const shape = 'the request body must be {"paths": ["<path>", …]} or {"all": true}';
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, shape);
  const { paths, all, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    throw new HttpError(400, `unknown key(s) in the request body: ${unknown.join(', ')} (known: paths, all)`);
  if (all !== undefined && paths !== undefined)
    throw new HttpError(400, 'give either "paths" or "all", not both');
  if (all !== undefined) {
    if (all !== true) throw new HttpError(400, '"all" must be true (or give "paths")');
    return { all: true };
  }
  if (!Array.isArray(paths) || paths.length === 0) throw new HttpError(400, shape);
  for (const p of paths)
    if (typeof p !== 'string' || p === '')
      throw new HttpError(400, `"paths" must hold non-empty strings, got ${JSON.stringify(p)}`);
  return { paths: paths as string[] };
}

/** Re-opens the parked records named; returns them as `source:path`. */
export async function reopenForRetry(supervisor: PipelineSupervisor, which: RetryWhich): Promise<string[]> {
  const name = supervisor.name;
  const ledger = supervisor.ledger;
  if (ledger === 'cluster')
    throw new HttpError(
      409,
      `pipeline "${name}" runs its passes on cluster workers (--cluster): its parked items are in the Redis ledger; replay them with \`sluice retry <file> --cluster <url>\``,
    );
  if (!ledger || !supervisor.definition)
    throw new HttpError(
      409,
      `pipeline "${name}" has no running version with an open ledger (${supervisor.state}); try again once it runs`,
    );
  // Checked before re-opening: a run would be refused (409), leaving records re-opened for nothing.
  if (supervisor.definition.sources.some((s) => s.config.watch === true))
    throw new HttpError(
      409,
      `pipeline "${name}" watches its source: its pass never ends, so a retry run would never start (nothing was re-opened)`,
    );
  try {
    const reopened = await reopenParked(ledger, supervisor.definition.name, which);
    return reopened.map((r) => `${r.source}:${r.path}`);
  } catch (err) {
    if (err instanceof NothingParkedError) throw new HttpError(400, err.message, err.missing);
    // A dry run's ledger is read-only: it says so.
    if (err instanceof SluiceError) throw new HttpError(409, errorMessage(err));
    throw err;
  }
}
