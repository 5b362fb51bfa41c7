import { Readable } from 'node:stream';
import { STREAM_CHUNK } from '../../core/streams.js';

/**
 * Reads the first `count` bytes of `stream` (fewer if it is shorter) and returns them with a
 * stream that still yields every byte, the peeked ones first. Destroying the returned stream
 * destroys the original.
 */
export async function peekStream(
  stream: Readable,
  count: number,
): Promise<{ head: Buffer; stream: Readable }> {
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let length = 0;
  let done = false;
  while (length < count) {
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    chunks.push(next.value);
    length += next.value.length;
  }
  const buffered = Buffer.concat(chunks);
  async function* replay(): AsyncGenerator<Buffer> {
    try {
      if (buffered.length > 0) yield buffered;
      while (!done) {
        const next = await iterator.next();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      await iterator.return?.();
    }
  }
  return {
    head: buffered.subarray(0, count),
    stream: Readable.from(replay(), { objectMode: false, highWaterMark: STREAM_CHUNK }),
  };
}

/** The first `count` bytes of a stream, which is then destroyed. */
export async function readHead(stream: Readable, count: number): Promise<Buffer> {
  const { head, stream: rest } = await peekStream(stream, count);
  rest.destroy();
  stream.destroy();
  return head;
}
