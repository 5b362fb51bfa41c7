/**
 * Stream pieces that make late verdicts (integrity, signatures, a child's exit code) count:
 * the plaintext may flow before the verdict, but the stream only *ends* once it is known, and
 * errors instead when it is bad. Sinks commit only on a clean end, so nothing bad is committed.
 */
import { PassThrough, type Readable, Transform, type TransformCallback } from 'node:stream';
import type { Item } from '../../core/plugin-api.js';
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

/**
 * A producer's verdict on bytes its reader stopped reading early: resolves with the producer's
 * own failure (a PGP message whose integrity check failed), or undefined when it found nothing
 * wrong or cannot tell.
 */
export type LateVerdict = () => Promise<unknown>;

const LATE_VERDICTS = new WeakMap<Readable, LateVerdict>();

/** Lets readers of `stream` ask for its late verdict (lateVerdictOf); returns `stream`. */
export function offerLateVerdict<S extends Readable>(stream: S, verdict: LateVerdict): S {
  LATE_VERDICTS.set(stream, verdict);
  return stream;
}

export function lateVerdictOf(stream: Readable | undefined): LateVerdict | undefined {
  return stream && LATE_VERDICTS.get(stream);
}

/**
 * Runs a byte step (`run`, e.g. decompress) on `item` so that when its output fails — a
 * gunzip meeting the garbage a tampered PGP message decrypts to — and the stream it read offers
 * a late verdict, that verdict wins: the PGP integrity failure is the item's error (carrying
 * its own step), whichever of the two noticed first. Without an offer nothing is wrapped.
 */
export async function preferLateVerdict(
  item: Item,
  run: (input: Item) => Promise<Item | AsyncIterable<Item>>,
): Promise<Item | AsyncIterable<Item>> {
  let upstream: Readable | undefined;
  const input: Item = {
    ...item,
    open: async (signal) => {
      upstream = await item.open(signal);
      return upstream;
    },
  };
  const judge = async (err: unknown): Promise<unknown> => {
    const verdict = lateVerdictOf(upstream);
    return (verdict && (await verdict())) ?? err;
  };
  const judged = (out: Item): Item =>
    out === input
      ? item
      : {
          ...out,
          open: async (signal) => {
            const stream = await out.open(signal);
            return lateVerdictOf(upstream) ? judgedStream(stream, judge) : stream;
          },
        };
  const out = await run(input);
  if (!isAsyncIterable(out)) return judged(out);
  return (async function* () {
    try {
      for await (const entry of out) yield judged(entry);
    } catch (err) {
      throw await judge(err);
    }
  })();
}

/** `stream`, whose error is replaced by what `judge` makes of it. */
function judgedStream(stream: Readable, judge: (err: unknown) => Promise<unknown>): Readable {
  const out = new PassThrough({ highWaterMark: STREAM_CHUNK });
  stream.on('error', (err) => {
    void judge(err).then((verdict) => out.destroy(verdict as Error));
  });
  out.on('close', () => {
    if (!stream.destroyed) stream.destroy();
  });
  stream.pipe(out);
  return out;
}

function isAsyncIterable(v: unknown): v is AsyncIterable<Item> {
  return typeof v === 'object' && v !== null && Symbol.asyncIterator in v;
}
