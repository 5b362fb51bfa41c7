/**
 * `if_exists` for object-store sinks (S3, Azure Blob). Object stores have no rename, so the
 * decision is made before the upload starts; the upload itself is atomic (multipart / block
 * list committed at the end), which makes `overwrite` safe without a temp key.
 */
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { SluiceError } from '../../core/errors.js';
import {
  existsWithOtherBytes,
  type IfExistsMode,
  noFreeName,
  renameCandidates,
} from '../../core/if-exists.js';
import type { Item, SinkCommit } from '../../core/plugin-api.js';
import { hashStream } from '../../core/streams.js';
import { joinKey } from './keys.js';

export type { IfExistsMode };

export interface StoredObject {
  size: number;
  /** The sha256 Sluice stored in the object's metadata when it wrote it, if any. */
  sha256?: string;
  /** MD5 of the bytes as the service holds it (S3 single-part ETag, Azure Content-MD5), hex. */
  md5?: string;
  /** The stored metadata `mtime` (`preserve_mtime`), else the service's last-modified time. */
  mtime?: Date;
}

/** The checksums a stored object carries, hex by algorithm (empty when none). */
export function storedChecksums(stored: StoredObject): Record<string, string> {
  return {
    ...(stored.md5 !== undefined ? { md5: stored.md5 } : {}),
    ...(stored.sha256 !== undefined ? { sha256: stored.sha256 } : {}),
  };
}

/** What the if_exists logic needs from a backend. */
export interface ObjectStoreAccess {
  /** Display form of a key, e.g. `s3://bucket/key`. */
  location(key: string): string;
  /** What the service holds at `key`, or null when there is nothing. */
  stat(key: string, signal?: AbortSignal): Promise<StoredObject | null>;
  read(key: string, signal?: AbortSignal): Promise<Readable>;
}

/**
 * Either write to `key` — `destination` relative to the sink prefix (a numbered one with
 * `rename`), `exclusive` when the write must not replace an object that appeared since the
 * check (If-None-Match: *) — or the item is already settled (`commit`) and nothing is written.
 */
export type ExistsDecision =
  | { key: string; destination: string; exclusive: boolean; commit?: undefined }
  | { key?: undefined; commit: SinkCommit };

/** What a server-side copy does: copy to `key` (see `ExistsDecision`), or nothing (`commit`). */
export type CopyDecision = ExistsDecision;

/**
 * Applies `mode` before writing `body` to `destination` under `prefix`. For `skip` and `fail` on
 * an existing object the body is consumed here (the sink contract: a write always reads its body
 * to the end). `reserve` is awaited for the name chosen before it is returned.
 */
export async function decideForWrite(
  store: ObjectStoreAccess,
  prefix: string,
  destination: string,
  mode: IfExistsMode,
  body: Readable,
  options: { signal?: AbortSignal; reserve?: (destination: string) => Promise<void> } = {},
): Promise<ExistsDecision> {
  const named = await decideByName(store, prefix, destination, mode, options);
  if (!('existing' in named)) return named;
  const { key, existing } = named;
  if (mode === 'skip') {
    await drain(body);
    return { commit: { location: store.location(key), size: existing.size, skipped: true } };
  }
  const incoming = await hashStream(body);
  if (incoming.size === existing.size) {
    const existingSha256 =
      existing.sha256 ?? (await hashStream(await store.read(key, options.signal))).digest;
    if (existingSha256 === incoming.digest) {
      return {
        commit: { location: store.location(key), size: existing.size, sha256: existingSha256, skipped: true },
      };
    }
  }
  throw existsError(store, key);
}

/**
 * Applies `mode` before a server-side copy of `item` to `destination` under `prefix`; `reserve`
 * is awaited for the name chosen. Returns null when the copy must not be done: `fail` against an
 * object whose checksum is unknown (only the bytes could tell; `write` compares them).
 */
export async function decideForCopy(
  store: ObjectStoreAccess,
  prefix: string,
  destination: string,
  mode: IfExistsMode,
  item: Item,
  options: { signal?: AbortSignal; reserve?: (destination: string) => Promise<void> } = {},
): Promise<CopyDecision | null> {
  const named = await decideByName(store, prefix, destination, mode, options);
  if (!('existing' in named)) return named;
  const { key, existing } = named;
  const settled = { commit: { location: store.location(key), size: existing.size, skipped: true } };
  if (mode === 'skip') return settled;
  const itemSha256 = item.checksums.sha256;
  if (existing.size !== item.size || !itemSha256 || !existing.sha256) return null;
  if (itemSha256 === existing.sha256) return settled;
  throw existsError(store, key);
}

/**
 * What every mode decides from names alone: `rename` takes the first free name, `overwrite` the
 * destination, and a free destination is written exclusively — each reserved right before it is
 * returned (object stores make bytes visible when the upload or copy completes, inside the
 * backend's call: this is the last point before it). Otherwise the object already there, for
 * `skip` and `fail` to judge.
 */
async function decideByName(
  store: ObjectStoreAccess,
  prefix: string,
  destination: string,
  mode: IfExistsMode,
  options: { signal?: AbortSignal; reserve?: (destination: string) => Promise<void> },
): Promise<ExistsDecision | { key: string; existing: StoredObject }> {
  const key = joinKey(prefix, destination);
  if (mode === 'rename') return freeName(store, prefix, destination, options);
  const existing = mode === 'overwrite' ? null : await store.stat(key, options.signal);
  if (existing) return { key, existing };
  await options.reserve?.(destination);
  return { key, destination, exclusive: mode !== 'overwrite' };
}

/** The first free name of `destination`, `destination (1)`… — reserved before it is returned. */
async function freeName(
  store: ObjectStoreAccess,
  prefix: string,
  destination: string,
  options: { signal?: AbortSignal; reserve?: (destination: string) => Promise<void> },
): Promise<ExistsDecision> {
  for (const candidate of renameCandidates(destination)) {
    const key = joinKey(prefix, candidate);
    if (await store.stat(key, options.signal)) continue;
    await options.reserve?.(candidate);
    return { key, destination: candidate, exclusive: true };
  }
  throw noFreeName(store.location(joinKey(prefix, destination)));
}

/**
 * An exclusive write (If-None-Match: *) found an object created at `key` after the check: the
 * attempt is retried, and the retry decides again (skip, compare, or the next numbered name).
 */
export function takenError(location: string): SluiceError {
  return new SluiceError(
    'SLUICE_E_SINK',
    `${location} was created by another writer while Sluice was writing it; nothing was replaced, the next attempt decides again`,
    { retryable: true },
  );
}

function existsError(store: ObjectStoreAccess, key: string): SluiceError {
  return existsWithOtherBytes(store.location(key));
}

async function drain(body: Readable): Promise<void> {
  body.resume();
  await finished(body);
}
