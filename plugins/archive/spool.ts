import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { STREAM_CHUNK } from '../../core/streams.js';

/** A fresh file name in `tempDir` (created if needed) for spooling an archive. */
export async function spoolPath(tempDir: string, suffix: string): Promise<string> {
  await mkdir(tempDir, { recursive: true });
  return join(tempDir, `decompress-${randomUUID()}${suffix}`);
}

/** Streams `source` through `transforms` into `path`; on failure the partial file is removed. */
export async function spoolTo(
  path: string,
  source: Readable,
  ...transforms: NodeJS.ReadWriteStream[]
): Promise<void> {
  try {
    await pipeline([source, ...transforms, createWriteStream(path, { highWaterMark: STREAM_CHUNK })]);
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
}
