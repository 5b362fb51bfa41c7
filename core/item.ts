import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { Item, ItemIdentity, ItemOrigin } from './plugin-api.js';

export interface NewItem {
  source: string;
  path: string;
  size?: number;
  mtime?: Date;
  etag?: string;
  checksums?: Record<string, string>;
  meta?: Record<string, unknown>;
  origin?: ItemOrigin;
  open(signal?: AbortSignal): Promise<Readable>;
  /** See `Item.rejected`: the entry is reported as a failed item, never opened or tidied. */
  rejected?: string;
}

/** Makes an item as a source lists it. `path` is normalised to a relative POSIX path. */
export function createItem(init: NewItem): Item {
  return {
    source: init.source,
    path: normalizeItemPath(init.path),
    size: init.size,
    mtime: init.mtime,
    etag: init.etag,
    checksums: init.checksums ?? {},
    meta: init.meta ?? {},
    origin: init.origin,
    open: init.open,
    ...(init.rejected !== undefined ? { rejected: init.rejected } : {}),
  };
}

export interface ItemChanges {
  path?: string;
  meta?: Record<string, unknown>;
  date?: Date;
  destination?: string;
  size?: number;
  checksums?: Record<string, string>;
  /** New bytes: clears size, checksums and origin unless given again. */
  open?: (signal?: AbortSignal) => Promise<Readable>;
}

/**
 * Returns a new item with `changes` applied. Giving `open` means the bytes changed: size,
 * checksums and origin (server-side copy) no longer hold and are dropped unless given.
 */
export function deriveItem(item: Item, changes: ItemChanges): Item {
  const bytesChanged = changes.open !== undefined;
  return {
    ...item,
    path: changes.path !== undefined ? normalizeItemPath(changes.path) : item.path,
    meta: changes.meta ?? item.meta,
    date: changes.date ?? item.date,
    destination: 'destination' in changes ? changes.destination : item.destination,
    size: 'size' in changes ? changes.size : bytesChanged ? undefined : item.size,
    checksums: changes.checksums ?? (bytesChanged ? {} : item.checksums),
    origin: bytesChanged ? undefined : item.origin,
    open: changes.open ?? item.open,
  };
}

export function itemName(item: Pick<Item, 'path'>): string {
  return posix.basename(item.path);
}

/** Extension without the dot (`csv` for `a.csv`, `gz` for `a.csv.gz`, `` for none). */
export function itemExt(item: Pick<Item, 'path'>): string {
  const name = itemName(item);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1) : '';
}

export function itemStem(item: Pick<Item, 'path'>): string {
  const name = itemName(item);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(0, dot) : name;
}

/** Folder part of the path, `` at the root. */
export function itemDir(item: Pick<Item, 'path'>): string {
  const dir = posix.dirname(item.path);
  return dir === '.' ? '' : dir;
}

export function itemIdentity(item: Item): ItemIdentity {
  const version = item.etag
    ? `etag:${item.etag}`
    : `${item.size ?? '?'}:${item.mtime ? item.mtime.getTime() : '?'}`;
  return { source: item.source, path: item.path, version };
}

/** Turns backslashes into slashes, drops leading `./` and `/`, collapses `//`. */
export function normalizeItemPath(path: string): string {
  return path.replace(/\\/g, '/').replace(/\/{2,}/g, '/').replace(/^(\.\/)+/, '').replace(/^\/+/, '');
}
