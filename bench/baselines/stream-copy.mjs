// Baseline: the hand-written copy a user would write — stream.pipeline, 1 MiB buffers.
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';

const [src, dst] = process.argv.slice(2);
await pipeline(
  createReadStream(src, { highWaterMark: 1 << 20 }),
  createWriteStream(dst, { highWaterMark: 1 << 20 }),
);
