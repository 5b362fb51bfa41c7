/**
 * A TCP proxy that injects network faults between a client and any server (HTTP, S3, SFTP,
 * an FTP control connection…): reset a connection after N bytes, stall it, slow every chunk.
 * Faults can be limited to every k-th connection and switched on/off while running.
 */

import type { AddressInfo } from 'node:net';
import { connect, createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProxyFaults {
  /** Reset (TCP RST to both peers) a connection once this many counted bytes went through it. */
  resetAfterBytes?: number;
  /** Pause forwarding for this long, once per connection, when `stallAfterBytes` counted bytes passed. */
  stallMs?: number;
  /** Default 0: stall before the first counted byte. */
  stallAfterBytes?: number;
  /** Which bytes count: target→client (`downstream`, default), client→target (`upstream`) or `both`. */
  direction?: 'downstream' | 'upstream' | 'both';
  /** Reset/stall only connections k, 2k, 3k… (1-based); default every connection. */
  everyNthConnection?: number;
  /** Delay each forwarded chunk, in both directions, by this long (faulty connections only). */
  latencyMs?: number;
}

export interface ProxyStats {
  connections: number;
  resets: number;
  stalls: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** Mutable at run time; read on every chunk. */
  faults: ProxyFaults;
  /** Off: forward untouched (counters keep counting connections). */
  enabled: boolean;
  readonly stats: ProxyStats;
  stop(): Promise<void>;
}

const RESET_GRACE_MS = 20;

type Direction = 'upstream' | 'downstream';

interface Connection {
  faulty: boolean;
  counted: number;
  stalled: boolean;
  closed: boolean;
  client: Socket;
  upstream: Socket;
}

export async function startFaultProxy(options: {
  target: { host: string; port: number };
  faults?: ProxyFaults;
  enabled?: boolean;
}): Promise<FaultProxy> {
  const stats: ProxyStats = { connections: 0, resets: 0, stalls: 0 };
  const live = new Set<Socket>();
  const proxy = {
    host: '127.0.0.1',
    port: 0,
    faults: options.faults ?? {},
    enabled: options.enabled ?? true,
    stats,
    stop: async () => {},
  };

  const counts = (direction: Direction) => {
    const counted = proxy.faults.direction ?? 'downstream';
    return counted === 'both' || counted === direction;
  };

  /**
   * Sends the last allowed bytes, then RSTs both peers. The pause in between lets the peer read
   * those bytes first: libuv reports data and RST arriving in one wakeup as a clean EOF.
   */
  const resetAfter = async (conn: Connection, lastBytes: Buffer, to: Socket) => {
    if (conn.closed) return;
    conn.closed = true;
    stats.resets++;
    if (lastBytes.length > 0) await new Promise((resolve) => to.write(lastBytes, resolve));
    await sleep(RESET_GRACE_MS);
    conn.client.resetAndDestroy();
    conn.upstream.resetAndDestroy();
  };

  /** Forwards one chunk, applying the faults; resolves when it may read the next one. */
  const forward = async (
    conn: Connection,
    chunk: Buffer,
    to: Socket,
    direction: Direction,
  ): Promise<void> => {
    const faults = proxy.faults;
    const active = proxy.enabled && conn.faulty;
    if (active && faults.latencyMs) await sleep(faults.latencyMs);
    if (active && counts(direction)) {
      const before = conn.counted;
      conn.counted += chunk.length;
      if (faults.stallMs && !conn.stalled && conn.counted > (faults.stallAfterBytes ?? 0)) {
        conn.stalled = true;
        stats.stalls++;
        await sleep(faults.stallMs);
      }
      if (faults.resetAfterBytes !== undefined && conn.counted >= faults.resetAfterBytes) {
        await resetAfter(conn, chunk.subarray(0, Math.max(0, faults.resetAfterBytes - before)), to);
        return;
      }
    }
    if (conn.closed || to.destroyed) return;
    if (!to.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          to.off('drain', done);
          to.off('close', done);
          resolve();
        };
        to.on('drain', done);
        to.on('close', done);
      });
    }
  };

  const pump = (conn: Connection, from: Socket, to: Socket, direction: Direction) => {
    // One chain per direction keeps chunk order and lets 'end' follow the last delayed chunk.
    let forwarded = Promise.resolve();
    from.on('data', (chunk: Buffer) => {
      from.pause();
      forwarded = forwarded
        .then(() => forward(conn, chunk, to, direction))
        .then(
          () => {
            from.resume();
          },
          () => {
            from.destroy();
          },
        );
    });
    from.on('end', () => {
      forwarded = forwarded.then(() => {
        if (!conn.closed) to.end();
      });
    });
    from.on('close', (hadError) => {
      if (hadError) to.destroy();
    });
    from.on('error', () => {});
  };

  const server = createServer({ allowHalfOpen: true }, (client) => {
    stats.connections++;
    const every = proxy.faults.everyNthConnection;
    const upstream = connect({ host: options.target.host, port: options.target.port, allowHalfOpen: true });
    const conn: Connection = {
      faulty: !every || stats.connections % every === 0,
      counted: 0,
      stalled: false,
      closed: false,
      client,
      upstream,
    };
    live.add(client);
    live.add(upstream);
    client.on('close', () => live.delete(client));
    upstream.on('close', () => live.delete(upstream));
    pump(conn, client, upstream, 'upstream');
    pump(conn, upstream, client, 'downstream');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as AddressInfo).port;
  proxy.stop = async () => {
    for (const socket of live) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return proxy;
}
