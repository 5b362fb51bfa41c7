/**
 * Safety limits enforced while bytes flow: counts what decompressors actually produce, never
 * what headers declare, so a lying archive is stopped as surely as an honest bomb.
 */
import { Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import { isAbortError, SluiceError } from '../../core/errors.js';
import { STREAM_CHUNK } from '../../core/streams.js';

export interface UnpackLimits {
  maxEntries: number;
  /** Output bytes per compressed input byte. */
  maxRatio: number;
  maxTotalSize: number;
  maxEntrySize?: number;
}

/**
 * The ratio is judged only once this much has come out: small, very compressible files (a
 * column of zeros) are legitimate, and the first input chunk may be tiny.
 */
export const RATIO_GRACE_BYTES = 1024 * 1024;

export function limitError(archive: string, message: string): SluiceError {
  return new SluiceError('SLUICE_E_LIMIT', `archive "${archive}": ${message}`, {
    retryable: false,
    context: { item: archive },
  });
}

export function badDataError(archive: string, message: string, cause?: unknown): SluiceError {
  return new SluiceError('SLUICE_E_BAD_DATA', `"${archive}": ${message}`, {
    retryable: false,
    cause,
    context: { item: archive },
  });
}

/**
 * Counters for one archive. An archive nested in another (`recursive: true`) gets its own
 * budget for the ratio (its output against its own compressed size) while entry count and
 * total size accumulate in the outermost archive's budget, so nesting cannot multiply them.
 */
export class UnpackBudget {
  /** Compressed bytes read so far (the whole archive's size once known). */
  bytesIn = 0;
  bytesOut = 0;
  private entries = 0;
  private totalOut = 0;
  private readonly root: UnpackBudget;

  constructor(
    readonly limits: UnpackLimits,
    readonly archive: string,
    parent?: UnpackBudget,
  ) {
    this.root = parent?.root ?? this;
  }

  addEntry(entry: string): void {
    const root = this.root;
    root.entries++;
    if (root.entries > this.limits.maxEntries) {
      throw limitError(
        root.archive,
        `more than ${this.limits.maxEntries} entries (max_entries), at "${entry}"`,
      );
    }
  }

  checkEntrySize(entry: string, size: number): void {
    const max = this.limits.maxEntrySize;
    if (max !== undefined && size > max) {
      throw limitError(this.archive, `entry "${entry}" is larger than ${max} bytes (max_entry_size)`);
    }
  }

  addOutput(bytes: number): void {
    this.checkGrowth(bytes);
    this.bytesOut += bytes;
    this.root.totalOut += bytes;
  }

  /** Throws if `bytes` more output (produced, or declared by a zip) would break a limit. */
  checkGrowth(bytes: number): void {
    const total = this.root.totalOut + bytes;
    if (total > this.limits.maxTotalSize) {
      throw limitError(
        this.root.archive,
        `unpacks to more than ${this.limits.maxTotalSize} bytes (max_total_size)`,
      );
    }
    const out = this.bytesOut + bytes;
    if (out > RATIO_GRACE_BYTES && out > this.limits.maxRatio * Math.max(this.bytesIn, 1)) {
      throw limitError(
        this.archive,
        `expands more than ${this.limits.maxRatio}× (${out} bytes out of ${this.bytesIn} compressed; max_ratio): likely a decompression bomb`,
      );
    }
  }
}

/** A pass-through that counts bytes (compressed input, for the ratio). */
export class ByteCounter extends Transform {
  bytes = 0;

  constructor(private readonly onBytes?: (total: number) => void) {
    super({ highWaterMark: STREAM_CHUNK });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    cb(null, chunk);
  }
}

/**
 * Tells decoder failures (corrupt data → SLUICE_E_BAD_DATA, not retried) from failures of the
 * source stream (network resets, which the retry policy should see unchanged).
 */
export class ErrorOrigins {
  private readonly fromSource = new WeakSet<object>();

  constructor(
    private readonly archive: string,
    private readonly format: string,
  ) {}

  /** Marks every error `stream` emits as the source's own. */
  watchSource<S extends NodeJS.EventEmitter>(stream: S): S {
    stream.on('error', (err: unknown) => {
      if (typeof err === 'object' && err !== null) this.fromSource.add(err);
    });
    return stream;
  }

  classify(err: Error): Error {
    if (err instanceof SluiceError || isAbortError(err) || this.fromSource.has(err)) return err;
    return badDataError(this.archive, `not a valid ${this.format} (${err.message})`, err);
  }
}

export interface EntryGuardOptions {
  budget: UnpackBudget;
  origins: ErrorOrigins;
  /** Entry name for messages; omitted for single-file gzip. */
  entry?: string;
  /** Declared size the bytes must match exactly (zip central directory). */
  expectedSize?: number;
  /** Declared CRC-32 the bytes must match (zip central directory). */
  expectedCrc32?: number;
}

/**
 * The last stage of every output stream: counts what came out, enforces the limits, checks a
 * declared size/CRC at the end, and turns decoder errors into SluiceErrors (an error given to
 * `destroy()` is what the stream emits, so mapping it in `_destroy` covers every stage).
 */
export class EntryGuard extends Transform {
  bytes = 0;
  private crc = 0;

  constructor(private readonly options: EntryGuardOptions) {
    super({ highWaterMark: STREAM_CHUNK });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const { budget, entry, expectedSize, expectedCrc32 } = this.options;
    this.bytes += chunk.length;
    try {
      if (entry !== undefined) budget.checkEntrySize(entry, this.bytes);
      if (expectedSize !== undefined && this.bytes > expectedSize) {
        throw badDataError(
          budget.archive,
          `entry "${entry}" holds more bytes than its declared ${expectedSize}`,
        );
      }
      budget.addOutput(chunk.length);
    } catch (err) {
      cb(err as Error);
      return;
    }
    if (expectedCrc32 !== undefined) this.crc = crc32(chunk, this.crc);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const { budget, entry, expectedSize, expectedCrc32 } = this.options;
    if (expectedSize !== undefined && this.bytes !== expectedSize) {
      cb(badDataError(budget.archive, `entry "${entry}" ended after ${this.bytes} of ${expectedSize} bytes`));
      return;
    }
    if (expectedCrc32 !== undefined && this.crc >>> 0 !== expectedCrc32 >>> 0) {
      cb(badDataError(budget.archive, `entry "${entry}" fails its CRC-32 check`));
      return;
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    cb(err ? this.options.origins.classify(err) : null);
  }
}

type Crc32 = (data: Uint8Array, value?: number) => number;

// zlib.crc32 exists from Node 20.15; the table version keeps older 20.x working.
const nativeCrc32 = (zlib as unknown as { crc32?: Crc32 }).crc32;

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** CRC-32 in JavaScript, for Node versions without `zlib.crc32`. */
export const tableCrc32: Crc32 = (data, value = 0) => {
  let c = ~value;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
};

export const crc32: Crc32 = nativeCrc32 ?? tableCrc32;
