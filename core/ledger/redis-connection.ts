/**
 * The Redis connection and key names shared by the Redis ledger and cluster mode. Every key of a
 * pipeline carries the pipeline name as a hash tag (`{name}`), so a pipeline's queue, ledger and
 * lock live in one Redis Cluster slot and pipelines spread over shards.
 */
import { Redis } from 'ioredis';

/**
 * A connection that waits through Redis restarts instead of failing commands (BullMQ requires
 * `maxRetriesPerRequest: null`; the ledger wants the same: a write is delayed, never lost).
 */
export function connectRedis(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
  // ioredis logs unhandled connection errors itself; reconnects are automatic.
  redis.on('error', () => undefined);
  return redis;
}

/** `sluice:{pipeline}:part…` — a key of one pipeline. */
export function pipelineKey(pipeline: string, ...parts: string[]): string {
  return ['sluice', `{${pipeline}}`, ...parts].join(':');
}
