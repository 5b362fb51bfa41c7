/**
 * The lister election: a Redis key set with NX and a TTL, renewed by its holder every third of
 * the TTL. A holder that dies stops renewing, so the key expires and a waiting process takes
 * over within one TTL. Renew and release compare the holder's token (Lua), so a process that
 * lost the lock never extends or deletes another holder's.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { sleep } from '../runtime/timing.js';

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export class ListerLock {
  readonly token = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private renewTimer: NodeJS.Timeout | undefined;
  private held = false;
  /** Aborted when the lock is lost (not renewed in time): the holder must stop listing. */
  private lost = new AbortController();

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly ttlMs: number,
  ) {}

  get signal(): AbortSignal {
    return this.lost.signal;
  }

  /** Who holds the lock now (for logs), if anyone. */
  holder(): Promise<string | null> {
    return this.redis.get(this.key);
  }

  async tryAcquire(): Promise<boolean> {
    const ok = await this.redis.set(this.key, this.token, 'PX', this.ttlMs, 'NX');
    if (ok !== 'OK') return false;
    this.held = true;
    this.lost = new AbortController();
    this.renewTimer = setInterval(() => void this.renew(), Math.max(50, Math.floor(this.ttlMs / 3)));
    return true;
  }

  /** Waits until this process holds the lock (or `signal` aborts: then false). */
  async acquire(signal?: AbortSignal, onWait?: (holder: string | null) => void): Promise<boolean> {
    let told = false;
    while (!signal?.aborted) {
      if (await this.tryAcquire()) return true;
      if (!told) {
        onWait?.(await this.holder());
        told = true;
      }
      await sleep(Math.max(50, Math.floor(this.ttlMs / 10)), signal).catch(() => undefined);
    }
    return false;
  }

  private async renew(): Promise<void> {
    if (!this.held) return;
    try {
      const renewed = await this.redis.eval(RENEW, 1, this.key, this.token, this.ttlMs);
      if (renewed === 0) this.markLost();
    } catch {
      // Redis unreachable: keep trying; if the key expires meanwhile the next renew says so.
    }
  }

  private markLost(): void {
    this.held = false;
    clearInterval(this.renewTimer);
    this.lost.abort(new Error('the lister lock was lost'));
  }

  async release(): Promise<void> {
    clearInterval(this.renewTimer);
    if (!this.held) return;
    this.held = false;
    await this.redis.eval(RELEASE, 1, this.key, this.token).catch(() => undefined);
  }
}
