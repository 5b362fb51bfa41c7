/**
 * Distributed ledger: one Redis hash per item version, plus a per-pipeline sorted set of
 * recent changes for `sluice history`. Writes are sent at once (ioredis pipelines them) and
 * `flush()` waits for their replies, so a record is durable in Redis before the runtime touches
 * the source (after_success) — a worker killed right after still leaves a `committed` record
 * for the worker that takes its job over.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { connectRedis, pipelineKey } from '../cluster/connection.js';
import { SluiceError } from '../errors.js';
import type { ItemIdentity } from '../plugin-api.js';
import type { Ledger, LedgerRecord, LedgerState, LedgerUpdate } from './ledger.js';

/** History keeps this many recent items per pipeline (item records themselves are kept). */
const RECENT_KEEP = 100_000;
const TRIM_EVERY = 1000;

export interface RedisLedgerOptions {
  /** Expire item records this long after their last change (default: keep). */
  ttlSeconds?: number;
}

export class RedisLedger implements Ledger {
  readonly flushBeforeSourceChange = true;
  private readonly inflight = new Set<Promise<unknown>>();
  private failure: unknown;
  private writes = 0;

  constructor(
    private readonly redis: Redis,
    private readonly options: RedisLedgerOptions & { ownsConnection?: boolean } = {},
  ) {}

  static connect(url: string, options: RedisLedgerOptions = {}): RedisLedger {
    return new RedisLedger(connectRedis(url), { ...options, ownsConnection: true });
  }

  private itemKey(pipeline: string, id: ItemIdentity): string {
    return pipelineKey(pipeline, 'ledger', itemHash(id));
  }

  async get(pipeline: string, id: ItemIdentity): Promise<LedgerRecord | undefined> {
    try {
      const fields = await this.redis.hgetall(this.itemKey(pipeline, id));
      return fields.state ? fromFields(fields) : undefined;
    } catch (err) {
      throw ledgerError('read', err);
    }
  }

  record(pipeline: string, id: ItemIdentity, update: LedgerUpdate): void {
    const key = this.itemKey(pipeline, id);
    const now = Date.now();
    const fields: Record<string, string> = {
      pipeline,
      source: id.source,
      path: id.path,
      version: id.version,
      state: update.state,
      attempts: String(update.attempts ?? 0),
      updatedAt: String(now),
    };
    // Like the SQLite ledger: a later record without destinations keeps the earlier ones.
    if (update.destinations?.length) fields.destinations = JSON.stringify(update.destinations);
    if (update.error !== undefined) fields.error = update.error;
    const tx = this.redis.multi().hset(key, fields);
    if (update.error === undefined) tx.hdel(key, 'error');
    if (this.options.ttlSeconds) tx.expire(key, this.options.ttlSeconds);
    const recent = pipelineKey(pipeline, 'ledger-recent');
    tx.zadd(recent, now, key);
    if (++this.writes % TRIM_EVERY === 0) tx.zremrangebyrank(recent, 0, -RECENT_KEEP - 1);
    const write = tx.exec().then(
      (replies) => {
        const failed = replies?.find(([err]) => err);
        if (failed) this.failure ??= failed[0];
      },
      (err) => {
        this.failure ??= err;
      },
    );
    this.inflight.add(write);
    void write.finally(() => this.inflight.delete(write));
  }

  async flush(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
    if (this.failure) {
      const err = this.failure;
      this.failure = undefined;
      throw ledgerError('write', err);
    }
  }

  async history(pipeline: string, options: { limit?: number; state?: LedgerState } = {}): Promise<LedgerRecord[]> {
    await this.flush();
    const limit = options.limit ?? 50;
    const recent = pipelineKey(pipeline, 'ledger-recent');
    const out: LedgerRecord[] = [];
    const page = Math.max(limit, 200);
    for (let start = 0; out.length < limit; start += page) {
      const keys = await this.redis.zrevrange(recent, start, start + page - 1);
      if (keys.length === 0) break;
      const batch = this.redis.pipeline();
      for (const k of keys) batch.hgetall(k);
      for (const [err, fields] of (await batch.exec()) ?? []) {
        if (err) throw ledgerError('read', err);
        const f = fields as Record<string, string>;
        if (!f.state || (options.state && f.state !== options.state)) continue;
        out.push(fromFields(f));
        if (out.length === limit) break;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      if (this.options.ownsConnection) await this.redis.quit().catch(() => this.redis.disconnect());
    }
  }
}

function itemHash(id: ItemIdentity): string {
  return createHash('sha256').update(`${id.source}\u0000${id.path}\u0000${id.version}`).digest('hex').slice(0, 32);
}

function fromFields(f: Record<string, string>): LedgerRecord {
  return {
    pipeline: f.pipeline,
    source: f.source,
    path: f.path,
    version: f.version,
    state: f.state as LedgerState,
    attempts: Number(f.attempts ?? 0),
    destinations: f.destinations ? (JSON.parse(f.destinations) as string[]) : [],
    error: f.error,
    updatedAt: new Date(Number(f.updatedAt)),
  };
}

function ledgerError(what: 'read' | 'write', err: unknown): SluiceError {
  return new SluiceError('SLUICE_E_LEDGER', `cannot ${what} the Redis ledger: ${(err as Error)?.message ?? err}`, { cause: err });
}
