/** The runtime's policies as the pipeline file states them, with their defaults applied. */
import { parseDuration } from '../units.js';
import type { FailedPolicyT, IdentityT, PolicyT, RetryPolicyT } from './schema.js';

/**
 * When an item that failed for good is tried again. `on_change`: only under another identity
 * (the ledger keys records by it, so a new version is a new record); `retry_after`: once
 * `afterMs` has passed since it failed; `every_pass`: always (no parking).
 */
export type FailedPolicy =
  | { mode: 'on_change' }
  | { mode: 'every_pass' }
  | { mode: 'retry_after'; afterMs: number };

export type IdentityMode = IdentityT;

export interface Policy {
  concurrency: number;
  /** `auto` (one per core, once a pass is big enough) or a fixed number; see runtime/pool.ts. */
  threads: 'auto' | number;
  ratePerSecond?: number;
  retry: {
    maxAttempts: number;
    initialDelayMs: number;
    maxDelayMs: number;
    multiplier: number;
    jitter: 'full' | 'none';
  };
  drainTimeoutMs: number;
  failed: FailedPolicy;
}

export function toPolicy(p: PolicyT | undefined): Policy {
  const r: Partial<RetryPolicyT> = p?.retry ?? {};
  return {
    concurrency: p?.concurrency ?? 4,
    threads: p?.threads ?? 'auto',
    ratePerSecond: p?.rate_limit?.per_second,
    retry: {
      maxAttempts: r.max_attempts ?? 3,
      initialDelayMs: parseDuration(r.initial_delay ?? '1s'),
      maxDelayMs: parseDuration(r.max_delay ?? '60s'),
      multiplier: r.multiplier ?? 2,
      jitter: r.jitter ?? 'full',
    },
    drainTimeoutMs: parseDuration(p?.drain_timeout ?? '30s'),
    failed: toFailedPolicy(p?.failed),
  };
}

function toFailedPolicy(f: FailedPolicyT | undefined): FailedPolicy {
  if (f === undefined || f === 'on_change') return { mode: 'on_change' };
  if (f === 'retry_every_pass') return { mode: 'every_pass' };
  return { mode: 'retry_after', afterMs: parseDuration(f.retry_after) };
}
