import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { pipelinedWrite, type SftpWriteOps } from './pipelined-write.js';

/** An in-memory SFTP file that acknowledges WRITEs out of order and counts what is outstanding. */
function fakeSftp(opts: { failAt?: number; failClose?: boolean } = {}) {
  const file = Buffer.alloc(1 << 20);
  const stats = { size: 0, outstanding: 0, maxOutstanding: 0, writes: 0, closed: 0, closedWith: -1 };
  const later = (fn: () => void) => setTimeout(fn, Math.random() * 3);
  const ops = {
    open: (_p: string, _f: string, cb: (err: Error | undefined, h: Buffer) => void) =>
      later(() => cb(undefined, Buffer.from('h'))),
    write: (_h: Buffer, buf: Buffer, off: number, len: number, pos: number, cb: (err?: Error) => void) => {
      stats.writes++;
      stats.outstanding++;
      stats.maxOutstanding = Math.max(stats.maxOutstanding, stats.outstanding);
      // ssh2 copies the bytes into its packet at once: so does the fake.
      const bytes = Buffer.from(buf.subarray(off, off + len));
      later(() => {
        stats.outstanding--;
        if (opts.failAt !== undefined && pos >= opts.failAt)
          return cb(Object.assign(new Error('Failure'), { code: 4 }));
        bytes.copy(file, pos);
        stats.size = Math.max(stats.size, pos + len);
        cb();
      });
    },
    close: (_h: Buffer, cb: (err?: Error) => void) =>
      later(() => {
        stats.closed++;
        stats.closedWith = stats.outstanding;
        cb(opts.failClose ? new Error('quota exceeded') : undefined);
      }),
  };
  return { ops: ops as unknown as SftpWriteOps, stats, content: () => file.subarray(0, stats.size) };
}

const options = (requestsInFlight: number) => ({
  requestsInFlight,
  chunkSize: 1000,
  describeError: (operation: string, err: unknown) => new Error(`${operation} /f: ${(err as Error).message}`),
  onSessionLost: () => () => {},
});

/** `data` in pieces of random sizes, as a body stream. */
const body = (data: Buffer) => {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; ) {
    const n = 1 + Math.floor(Math.random() * 5000);
    pieces.push(data.subarray(at, at + n));
    at += n;
  }
  return Readable.from(pieces);
};

describe('pipelinedWrite', () => {
  it.each([0, 1, 999, 1000, 1001, 300_123])('writes %i bytes at their offsets, then closes', async (size) => {
    const data = randomBytes(size);
    const { ops, stats, content } = fakeSftp();
    await pipeline(body(data), pipelinedWrite(ops, '/f', options(8)));
    expect(content().equals(data)).toBe(true);
    expect(stats.maxOutstanding).toBeLessThanOrEqual(8 + 5);
    // CLOSE went out after the last WRITE was answered.
    expect(stats).toMatchObject({ closed: 1, closedWith: 0 });
  });

  it('keeps many writes in flight', async () => {
    const { ops, stats } = fakeSftp();
    await pipeline(body(randomBytes(200_000)), pipelinedWrite(ops, '/f', options(16)));
    expect(stats.maxOutstanding).toBeGreaterThanOrEqual(16);
  });

  it('fails with the path on a write error, and closes the handle', async () => {
    const { ops, stats } = fakeSftp({ failAt: 50_000 });
    await expect(pipeline(body(randomBytes(200_000)), pipelinedWrite(ops, '/f', options(4)))).rejects.toThrow(
      'write /f: Failure',
    );
    await sleep(10);
    expect(stats.closed).toBe(1);
  });

  it('fails when the close fails (a server that stores on close)', async () => {
    const { ops } = fakeSftp({ failClose: true });
    await expect(pipeline(body(randomBytes(5000)), pipelinedWrite(ops, '/f', options(4)))).rejects.toThrow(
      'close /f: quota exceeded',
    );
  });

  it('closes the handle when the body fails midway', async () => {
    const { ops, stats } = fakeSftp();
    const failing = new Readable({
      read() {
        this.push(randomBytes(3000));
        setTimeout(() => this.destroy(new Error('body broke')), 5);
      },
    });
    await expect(pipeline(failing, pipelinedWrite(ops, '/f', options(4)))).rejects.toThrow('body broke');
    await sleep(10);
    expect(stats.closed).toBe(1);
  });
});
