/**
 * Distributed ledger: one Redis hash per item version, plus a per-pipeline sorted set of
 * recent changes for `sluice history`. Writes are sent at once (ioredis pipelines them) and
 * `flush()` waits for their replies, so a record is durable in Redis before the runtime touches
 * the source (after_success) — a worker killed right after still leaves a `committed` record
 * for the worker that takes its job over.
 */
import { createHash } from 'node:crypto';
import type { Redis, Result } from 'ioredis';

import { SluiceError } from '../errors.js';
import type { ItemIdentity } from '../plugin-api.js';
import {
  type Ledger,
  type LedgerRecord,
  type LedgerState,
  type LedgerUpdate,
  STATE_RANK,
  stateRank,
} from './ledger.js';
import { connectRedis, pipelineKey } from './redis-connection.js';

/** History keeps this many recent items per pipeline (item records themselves are kept). */
const RECENT_KEEP = 100_000;
const TRIM_EVERY = 1000;

/**
 * One item's state change, applied in Redis so that it is atomic and needs no read first: an
 * update ranking below the stored state is dropped (see Ledger.record). KEYS: item hash,
 * recent set, name marker, content marker (both point at the item hash once it is finalized:
 * `identity: name` and `content` look them up). ARGV: state, its rank, attempts, updatedAt, pipeline, source, path, version,
 * destinations ('' keeps the stored ones), has-error flag, error, TTL seconds (0: none), how
 * many recent entries to keep (0: no trim this time), sha256 of the bytes ('' keeps the stored one).
 */
const RECORD = `
local rank = { ${Object.entries(STATE_RANK)
  .map(([state, rank]) => `${state} = ${rank}`)
  .join(', ')} }
if ARGV[13] ~= '0' then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[13]) - 1) end
local stored = redis.call('HGET', KEYS[1], 'state')
if stored and (rank[stored] or 0) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'pipeline', ARGV[5], 'source', ARGV[6], 'path', ARGV[7], 'version', ARGV[8],
  'state', ARGV[1], 'attempts', ARGV[3], 'updatedAt', ARGV[4])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'destinations', ARGV[9]) end
if ARGV[10] == '1' then redis.call('HSET', KEYS[1], 'error', ARGV[11]) else redis.call('HDEL', KEYS[1], 'error') end
if ARGV[14] ~= '' then redis.call('HSET', KEYS[1], 'content', ARGV[14]) end
if ARGV[12] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[12]) end
if ARGV[1] == 'finalized' then
  redis.call('SET', KEYS[3], KEYS[1])
  if ARGV[12] ~= '0' then redis.call('EXPIRE', KEYS[3], ARGV[12]) end
  if ARGV[14] ~= '' then
    redis.call('SET', KEYS[4], KEYS[1])
    if ARGV[12] ~= '0' then redis.call('EXPIRE', KEYS[4], ARGV[12]) end
  end
end
redis.call('ZADD', KEYS[2], ARGV[4], KEYS[1])
return 1`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    sluiceLedgerRecord(
      itemKey: string,
      recentKey: string,
      nameKey: string,
      contentKey: string,
      ...args: Array<string | number>
    ): Result<number, Context>;
  }
}

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
  ) {
    // ioredis sends the script by its SHA and loads it on NOSCRIPT (a restarted Redis).
    redis.defineCommand('sluiceLedgerRecord', { numberOfKeys: 4, lua: RECORD });
  }

  static connect(url: string, options: RedisLedgerOptions = {}): RedisLedger {
    return new RedisLedger(connectRedis(url), { ...options, ownsConnection: true });
  }

  private itemKey(pipeline: string, id: ItemIdentity): string {
    return pipelineKey(pipeline, 'ledger', itemHash(id));
  }

  private nameKey(pipeline: string, source: string, path: string): string {
    return pipelineKey(pipeline, 'ledger-name', itemHash({ source, path, version: '' }));
  }

  /**
   * Through the marker the record script sets when an item is finalized: records written before
   * the markers existed are not found (documented: switching identity on an older Redis ledger
   * redoes its items once).
   */
  async doneByName(pipeline: string, source: string, path: string): Promise<LedgerRecord | undefined> {
    return this.viaMarker(this.nameKey(pipeline, source, path));
  }

  async doneByContent(pipeline: string, sha256: string): Promise<LedgerRecord | undefined> {
    return this.viaMarker(pipelineKey(pipeline, 'ledger-content', sha256));
  }

  /**
   * Redis records expire by the ledger's TTL (cluster timing `ledgerTtlSeconds`), whatever their
   * state; `state.retention` is not applied there (docs/reliability.md).
   */
  async prune(): Promise<number> {
    return 0;
  }

  private async viaMarker(marker: string): Promise<LedgerRecord | undefined> {
    await this.flush();
    try {
      const key = await this.redis.get(marker);
      if (!key) return undefined;
      const fields = await this.redis.hgetall(key);
      return fields.state === 'finalized' ? fromFields(fields) : undefined;
    } catch (err) {
      throw ledgerError('read', err);
    }
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
    const now = Date.now();
    const trim = ++this.writes % TRIM_EVERY === 0 ? RECENT_KEEP : 0;
    const write = this.redis
      .sluiceLedgerRecord(
        this.itemKey(pipeline, id),
        pipelineKey(pipeline, 'ledger-recent'),
        this.nameKey(pipeline, id.source, id.path),
        pipelineKey(pipeline, 'ledger-content', update.content ?? 'none'),
        update.state,
        stateRank(update.state),
        String(update.attempts ?? 0),
        String(now),
        pipeline,
        id.source,
        id.path,
        id.version,
        // Like the SQLite ledger: a later record without destinations keeps the earlier ones.
        update.destinations?.length ? JSON.stringify(update.destinations) : '',
        update.error === undefined ? '0' : '1',
        update.error ?? '',
        this.options.ttlSeconds ?? 0,
        trim,
        update.content ?? '',
      )
      .then(
        () => undefined,
        (err: unknown) => {
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

  async history(
    pipeline: string,
    options: { limit?: number; state?: LedgerState } = {},
  ): Promise<LedgerRecord[]> {
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
  return createHash('sha256')
    .update(`${id.source}\u0000${id.path}\u0000${id.version}`)
    .digest('hex')
    .slice(0, 32);
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
    content: f.content,
    updatedAt: new Date(Number(f.updatedAt)),
  };
}

function ledgerError(what: 'read' | 'write', err: unknown): SluiceError {
  return new SluiceError(
    'SLUICE_E_LEDGER',
    `cannot ${what} the Redis ledger: ${(err as Error)?.message ?? err}`,
    { cause: err },
  );
}
