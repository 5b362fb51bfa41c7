import { createHash, type Hash } from 'node:crypto';
import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';

/** Highest-throughput defaults measured on this machine (see shared/PERFORMANCE.md). */
export const STREAM_CHUNK = 1024 * 1024;

/**
 * Pipes `source` through `transforms` and returns the last stream as a Readable. An error in
 * any stage destroys every stage and surfaces on the returned stream, so whoever consumes it
 * (a sink) sees the failure and aborts its commit.
 */
export function pipeThrough(source: Readable, ...transforms: NodeJS.ReadWriteStream[]): Readable {
  if (transforms.length === 0) return source;
  // The callback form returns the last stream; errors are delivered to it by destroy(err).
  return pipeline(source, ...(transforms as [NodeJS.ReadWriteStream]), () => {}) as unknown as Readable;
}

/** A pass-through that counts bytes and hashes them as they flow. */
export class HashTap extends Transform {
  bytes = 0;
  private readonly hash: Hash | null;
  private digestValue: string | undefined;

  constructor(algorithm: string | null = 'sha256') {
    super({ highWaterMark: STREAM_CHUNK });
    this.hash = algorithm ? createHash(algorithm) : null;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
    cb(null, chunk);
  }

  /** Hex digest; only valid once the stream has ended. */
  digest(): string | undefined {
    if (!this.hash) return undefined;
    this.digestValue ??= this.hash.digest('hex');
    return this.digestValue;
  }
}

/** Reads a stream to the end and returns its sha256 (hex) and size. */
export async function hashStream(stream: Readable, algorithm = 'sha256'): Promise<{ digest: string; size: number }> {
  const hash = createHash(algorithm);
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: hash.digest('hex'), size };
}
