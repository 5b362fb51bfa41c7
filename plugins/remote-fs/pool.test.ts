import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConnectionPool, type PooledConnection } from './pool.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('ConnectionPool keepalive', () => {
  const idleConnection = () => {
    const connection: PooledConnection & { pings: number } = {
      alive: true,
      pings: 0,
      async keepalive() {
        connection.pings++;
      },
      async close() {},
    };
    return connection;
  };

  it('pings idle connections every keepalive interval', async () => {
    vi.useFakeTimers();
    const connection = idleConnection();
    const pool = new ConnectionPool({
      connect: async () => connection,
      maxConnections: 1,
      isConnectionLost: () => false,
      keepaliveMs: 60_000,
    });
    pool.release((await pool.acquire()).connection);
    await vi.advanceTimersByTimeAsync(180_000);
    expect(connection.pings).toBe(3);
    await pool.close();
  });

  it('an interval longer than a timer can take (30d) does not turn into a ping every millisecond', async () => {
    vi.useFakeTimers();
    const connection = idleConnection();
    const pool = new ConnectionPool({
      connect: async () => connection,
      maxConnections: 1,
      isConnectionLost: () => false,
      keepaliveMs: 30 * 24 * 3600 * 1000,
    });
    pool.release((await pool.acquire()).connection);
    await vi.advanceTimersByTimeAsync(1000);
    expect(connection.pings).toBe(0);
    await pool.close();
  });
});
