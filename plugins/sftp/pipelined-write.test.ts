import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { pipelinedWrite, type SftpWriteOps } from './pipelined-write.js';

/** An in-memory SFTP file that acknowledges WRITEs out of order and counts what is outstanding. */
function fakeSftp(
  opts: { failAt?: number; failClose?: boolean; failOpen?: boolean; delay?: number } = {},
  file = Buffer.alloc(1 << 20),
) {
  const stats = {
    size: 0,
    outstanding: 0,
    maxOutstanding: 0,
    writes: 0,
    closed: 0,
    closedWith: -1,
    opened: [] as (string | number)[],
  };
  const later = (fn: () => void) => setTimeout(fn, Math.random() * (opts.delay ?? 3));
  const ops = {
    open: (_p: string, flags: string | number, cb: (err: Error | undefined, h?: Buffer) => void) => {
      stats.opened.push(flags);
      later(() => (opts.failOpen ? cb(new Error('no')) : cb(undefined, Buffer.from('h'))));
    },
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
  return { ops: ops as unknown as SftpWriteOps, stats, file, content: () => file.subarray(0, stats.size) };
}

/** Two fake channels on one file: the first, and the lane `extraLane` gives (once). */
function twoLanes(second: Parameters<typeof fakeSftp>[0] = {}) {
  const first = fakeSftp({ delay: 5 }, Buffer.alloc(4 << 20));
  const other = fakeSftp({ delay: 5, ...second }, first.file);
  const asked: number[] = [];
  const lanes = {
    maxLanes: 2,
    extraLane: async (index: number) => {
      asked.push(index);
      return other.ops;
    },
  };
  const content = () => first.file.subarray(0, Math.max(first.stats.size, other.stats.size));
  return { first, other, asked, lanes, content };
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

  it('spreads a write that waits on the server over a second lane, opened write-only, and closes both', async () => {
    const { first, other, asked, lanes, content } = twoLanes();
    const data = randomBytes(3_000_000);
    await pipeline(body(data), pipelinedWrite(first.ops, '/f', { ...options(8), ...lanes }));
    expect(content().equals(data)).toBe(true);
    expect(asked).toEqual([1]);
    expect(first.stats.opened).toEqual(['w']);
    expect(other.stats.opened).toEqual([0x02]);
    expect(other.stats.writes).toBeGreaterThan(100);
    expect(first.stats.maxOutstanding).toBeLessThanOrEqual(8 + 5);
    expect(other.stats.maxOutstanding).toBeLessThanOrEqual(8 + 5);
    expect(first.stats).toMatchObject({ closed: 1, closedWith: 0 });
    expect(other.stats).toMatchObject({ closed: 1, closedWith: 0 });
  });

  it('asks for no lane for a write of less than two rounds, nor beyond maxLanes', async () => {
    const small = twoLanes();
    await pipeline(
      Readable.from([randomBytes(10_000)]),
      pipelinedWrite(small.first.ops, '/f', { ...options(8), ...small.lanes }),
    );
    expect(small.asked).toEqual([]);
    const one = twoLanes();
    await pipeline(
      body(randomBytes(500_000)),
      pipelinedWrite(one.first.ops, '/f', { ...options(8), ...one.lanes, maxLanes: 1 }),
    );
    expect(one.asked).toEqual([]);
  });

  it('goes on over the first lane when the second is refused or its open fails', async () => {
    const refused = fakeSftp({ delay: 5 });
    const data = randomBytes(500_000);
    await pipeline(
      body(data),
      pipelinedWrite(refused.ops, '/f', { ...options(8), maxLanes: 2, extraLane: async () => undefined }),
    );
    expect(refused.content().equals(data)).toBe(true);
    const { first, other, lanes, content } = twoLanes({ failOpen: true });
    await pipeline(body(data), pipelinedWrite(first.ops, '/f', { ...options(8), ...lanes }));
    expect(content().equals(data)).toBe(true);
    expect(other.stats.opened).toEqual([0x02]);
    expect(other.stats.writes).toBe(0);
    expect(first.stats).toMatchObject({ closed: 1, closedWith: 0 });
  });

  it('fails on a write error of the second lane, closing both handles', async () => {
    const { first, other, lanes } = twoLanes({ failAt: 1_000_000 });
    await expect(
      pipeline(body(randomBytes(3_000_000)), pipelinedWrite(first.ops, '/f', { ...options(8), ...lanes })),
    ).rejects.toThrow('write /f: Failure');
    await sleep(20);
    expect(first.stats.closed).toBe(1);
    expect(other.stats.closed).toBe(1);
  });

  it("fails when the second lane's close fails", async () => {
    const { first, lanes } = twoLanes({ failClose: true });
    await expect(
      pipeline(body(randomBytes(3_000_000)), pipelinedWrite(first.ops, '/f', { ...options(8), ...lanes })),
    ).rejects.toThrow('close /f: quota exceeded');
    expect(first.stats.closed).toBe(1);
  });

  it('a destroy while the second lane opens closes that handle too before the stream closes', async () => {
    const { first, other, asked, lanes } = twoLanes({ delay: 40 });
    const out = pipelinedWrite(first.ops, '/f', { ...options(8), ...lanes });
    const closed = new Promise<void>((resolveClosed) => out.once('close', () => resolveClosed()));
    out.on('error', () => {});
    const feeding = pipeline(body(randomBytes(3_000_000)), out).catch(() => {});
    for (let i = 0; i < 200 && asked.length === 0; i++) await sleep(1);
    expect(asked).toEqual([1]);
    out.destroy(new Error('stop'));
    await closed;
    expect(other.stats.opened).toEqual([0x02]);
    expect({ first: first.stats.closed, other: other.stats.closed }).toEqual({ first: 1, other: 1 });
    await feeding;
  });
});
