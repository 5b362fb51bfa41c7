import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, startFaultProxy } from '../servers/fault-proxy.js';

interface Exchange {
  received: Buffer;
  error?: NodeJS.ErrnoException;
  elapsedMs: number;
}

/** Sends `payload`, half-closes, and collects everything until the connection closes. */
function exchange(port: number, payload: Buffer): Promise<Exchange> {
  const started = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: NodeJS.ErrnoException | undefined;
    const socket = connect({ host: '127.0.0.1', port }, () => socket.end(payload));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (err) => {
      error = err;
    });
    socket.on('close', () =>
      resolve({ received: Buffer.concat(chunks), error, elapsedMs: performance.now() - started }),
    );
  });
}

describe('fault proxy (in front of a TCP echo server)', () => {
  let echo: Server;
  let proxy: FaultProxy;

  beforeAll(async () => {
    echo = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {});
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    proxy = await startFaultProxy({
      target: { host: '127.0.0.1', port: (echo.address() as AddressInfo).port },
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await new Promise((resolve) => echo?.close(resolve));
  });

  it('forwards bytes unchanged both ways when faults are off', async () => {
    proxy.faults = { resetAfterBytes: 10 };
    proxy.enabled = false;
    const payload = randomBytes(2 * 1024 * 1024);
    const before = proxy.stats.connections;
    const result = await exchange(proxy.port, payload);
    expect(result.error).toBeUndefined();
    expect(result.received.equals(payload)).toBe(true);
    expect(proxy.stats.connections).toBe(before + 1);
    proxy.enabled = true;
  });

  it('resets a connection after N downstream bytes', async () => {
    proxy.faults = { resetAfterBytes: 10_000 };
    const resetsBefore = proxy.stats.resets;
    const result = await exchange(proxy.port, randomBytes(200_000));
    expect(result.error?.code).toBe('ECONNRESET');
    expect(result.received.length).toBeLessThanOrEqual(10_000);
    expect(proxy.stats.resets).toBe(resetsBefore + 1);
  });

  it('counts upstream bytes when asked', async () => {
    proxy.faults = { resetAfterBytes: 1000, direction: 'upstream' };
    const result = await exchange(proxy.port, randomBytes(50_000));
    expect(result.error?.code).toBe('ECONNRESET');
    expect(result.received.length).toBeLessThanOrEqual(1000);
  });

  it('faults only every k-th connection', async () => {
    const payload = randomBytes(64 * 1024);
    const outcomes: boolean[] = [];
    // Connection numbers are global: align on the next multiple of 2 first.
    proxy.faults = { resetAfterBytes: 100, everyNthConnection: 2 };
    if (proxy.stats.connections % 2 === 0) await exchange(proxy.port, payload);
    for (let i = 0; i < 4; i++) {
      const result = await exchange(proxy.port, payload);
      outcomes.push(result.error === undefined && result.received.equals(payload));
    }
    expect(outcomes).toEqual([false, true, false, true]);
  });

  it('stalls a connection once, then carries on', async () => {
    proxy.faults = { stallMs: 400, stallAfterBytes: 10 };
    const stallsBefore = proxy.stats.stalls;
    const payload = randomBytes(100_000);
    const result = await exchange(proxy.port, payload);
    expect(result.error).toBeUndefined();
    expect(result.received.equals(payload)).toBe(true);
    expect(result.elapsedMs).toBeGreaterThanOrEqual(390);
    expect(proxy.stats.stalls).toBe(stallsBefore + 1);
  });

  it('adds latency per chunk in both directions', async () => {
    proxy.faults = { latencyMs: 150 };
    const result = await exchange(proxy.port, Buffer.from('ping'));
    expect(result.received.toString()).toBe('ping');
    // one chunk up, one chunk down
    expect(result.elapsedMs).toBeGreaterThanOrEqual(290);
    proxy.faults = {};
    const fast = await exchange(proxy.port, Buffer.from('ping'));
    expect(fast.elapsedMs).toBeLessThan(150);
  });
});
