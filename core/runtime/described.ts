/**
 * Items as metadata: what a queued job carries to re-open an item elsewhere (never bytes), and
 * the item rebuilt from it, its bytes re-opened from the source by path.
 */
import { SluiceError } from '../errors.js';
import type { Item } from '../plugin-api.js';
import type { PluginDriver } from './driver.js';

/** A listed item and the name of the source that listed it. */
export interface ListedItem {
  source: string;
  item: Item;
}

/** What a queued job carries to re-open an item elsewhere: metadata, never bytes. */
export interface ItemDescription {
  source: string;
  path: string;
  size?: number;
  /** epoch ms */
  mtime?: number;
  etag?: string;
  checksums?: Record<string, string>;
  meta?: Record<string, unknown>;
  origin?: Item['origin'];
  /** `Item.root` of a multi-root source. */
  root?: string;
  /** `Item.storedAt`: where the bytes are when not at `path` (a file a tidy-up left aside). */
  storedAt?: string;
}

/** The serialisable description of a listed item (what a queued job carries). */
export function describeItem(listed: ListedItem): ItemDescription {
  const { item } = listed;
  return {
    source: listed.source,
    path: item.path,
    size: item.size,
    mtime: item.mtime?.getTime(),
    etag: item.etag,
    checksums: Object.keys(item.checksums).length ? { ...item.checksums } : undefined,
    meta: Object.keys(item.meta).length ? { ...item.meta } : undefined,
    origin: item.origin,
    ...(item.root !== undefined ? { root: item.root } : {}),
    ...(item.storedAt !== undefined ? { storedAt: item.storedAt } : {}),
  };
}

/**
 * Rebuilds a listed item from its description: its bytes are re-opened from the source by
 * path, so a retry or another worker reads them afresh.
 */
export function reviveItem(driver: PluginDriver, desc: ItemDescription): ListedItem {
  const source = driver.source(desc.source);
  if (!source.instance.openPath) {
    throw new SluiceError(
      'SLUICE_E_CONFIG',
      `the ${source.ref.name} source cannot open files by path, so it cannot be distributed`,
    );
  }
  const item: Item = {
    source: desc.source,
    path: desc.path,
    size: desc.size,
    mtime: desc.mtime === undefined ? undefined : new Date(desc.mtime),
    etag: desc.etag,
    checksums: desc.checksums ?? {},
    meta: desc.meta ?? {},
    origin: desc.origin,
    ...(desc.root !== undefined ? { root: desc.root } : {}),
    ...(desc.storedAt !== undefined ? { storedAt: desc.storedAt } : {}),
    open: async (signal?: AbortSignal) => {
      // A file left aside is read where it is, not at the path it is listed under.
      // Pinned to the listed version where the source can (If-Match on its etag): a replaced
      // object fails the read instead of being delivered under the listed identity.
      const version = desc.etag !== undefined ? { etag: desc.etag } : undefined;
      const stream = await driver.openPath(source, desc.storedAt ?? desc.path, signal, desc.root, version);
      if (!stream) {
        throw new SluiceError(
          'SLUICE_E_SOURCE',
          `${desc.source}:${desc.path} no longer exists at the source`,
          { retryable: false },
        );
      }
      return stream;
    },
  };
  return { source: desc.source, item };
}
