/**
 * Stream pieces that make late verdicts (integrity, signatures, a child's exit code) count:
 * the plaintext may flow before the verdict, but the stream only *ends* once it is known, and
 * errors instead when it is bad. Sinks commit only on a clean end, so nothing bad is committed.
 */
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { STREAM_CHUNK } from '../../core/streams.js';

/** Passes bytes through; its end waits for `verdict()` and turns a rejection into a stream error. */
export class EndGate extends Transform {
  constructor(private readonly verdict: () => Promise<void>) {
    super({ highWaterMark: STREAM_CHUNK });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.verdict().then(() => cb(), cb);
  }
}

/** A consumer of a copy of the bytes that gives its verdict once they are all seen. */
export interface ByteVerifier<T> {
  write(chunk: Buffer): Promise<void> | void;
  /** Called after the last chunk; resolves with the verdict. */
  end(): Promise<T>;
  /** Called when the stream fails before its end. */
  abort(): void;
}

/**
 * Copies the bytes into a verifier as they pass (with backpressure from both sides) and does
 * not end before the verifier gave its verdict; `result` holds that verdict for later checks.
 */
export class VerifierTee<T> extends Transform {
  private settle!: { resolve: (v: T) => void; reject: (e: unknown) => void };
  readonly result: Promise<T>;

  constructor(private readonly verifier: ByteVerifier<T>) {
    super({ highWaterMark: STREAM_CHUNK });
    this.result = new Promise<T>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.result.catch(() => {}); // the rejection is delivered as a stream error too
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    Promise.resolve(this.verifier.write(chunk)).then(() => cb(null, chunk), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.verifier.end().then(
      (verdict) => {
        this.settle.resolve(verdict);
        cb();
      },
      (err) => {
        this.settle.reject(err);
        cb(err);
      },
    );
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (err) {
      this.verifier.abort();
      this.settle.reject(err);
    }
    cb(err);
  }
}

/** Resolves with the first byte of `stream` (put back for the next reader), or undefined if empty. */
export function peekFirstByte(stream: Readable): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onReadable = () => {
      const chunk = stream.read() as Buffer | null;
      if (chunk === null) return;
      cleanup();
      stream.unshift(chunk);
      resolve(chunk[0]);
    };
    const onEnd = () => {
      cleanup();
      resolve(undefined);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
}
