/**
 * User metadata for object-store sinks. Metadata travels with the upload's first request, so
 * every value, including `{sha256}`, must be known before the first byte is sent: when it is
 * not, the sink spools the body to a temp file while hashing it (`spoolHashed`).
 */

import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SluiceError } from '../../core/errors.js';
import type { Item } from '../../core/plugin-api.js';
import { HashTap, STREAM_CHUNK } from '../../core/streams.js';
import { compileTemplate } from '../../core/template.js';
import { MTIME_METADATA } from './mtime.js';

export interface MetadataTemplates {
  /** True when a value uses `{sha256}`: the sink must know the hash before uploading. */
  readonly needsSha256: boolean;
  /** True when the item's mtime is stored (`preserve_mtime`). */
  readonly keepsMtime: boolean;
  /**
   * Renders every value for `item`. When `sha256` is known it is also stored under `sha256Key`
   * (the backend's spelling of `sluice-sha256`), so `if_exists: fail` can recognise an earlier
   * copy of the same bytes without reading it back; with `mtimeValue`, the item's mtime under
   * `mtime` (see `mtime.ts`).
   */
  render(item: Item, sha256: string | undefined): Record<string, string>;
}

export interface MetadataOptions {
  /** The backend's spelling of `sluice-sha256`. */
  sha256Key: string;
  /** How the backend stores an mtime; absent with `preserve_mtime: false`. */
  mtimeValue?: (mtime: Date) => string;
}

/** Compiles the `metadata:` map of a sink config (errors point at `/metadata/<name>`). */
export function compileMetadata(
  templates: Readonly<Record<string, string>>,
  options: MetadataOptions,
): MetadataTemplates {
  const { sha256Key, mtimeValue } = options;
  const compiled = Object.entries(templates).map(([name, text]) => {
    // Metadata names are case-insensitive on both services (HTTP headers).
    if (mtimeValue && name.toLowerCase() === MTIME_METADATA) {
      throw new SluiceError(
        'SLUICE_E_CONFIG',
        `metadata "${name}" is where preserve_mtime stores the source file's mtime; remove it, or set preserve_mtime: false to write your own`,
        { context: { jsonPath: `/metadata/${name}` } },
      );
    }
    return [name, compileTemplate(text, { jsonPath: `/metadata/${name}` })] as const;
  });
  return {
    needsSha256: compiled.some(([, template]) => template.needsSha256),
    keepsMtime: mtimeValue !== undefined,
    render(item, sha256) {
      const scope = { now: new Date(), sha256 };
      const rendered: Record<string, string> = {};
      for (const [name, template] of compiled) rendered[name] = template.render(item, scope);
      if (sha256 !== undefined) rendered[sha256Key] = sha256;
      if (mtimeValue && item.mtime) rendered[MTIME_METADATA] = mtimeValue(item.mtime);
      return rendered;
    },
  };
}

export interface SpooledBody {
  size: number;
  sha256: string;
  open(): Readable;
  remove(): Promise<void>;
}

/** Writes `body` to a temp file under `tempDir`, hashing it on the way. */
export async function spoolHashed(body: Readable, tempDir: string): Promise<SpooledBody> {
  await mkdir(tempDir, { recursive: true });
  const path = join(tempDir, `upload-${randomBytes(8).toString('hex')}`);
  const tap = new HashTap('sha256');
  const remove = () => rm(path, { force: true });
  try {
    await pipeline(body, tap, createWriteStream(path, { highWaterMark: STREAM_CHUNK }));
  } catch (err) {
    await remove();
    throw err;
  }
  return {
    size: tap.bytes,
    sha256: tap.digest()!,
    open: () => createReadStream(path, { highWaterMark: STREAM_CHUNK }),
    remove,
  };
}
