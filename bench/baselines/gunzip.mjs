// Baseline: a hand-written Node gunzip with the fast settings (zlib chunkSize 1 MiB).
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

const [src, dst] = process.argv.slice(2);
await pipeline(
  createReadStream(src, { highWaterMark: 1 << 20 }),
  createGunzip({ chunkSize: 1 << 20 }),
  createWriteStream(dst, { highWaterMark: 1 << 20 }),
);
