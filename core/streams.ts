import { createHash, type Hash } from 'node:crypto';
import { type Duplex, type Readable, Transform, type TransformCallback, type Writable } from 'node:stream';

/** Highest-throughput defaults measured on this machine (see shared/PERFORMANCE.md). */
export const STREAM_CHUNK = 1024 * 1024;

/**
 * Pipes `source` through `transforms` and returns the last stream as a Readable. An error in
 * any stage destroys every stage and surfaces on the returned stream, so whoever consumes it
 * (a sink) sees the failure and aborts its commit.
 */
export function pipeThrough(source: Readable, ...transforms: NodeJS.ReadWriteStream[]): Readable {
  let last = source;
  for (const t of transforms) last = link(last, t as unknown as Duplex);
  return last;
}

/**
 * `src.pipe(dst)` with the error handling `stream.pipeline` gives, minus its per-call
 * AbortController (measurable at thousands of small files a second): an error or premature
 * close upstream destroys `dst` with that error; `dst` closing early destroys `src`.
 */
function link(src: Readable, dst: Duplex): Duplex {
  // A source that failed before anyone piped it fires no more events: pass its end on now.
  if (src.destroyed && !src.readableEnded) {
    queueMicrotask(() => dst.destroy(src.errored ?? prematureClose()));
    return dst;
  }
  src.on('error', (err) => dst.destroy(err));
  src.on('close', () => {
    if (!src.readableEnded && !dst.destroyed) dst.destroy(prematureClose());
  });
  dst.on('close', () => {
    if (!src.destroyed) src.destroy();
  });
  src.pipe(dst);
  return dst;
}

function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * Pipes `src` into the writable `dst` and resolves once `dst` has finished and closed;
 * rejects (destroying both) on an error of either, a premature close of `src`, or `signal`.
 */
export function drainInto(src: Readable, dst: Writable, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      src.destroy();
      dst.destroy();
      reject(err);
    };
    const onAbort = () => fail(signal?.reason ?? new Error('aborted'));
    if (signal?.aborted) return onAbort();
    if (src.destroyed && !src.readableEnded) return fail(src.errored ?? prematureClose());
    signal?.addEventListener('abort', onAbort, { once: true });
    src.on('error', fail);
    dst.on('error', fail);
    src.on('close', () => {
      if (!src.readableEnded) fail(src.errored ?? prematureClose());
    });
    dst.on('close', () => {
      if (settled) return;
      if (!dst.writableFinished) return fail(dst.errored ?? prematureClose());
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    src.pipe(dst);
  });
}

/** A pass-through that counts bytes and hashes them as they flow. */
export class HashTap extends Transform {
  bytes = 0;
  private readonly hash: Hash | null;
  private digestValue: string | undefined;
  private readonly expected: { bytes: number; mismatch: (read: number) => Error } | undefined;

  /**
   * With `expected`, the stream errors at its end (before a consumer sees it end) when the
   * bytes that passed differ from `expected.bytes`: a source compares what it delivered with
   * the size it listed, so a file truncated or grown while it streams is never committed.
   */
  constructor(
    algorithm: string | null = 'sha256',
    expected?: { bytes: number; mismatch: (read: number) => Error },
  ) {
    super({ highWaterMark: STREAM_CHUNK });
    this.hash = algorithm ? createHash(algorithm) : null;
    this.expected = expected;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.expected && this.bytes !== this.expected.bytes) cb(this.expected.mismatch(this.bytes));
    else cb();
  }

  /** Hex digest; only valid once the stream has ended. */
  digest(): string | undefined {
    if (!this.hash) return undefined;
    this.digestValue ??= this.hash.digest('hex');
    return this.digestValue;
  }
}

/** Reads a stream to the end and returns its sha256 (hex) and size. */
export async function hashStream(
  stream: Readable,
  algorithm = 'sha256',
): Promise<{ digest: string; size: number }> {
  const hash = createHash(algorithm);
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: hash.digest('hex'), size };
}
