/**
 * A small pool of connections to one server. SFTP and FTP clients hold one session each and
 * FTP can run only one transfer per control connection, so concurrency across items means
 * borrowing separate connections. A connection that broke is discarded; the next borrow makes
 * a fresh one, which is how the connectors reconnect after a drop.
 */

export interface PooledConnection {
  /** False once the transport closed or errored: the pool then discards it. */
  readonly alive: boolean;
  /** Cheap round trip sent to idle connections so servers and NAT boxes keep them open. */
  keepalive?(): Promise<void>;
  close(): Promise<void>;
}

export interface PoolOptions<C extends PooledConnection> {
  connect: () => Promise<C>;
  maxConnections: number;
  /** True for errors that mean the connection itself is gone (reset, closed, timed out). */
  isConnectionLost: (err: unknown) => boolean;
  /** Interval of keepalive round trips on idle connections; 0 disables them. */
  keepaliveMs?: number;
}

export class ConnectionPool<C extends PooledConnection> {
  private readonly idle: C[] = [];
  private readonly waiters: Array<() => void> = [];
  private open = 0;
  private closed = false;
  private readonly keepaliveTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: PoolOptions<C>) {
    const every = options.keepaliveMs ?? 0;
    if (every > 0) {
      // Past 2^31-1 ms a Node timer fires after 1 ms: `keepalive_interval: 30d` would flood the server.
      this.keepaliveTimer = setInterval(() => void this.pingIdle(), Math.min(every, 2 ** 31 - 1));
      this.keepaliveTimer.unref();
    }
  }

  /** Connections currently open (idle or borrowed). */
  get size(): number {
    return this.open;
  }

  /**
   * Borrows a connection: an idle live one, a new one while under the limit, or waits for a
   * release. `fresh` says whether it was just made (a failure on a reused one may be staleness).
   */
  async acquire(signal?: AbortSignal): Promise<{ connection: C; fresh: boolean }> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.closed) throw new Error('connection pool is closed');
      const reused = this.takeIdle();
      if (reused) return { connection: reused, fresh: false };
      if (this.open < this.options.maxConnections) {
        this.open++;
        try {
          return { connection: await this.options.connect(), fresh: true };
        } catch (err) {
          this.open--;
          this.wakeOne();
          throw err;
        }
      }
      await this.waitForRelease(signal);
    }
  }

  /** Returns a borrowed connection; a broken one is closed and frees its slot. */
  release(connection: C, broken = false): void {
    if (broken || !connection.alive || this.closed) {
      this.open--;
      void connection.close().catch(() => {});
    } else {
      this.idle.push(connection);
    }
    this.wakeOne();
  }

  /** Returns a connection after a task that ended with `err` (if any): lost connections are dropped. */
  releaseAfter(connection: C, err?: unknown): void {
    this.release(connection, err !== undefined && this.isLost(connection, err));
  }

  /**
   * Runs `task` on a borrowed connection. When a reused connection turns out to be dead (the
   * server dropped it while idle), the task runs once more on a fresh one: callers pass only
   * tasks that are safe to repeat (no consumed input streams).
   */
  async use<T>(task: (connection: C) => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const { connection, fresh } = await this.acquire(signal);
      try {
        const result = await task(connection);
        this.release(connection);
        return result;
      } catch (err) {
        const lost = this.isLost(connection, err);
        this.release(connection, lost);
        if (!(lost && !fresh && attempt === 0)) throw err;
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    const idle = this.idle.splice(0);
    this.open -= idle.length;
    await Promise.allSettled(idle.map((c) => c.close()));
    for (const wake of this.waiters.splice(0)) wake();
  }

  private isLost(connection: C, err: unknown): boolean {
    return !connection.alive || this.options.isConnectionLost(err);
  }

  private takeIdle(): C | undefined {
    for (let c = this.idle.pop(); c; c = this.idle.pop()) {
      if (c.alive) return c;
      this.open--;
      void c.close().catch(() => {});
    }
    return undefined;
  }

  private wakeOne(): void {
    this.waiters.shift()?.();
  }

  private waitForRelease(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(wake);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal?.reason);
      };
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.waiters.push(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async pingIdle(): Promise<void> {
    // Take the idle ones out while pinging so nobody borrows a connection mid-keepalive.
    const batch = this.idle.splice(0);
    await Promise.all(
      batch.map(async (c) => {
        let broken = false;
        try {
          await c.keepalive?.();
        } catch {
          broken = true;
        }
        this.release(c, broken);
      }),
    );
  }
}
