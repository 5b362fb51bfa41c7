/**
 * `if_exists` for object-store sinks (S3, Azure Blob). Object stores have no rename, so the
 * decision is made before the upload starts; the upload itself is atomic (multipart / block
 * list committed at the end), which makes `overwrite` safe without a temp key.
 */
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { SluiceError } from '../../core/errors.js';
import type { Item, SinkCommit } from '../../core/plugin-api.js';
import { hashStream } from '../../core/streams.js';
import { numberedKey } from './keys.js';

export type IfExistsMode = 'overwrite' | 'skip' | 'fail' | 'rename';

export interface StoredObject {
  size: number;
  /** The sha256 Sluice stored in the object's metadata when it wrote it, if any. */
  sha256?: string;
}

/** What the if_exists logic needs from a backend. */
export interface ObjectStoreAccess {
  /** Display form of a key, e.g. `s3://bucket/key`. */
  location(key: string): string;
  /** Size and recorded sha256 of an object, or null when there is none. */
  stat(key: string, signal?: AbortSignal): Promise<StoredObject | null>;
  read(key: string, signal?: AbortSignal): Promise<Readable>;
}

/** Either upload to `key`, or the item is already settled (`commit`) and nothing is written. */
export type ExistsDecision = { key: string; commit?: undefined } | { key?: undefined; commit: SinkCommit };

/** Most numbered names `rename` tries before giving up (a runaway loop otherwise). */
const MAX_RENAME_ATTEMPTS = 10_000;

/**
 * Applies `mode` before writing `body` to `key`. For `skip` and `fail` on an existing object the
 * body is consumed here (the sink contract: a write always reads its body to the end).
 */
export async function decideForWrite(
  store: ObjectStoreAccess,
  key: string,
  mode: IfExistsMode,
  body: Readable,
  signal?: AbortSignal,
): Promise<ExistsDecision> {
  if (mode === 'overwrite') return { key };
  if (mode === 'rename') return { key: await freeKey(store, key, signal) };
  const existing = await store.stat(key, signal);
  if (!existing) return { key };
  if (mode === 'skip') {
    await drain(body);
    return { commit: { location: store.location(key), size: existing.size, skipped: true } };
  }
  const incoming = await hashStream(body);
  if (incoming.size === existing.size) {
    const existingSha256 = existing.sha256 ?? (await hashStream(await store.read(key, signal))).digest;
    if (existingSha256 === incoming.digest) {
      return {
        commit: { location: store.location(key), size: existing.size, sha256: existingSha256, skipped: true },
      };
    }
  }
  throw existsError(store, key);
}

/**
 * Applies `mode` before a server-side copy of `item` to `key`. Returns null when only the bytes
 * could tell (`fail` against an object whose checksum is unknown): the caller then declines the
 * copy and the runtime streams the item through `write`, which can compare.
 */
export async function decideForCopy(
  store: ObjectStoreAccess,
  key: string,
  mode: IfExistsMode,
  item: Item,
  signal?: AbortSignal,
): Promise<ExistsDecision | null> {
  if (mode === 'overwrite') return { key };
  if (mode === 'rename') return { key: await freeKey(store, key, signal) };
  const existing = await store.stat(key, signal);
  if (!existing) return { key };
  const settled = { commit: { location: store.location(key), size: existing.size, skipped: true } };
  if (mode === 'skip') return settled;
  const itemSha256 = item.checksums.sha256;
  if (existing.size !== item.size || !itemSha256 || !existing.sha256) return null;
  if (itemSha256 === existing.sha256) return settled;
  throw existsError(store, key);
}

async function freeKey(store: ObjectStoreAccess, key: string, signal?: AbortSignal): Promise<string> {
  if (!(await store.stat(key, signal))) return key;
  for (let n = 1; n <= MAX_RENAME_ATTEMPTS; n++) {
    const candidate = numberedKey(key, n);
    if (!(await store.stat(candidate, signal))) return candidate;
  }
  throw new SluiceError(
    'SLUICE_E_EXISTS',
    `if_exists: rename found no free name for ${store.location(key)} after ${MAX_RENAME_ATTEMPTS} attempts`,
    { retryable: false },
  );
}

function existsError(store: ObjectStoreAccess, key: string): SluiceError {
  return new SluiceError(
    'SLUICE_E_EXISTS',
    `${store.location(key)} already exists with different content (if_exists: fail)`,
    { retryable: false },
  );
}

async function drain(body: Readable): Promise<void> {
  body.resume();
  await finished(body);
}
