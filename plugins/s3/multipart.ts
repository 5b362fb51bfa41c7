/**
 * Uploads one stream to S3: a single PutObject when it ends within the first part, else a
 * multipart upload completed only when the stream ended cleanly and every part was stored, and
 * aborted otherwise.
 *
 * Why not `@aws-sdk/lib-storage`: it gathers each part from the stream's chunks and
 * concatenates them (`Buffer.concat`) into a new part-sized buffer, so every part is a fresh
 * allocation and the chunks it was made of stay alive (and get promoted out of V8's young
 * generation) until then. A 4 GiB upload left ~70 MiB of such garbage waiting for a major GC on
 * top of the parts in flight. Here every chunk is copied once into a part buffer taken from a
 * pool and dropped at once (young garbage, freed by the next scavenge), and the part buffers are
 * reused: at most `queueSize` parts are being sent and one is being filled, so one upload holds at
 * most (queueSize + 1) × partSize, and the pool keeps the same number between uploads.
 */
import type { Readable } from 'node:stream';
import type { CompletedPart } from '@aws-sdk/client-s3';
import type { S3Connection } from './client.js';
import { leanMetadata } from './lean-head.js';

/** Reusable part buffers of one size, shared by a sink's uploads. */
export class PartBufferPool {
  private readonly free: Buffer[] = [];
  /** Buffers handed out and not yet given back. */
  private out = 0;
  /** Most buffers ever out at once (for tests: what an upload held). */
  peak = 0;

  constructor(
    readonly partSize: number,
    /** Buffers kept for later uploads; more are released to the garbage collector. */
    private readonly keep: number,
  ) {}

  take(): Buffer {
    this.out++;
    this.peak = Math.max(this.peak, this.out);
    // allocUnsafeSlow: a buffer of its own (never a slice of Node's shared pool), fully overwritten.
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.partSize);
  }

  give(buffer: Buffer): void {
    this.out--;
    if (this.free.length < this.keep) this.free.push(buffer);
  }

  /** A buffer that must not be reused (a failed request may still be writing it). */
  drop(): void {
    this.out--;
  }
}

export interface UploadObjectOptions {
  key: string;
  metadata: Record<string, string>;
  /** If-None-Match: * on the PutObject or the CompleteMultipartUpload. */
  exclusive: boolean;
  /** Parts uploaded at once. */
  queueSize: number;
  pool: PartBufferPool;
  /** Byte count of the body when known: a bigger one goes straight to the part buffers. */
  size?: number;
  /** Aborts the requests in flight and the upload. */
  signal: AbortSignal;
}

/**
 * Uploads `body` to `key`; resolves to the object's ETag (unquoted, when the service gave one).
 * Rejects with the body's own error when the body failed, else with the service's error; a
 * multipart upload that does not complete is aborted (best effort).
 */
export async function uploadObject(
  conn: S3Connection,
  body: Readable,
  options: UploadObjectOptions,
): Promise<string | undefined> {
  const { sdk, client, bucket } = conn;
  const { key, metadata, exclusive, queueSize, pool, signal } = options;
  const partSize = pool.partSize;
  const send = { abortSignal: signal };
  const ifNoneMatch = exclusive ? '*' : undefined;

  /** The first part's chunks, kept as they came until the body turns out to be bigger than a part. */
  let first: Buffer[] | undefined = options.size !== undefined && options.size > partSize ? undefined : [];
  let firstLength = 0;
  /** The part being filled (multipart only) and how many of its bytes are set. */
  let current: Buffer | undefined;
  let filled = 0;
  let partNumber = 0;

  let uploadId: string | undefined;
  let creating: Promise<string> | undefined;
  const done: CompletedPart[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  /** Read through a call: TypeScript does not see the closures that set it. */
  const failed = () => failure;

  const create = () => {
    creating ??= (async () => {
      const checksums = await client.config.requestChecksumCalculation();
      const created = await client.send(
        new sdk.CreateMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          Metadata: metadata,
          // As lib-storage does: a full-object CRC32 when the client computes checksums.
          ...(checksums === 'WHEN_SUPPORTED' ? { ChecksumAlgorithm: 'CRC32' as const } : {}),
        }),
        send,
      );
      if (!created.UploadId) throw new Error('CreateMultipartUpload answered without an UploadId');
      uploadId = created.UploadId;
      return uploadId;
    })();
    return creating;
  };

  /**
   * Sends `buffer[0, length)` as the next part once fewer than queueSize are being sent (the
   * body is not read meanwhile: backpressure); the buffer goes back to the pool once sent. So
   * queueSize parts are sent while the next one fills: at most queueSize + 1 buffers.
   */
  const dispatch = async (buffer: Buffer, length: number) => {
    while (inFlight.size >= queueSize && !failed()) await Promise.race(inFlight);
    if (failed()) {
      pool.give(buffer);
      return;
    }
    const number = ++partNumber;
    const sending = (async () => {
      try {
        const id = await create();
        const result = await client.send(
          new sdk.UploadPartCommand({
            Bucket: bucket,
            Key: key,
            UploadId: id,
            PartNumber: number,
            Body: buffer.subarray(0, length),
            ContentLength: length,
          }),
          send,
        );
        if (!result.ETag) throw new Error(`UploadPart ${number} answered without an ETag`);
        done.push({
          PartNumber: number,
          ETag: result.ETag,
          ...(result.ChecksumCRC32 ? { ChecksumCRC32: result.ChecksumCRC32 } : {}),
          ...(result.ChecksumCRC32C ? { ChecksumCRC32C: result.ChecksumCRC32C } : {}),
          ...(result.ChecksumSHA1 ? { ChecksumSHA1: result.ChecksumSHA1 } : {}),
          ...(result.ChecksumSHA256 ? { ChecksumSHA256: result.ChecksumSHA256 } : {}),
        });
        // Only a part whose request finished is reused: nothing reads the buffer any more.
        pool.give(buffer);
      } catch (error) {
        pool.drop();
        failure ??= { error };
      }
    })();
    inFlight.add(sending);
    void sending.finally(() => inFlight.delete(sending));
  };

  /** Copies `chunk` into part buffers, sending each full one once more bytes follow it. */
  const fill = async (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length && !failed()) {
      if (current === undefined) current = pool.take();
      else if (filled === partSize) {
        // A full part followed by more bytes: not the last one.
        const full = current;
        current = undefined;
        filled = 0;
        await dispatch(full, partSize);
        if (failed()) return;
        current = pool.take();
      }
      const n = Math.min(chunk.length - at, partSize - filled);
      chunk.copy(current, filled, at, at + n);
      filled += n;
      at += n;
    }
  };

  const abort = async () => {
    if (current !== undefined) pool.give(current);
    current = undefined;
    await Promise.allSettled(inFlight);
    const id = uploadId ?? (creating ? await creating.catch(() => undefined) : undefined);
    if (id === undefined) return;
    try {
      await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id }));
    } catch {
      // Best effort: the parts of an upload never completed are not an object.
    }
  };

  try {
    for await (const data of body) {
      const chunk = Buffer.isBuffer(data) ? data : Buffer.from(data as Uint8Array);
      if (first !== undefined) {
        if (firstLength + chunk.length <= partSize) {
          first.push(chunk);
          firstLength += chunk.length;
          continue;
        }
        // Bigger than one part: a multipart upload, from here on through the pool.
        const held = first;
        first = undefined;
        for (const c of held) await fill(c);
      }
      await fill(chunk);
      if (failed()) break;
    }
  } catch (err) {
    // The body failed (or was destroyed): no object.
    await abort();
    throw err;
  }
  const failedEarly = failed();
  if (failedEarly) {
    await abort();
    throw failedEarly.error;
  }

  if (first !== undefined) {
    // The whole body fits in one part: one PutObject.
    const whole = first.length === 1 ? first[0] : Buffer.concat(first, firstLength);
    if (conn.leanPut && leanMetadata(metadata)) {
      return conn.leanPut({ key, body: whole, metadata, exclusive, signal });
    }
    const result = await client.send(
      new sdk.PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: whole,
        ContentLength: firstLength,
        Metadata: metadata,
        IfNoneMatch: ifNoneMatch,
      }),
      send,
    );
    return result.ETag?.replace(/^"|"$/g, '');
  }

  // The last part (at least one byte: a full part is only sent once more bytes follow).
  const last = current!;
  current = undefined;
  await dispatch(last, filled);
  await Promise.allSettled(inFlight);
  const failedLate = failed();
  if (failedLate) {
    await abort();
    throw failedLate.error;
  }
  done.sort((a, b) => a.PartNumber! - b.PartNumber!);
  try {
    const result = await client.send(
      new sdk.CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: done },
        IfNoneMatch: ifNoneMatch,
      }),
      send,
    );
    return result.ETag?.replace(/^"|"$/g, '');
  } catch (err) {
    await abort();
    throw err;
  }
}
