/**
 * Redis connections and key names of cluster mode (the connection and pipeline keys it shares
 * with the Redis ledger live in core/ledger/redis-connection.ts). Every key of a pipeline carries the
 * pipeline name as a hash tag (`{name}`), so a pipeline's queue, ledger and lock live in one
 * Redis Cluster slot and pipelines spread over shards.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SluiceError } from '../errors.js';
import type { ItemIdentity } from '../plugin-api.js';
import { redactUrl } from './url.js';

export { connectRedis, pipelineKey } from '../ledger/redis-connection.js';

/** BullMQ key prefix: jobs live at `sluice:{pipeline}:<job id>`. */
export const QUEUE_PREFIX = 'sluice';

/**
 * Waits until the first connection is up. Later outages are waited through (see connectRedis), but
 * a Redis that was never reachable is a mistake to report, not to wait on forever.
 */
export async function ensureReachable(
  redis: Redis,
  url: string,
  timeoutMs = Number(process.env.SLUICE_CLUSTER_CONNECT_MS) || 10_000,
): Promise<void> {
  if (redis.status === 'ready') return;
  const ready = new Promise<boolean>((resolve) => redis.once('ready', () => resolve(true)));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const ok = await Promise.race([ready, timedOut]);
  clearTimeout(timer);
  if (!ok) {
    redis.disconnect();
    throw new SluiceError(
      'SLUICE_E_USAGE',
      `cannot reach Redis at ${redactUrl(url)} within ${Math.round(timeoutMs / 1000)}s`,
      {
        context: { hint: 'check --cluster / SLUICE_CLUSTER, and that redis-server is running' },
      },
    );
  }
}

/** The BullMQ queue of a pipeline (the braces make it a Redis Cluster hash tag). */
export function queueName(pipeline: string): string {
  return `{${pipeline}}`;
}

/**
 * The job id of an item: duplicate listings collapse into one job, whatever pipeline version
 * listed them. An item still queued (or running) under an older version is therefore not
 * planned a second time by a newer one: it finishes under the version it was listed with, and
 * no item is ever in flight twice. A finished job is replaced by the next listing (see run.ts).
 */
export function jobId(pipeline: string, id: ItemIdentity): string {
  return createHash('sha256')
    .update(`${pipeline}\u0000${id.source}\u0000${id.path}\u0000${id.version}`)
    .digest('hex')
    .slice(0, 32);
}

/** Tuning through the environment (documented in docs/scale-out.md). */
export function clusterTiming(env: NodeJS.ProcessEnv = process.env) {
  const num = (name: string, fallback: number) => {
    const v = Number(env[name]);
    return Number.isFinite(v) && v > 0 ? v : fallback;
  };
  return {
    /** How long a job stays locked to a silent worker before another takes it over. */
    stallMs: num('SLUICE_CLUSTER_STALL_MS', 30_000),
    /** A job whose workers died this many times is failed (ledger, on_error): a poison item. */
    maxStalls: num('SLUICE_CLUSTER_MAX_STALLS', 5),
    /** Lister lock lifetime without renewal (renewed every third of it). */
    listerTtlMs: num('SLUICE_CLUSTER_LISTER_TTL_MS', 15_000),
    /** How often `run --cluster` checks its pass's jobs. */
    pollMs: num('SLUICE_CLUSTER_POLL_MS', 500),
    /** Ledger records expire this long after their last change (unset: kept). */
    ledgerTtlSeconds: env.SLUICE_LEDGER_TTL_DAYS
      ? num('SLUICE_LEDGER_TTL_DAYS', 0) * 86_400 || undefined
      : undefined,
  };
}
