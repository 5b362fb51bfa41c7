import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { pipelinedRead, type SftpFileOps } from './pipelined-read.js';

/**
 * An in-memory SFTP session for the stream's own logic: answers out of order after random
 * delays, caps some answers short, and counts what is outstanding. The real-server behaviour is
 * in test/e2e/sftpnet-read.test.ts.
 */
function fakeSftp(content: Buffer, opts: { shortEvery?: number; failAt?: number; delayMs?: number } = {}) {
  const stats = { outstanding: 0, maxOutstanding: 0, reads: 0, opened: 0, closed: 0 };
  let n = 0;
  // `delayMs`: every answer after that long (a link with latency), else after 0–3 ms.
  const later = (fn: () => void) => setTimeout(fn, opts.delayMs ?? Math.random() * 3);
  const ops = {
    open: (_path: string, _flags: string, cb: (err: Error | undefined, handle: Buffer) => void) => {
      stats.opened++;
      later(() => cb(undefined, Buffer.from('h')));
    },
    stat: (_path: string, cb: (err: Error | undefined, stats: unknown) => void) =>
      later(() => cb(undefined, { size: content.length, isFile: () => true })),
    read: (
      _h: Buffer,
      buf: Buffer,
      off: number,
      len: number,
      pos: number,
      cb: (err: Error | undefined, n: number, data: Buffer) => void,
    ) => {
      stats.reads++;
      stats.outstanding++;
      stats.maxOutstanding = Math.max(stats.maxOutstanding, stats.outstanding);
      const short = opts.shortEvery !== undefined && ++n % opts.shortEvery === 0;
      later(() => {
        stats.outstanding--;
        if (opts.failAt !== undefined && pos >= opts.failAt)
          return cb(Object.assign(new Error('Failure'), { code: 4 }), 0, buf);
        const take = Math.max(0, Math.min(short ? Math.ceil(len / 3) : len, content.length - pos));
        content.copy(buf, off, pos, pos + take);
        cb(undefined, take, buf.subarray(off, off + take));
      });
    },
    close: (_h: Buffer, cb: () => void) => {
      later(() => {
        stats.closed++;
        cb();
      });
    },
  };
  return { ops: ops as unknown as SftpFileOps, stats };
}

const options = (requestsInFlight: number) => ({
  requestsInFlight,
  chunkSize: 1000,
  describeError: (operation: string, err: unknown) => new Error(`${operation} /f: ${(err as Error).message}`),
  onSessionLost: () => () => {},
});

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('pipelinedRead', () => {
  it.each([0, 1, 999, 1000, 1001, 64_123])('delivers %i bytes in order, with short answers', async (size) => {
    const content = randomBytes(size);
    const { ops, stats } = fakeSftp(content, { shortEvery: 3 });
    expect((await collect(pipelinedRead(ops, '/f', options(8)))).equals(content)).toBe(true);
    await sleep(10);
    expect(stats.maxOutstanding).toBeLessThanOrEqual(8);
    expect(stats).toMatchObject({ opened: 1, closed: 1, outstanding: 0 });
  });

  it('asks for a small file only up to one chunk past its size', async () => {
    const { ops, stats } = fakeSftp(randomBytes(2500));
    await collect(pipelinedRead(ops, '/f', options(64)));
    expect(stats.reads).toBe(3 + 1);
  });

  it('keeps the window full, and stops asking while the consumer does not read', async () => {
    const content = randomBytes(200_000);
    const { ops, stats } = fakeSftp(content);
    const stream = pipelinedRead(ops, '/f', { ...options(16), highWaterMark: 1000 });
    await sleep(50);
    // Nothing consumed: 16 chunks held or asked for, then no more.
    expect(stats.reads).toBeGreaterThanOrEqual(16);
    expect(stats.reads).toBeLessThanOrEqual(17);
    expect(stats.maxOutstanding).toBe(16);
    expect((await collect(stream)).equals(content)).toBe(true);
  });

  it('doubles its requests in flight, up to the cap, while the consumer waits on the server', async () => {
    const content = randomBytes(400_000);
    const { ops, stats } = fakeSftp(content, { delayMs: 10 });
    const stream = pipelinedRead(ops, '/f', { ...options(8), maxRequestsInFlight: 32 });
    expect((await collect(stream)).equals(content)).toBe(true);
    expect(stats.maxOutstanding).toBe(32);
  });

  it('does not grow them for a consumer slower than the server', async () => {
    const content = randomBytes(100_000);
    const { ops, stats } = fakeSftp(content);
    const stream = pipelinedRead(ops, '/f', { ...options(8), maxRequestsInFlight: 32, highWaterMark: 1000 });
    const chunks: Buffer[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      await sleep(5);
    }
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
    expect(stats.maxOutstanding).toBe(8);
  });

  it('fails with the path and closes the handle on a read error', async () => {
    const { ops, stats } = fakeSftp(randomBytes(50_000), { failAt: 20_000 });
    await expect(collect(pipelinedRead(ops, '/f', options(4)))).rejects.toThrow('read /f: Failure');
    await sleep(10);
    expect(stats).toMatchObject({ closed: 1, outstanding: 0 });
  });

  it('closes the handle once after a destroy mid-file, and again for a destroy while opening', async () => {
    const { ops, stats } = fakeSftp(randomBytes(100_000));
    const stream = pipelinedRead(ops, '/f', options(8));
    await new Promise((r) => stream.once('data', r));
    stream.destroy();
    await new Promise((r) => stream.once('close', r));
    // This fake answers out of order (OpenSSH answers in order): READs may land after the CLOSE.
    await sleep(10);
    expect(stats).toMatchObject({ closed: 1, outstanding: 0 });
    const early = pipelinedRead(ops, '/f', options(8));
    early.destroy();
    await new Promise((r) => early.once('close', r));
    expect(stats.closed).toBe(2);
  });

  it('finishes a destroy at once when the session is lost', async () => {
    const { ops } = fakeSftp(randomBytes(100_000));
    let lose: (err: Error) => void = () => {};
    const stream = pipelinedRead(ops, '/f', {
      ...options(8),
      onSessionLost: (listener) => {
        lose = listener;
        return () => {};
      },
      // A lost session never answers again: nothing may wait for the handle's close.
    });
    (ops as unknown as { close: unknown }).close = () => {};
    const failed = collect(stream);
    await sleep(5);
    lose(new Error('connection lost'));
    await expect(failed).rejects.toThrow('read /f: connection lost');
  });
});
