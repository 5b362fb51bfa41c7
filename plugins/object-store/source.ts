/**
 * The listing, reading and tidying half shared by the S3 and Azure Blob sources: each connector
 * is an adapter (`SourceBackend`) for its service's calls; the rules live here once.
 *
 * - A key is one name: an item's path is its key below the prefix exactly, or the item is
 *   rejected (`Item.rejected`) — never opened, deleted or moved under another key. Every later
 *   call (read, delete, copy) uses the exact listed key, carried in the item's origin.
 * - Tidy-up acts on the listed version only: delete and move are conditional on the listed etag;
 *   a changed object is left for the next pass (`SLUICE_E_CHANGED`).
 * - Every listing ends: a continuation token that comes back twice stops it with an error.
 */
import type { Readable } from 'node:stream';
import { escapeControl, SluiceError } from '../../core/errors.js';
import { createItem, normalizeItemPath } from '../../core/item.js';
import type { Item, ItemOrigin, PathVersion, SourceInstance } from '../../core/plugin-api.js';
import { type CheckTarget, checking } from './check.js';
import { displayKey, folderPrefix, joinKey, unquotedEtag, unsafeKeyReason } from './keys.js';

export interface ListedObject {
  key: string;
  size?: number;
  mtime?: Date;
  /** As the service reports it, quoted or not. */
  etag?: string;
  /** Checksums the service holds for these bytes, hex by algorithm (`md5`, `sha256`). */
  checksums?: Record<string, string>;
  /** Set when the service's listing cannot be turned back into the exact key (then `key` is as given). */
  unreadable?: string;
}

export interface ListPage {
  objects: ListedObject[];
  /** Token of the next page; undefined on the last. */
  next?: string;
}

/** The version a tidy-up may act on: what the listing said. */
export interface ListedVersion {
  /** Unquoted. */
  etag?: string;
  size?: number;
}

export interface SourceBackend {
  /** Display form of a key, e.g. `s3://bucket/key`. */
  location(key: string): string;
  /** One page of the objects under `prefix` (a folder prefix, `` for all). */
  listPage(
    prefix: string,
    recursive: boolean,
    token: string | undefined,
    signal: AbortSignal,
  ): Promise<ListPage>;
  /**
   * What the listing alone does not tell (S3 `read_metadata`: a HeadObject each), added to a
   * page before its items are made; absent when the listing says it all.
   */
  describe?(objects: ListedObject[], signal: AbortSignal): Promise<ListedObject[]>;
  /** Pre-flight: the root and how to read the service's errors. */
  readonly checks: CheckTarget;
  /** Reads `key`; with `etag` only that version (a replaced object fails the read). */
  read(key: string, options: { signal?: AbortSignal; etag?: string }): Promise<Readable>;
  isNotFound(err: unknown): boolean;
  origin(key: string): ItemOrigin;
  /** The exact key an origin names when it is an object of this source's bucket or container. */
  keyFromOrigin(origin: ItemOrigin | undefined): string | undefined;
  /**
   * Deletes `key` only while it is still `version` (conditional request, plus whatever check
   * the service needs); throws `changedError` when it is not, returns quietly when it is gone.
   */
  deleteVersion(key: string, version: ListedVersion): Promise<void>;
  /** Server-side copy of `key` (only while it is `version`, else `changedError`) to `toKey`. */
  copyVersion(key: string, version: ListedVersion, toKey: string): Promise<void>;
  /** The error to report for a failed call (`what` failed, the service's reason, retry class). */
  error(what: string, err: unknown): SluiceError;
}

export interface ObjectStoreSourceOptions {
  /** Name items carry as `source`. */
  sourceName: string;
  /** Folders listed in order (a key under two of them is listed once), as configured. */
  prefixes: string[];
  /** `first`: a relative path is taken only from the first prefix that has it. */
  match?: 'all' | 'first';
  recursive: boolean;
  log: { debug(fields: Record<string, unknown>, message: string): void };
}

/** A tidy-up found another version than the listed one at the key. */
export function changedError(location: string, action: string, now: string): SluiceError {
  return new SluiceError(
    'SLUICE_E_CHANGED',
    `${location} was not ${action}: it changed after it was listed (${now}); the new version is left for the next pass`,
    { retryable: false },
  );
}

/** How the object now at a key differs from the listed version, or undefined when it does not. */
export function versionChange(
  listed: ListedVersion,
  now: { etag?: string; size?: number },
): string | undefined {
  const etag = unquotedEtag(now.etag);
  if (listed.etag !== undefined && etag !== undefined && etag !== listed.etag) {
    return `etag ${listed.etag} when listed, ${etag} now`;
  }
  if (listed.size !== undefined && now.size !== undefined && now.size !== listed.size) {
    return `${listed.size} bytes when listed, ${now.size} now`;
  }
  return undefined;
}

/** The listing, reading and tidy-up of a source (the connector adds isRetryable and close). */
export function createObjectStoreSource(
  backend: SourceBackend,
  options: ObjectStoreSourceOptions,
): Pick<SourceInstance, 'list' | 'openPath' | 'pinsVersions' | 'remove' | 'move' | 'check'> {
  const prefixes = options.prefixes.map(folderPrefix);
  const keysByItem = new WeakMap<Item, string>();

  // Items carry the prefix as configured, only when there are several to tell apart.
  const rootOf = (index: number): string | undefined =>
    options.prefixes.length > 1 ? options.prefixes[index] : undefined;
  /** With `match: first`, the relative paths earlier prefixes served. */
  const served = options.match === 'first' && prefixes.length > 1 ? new Set<string>() : undefined;
  const makeItem = (prefix: string, object: ListedObject, root: string | undefined): Item => {
    const { key } = object;
    const relative = key.startsWith(prefix) ? key.slice(prefix.length) : key;
    const etag = unquotedEtag(object.etag);
    const unsafe =
      object.unreadable ??
      unsafeKeyReason(relative) ??
      (normalizeItemPath(relative) !== relative
        ? 'the item path model would turn it into another path'
        : undefined);
    if (unsafe !== undefined) {
      const rejected = `the key "${escapeControl(key)}" cannot be processed safely: ${unsafe}; it is left in place`;
      return createItem({
        source: options.sourceName,
        path: displayKey(relative),
        size: object.size,
        mtime: object.mtime,
        etag,
        rejected,
        root,
        open: async () => {
          throw new SluiceError('SLUICE_E_NAME', rejected, { retryable: false });
        },
      });
    }
    const item = createItem({
      source: options.sourceName,
      path: relative,
      size: object.size,
      mtime: object.mtime,
      etag,
      checksums: object.checksums,
      origin: backend.origin(key),
      root,
      open: async (signal) => {
        try {
          return await backend.read(key, { signal, etag });
        } catch (err) {
          throw backend.error(`cannot read ${backend.location(key)}`, err);
        }
      },
    });
    keysByItem.set(item, key);
    return item;
  };

  /**
   * The exact key of an item this source listed — also when a step derived a new item from it
   * (the origin survives) or a worker revived it. Only an item known by path alone (a
   * companion) is looked up under the first prefix.
   */
  const keyOf = (item: Item): string =>
    keysByItem.get(item) ??
    backend.keyFromOrigin(item.origin) ??
    joinKey(item.root === undefined ? prefixes[0] : prefixOfRoot(item.root), item.path);

  /** The folder prefix of a root as configured (`Item.root`); an unknown root names nothing here. */
  function prefixOfRoot(root: string): string {
    const index = options.prefixes.indexOf(root);
    if (index < 0) {
      throw new SluiceError(
        'SLUICE_E_NAME',
        `root ${JSON.stringify(root)} is not one of this source's prefixes (${options.prefixes.join(', ')})`,
        { retryable: false },
      );
    }
    return prefixes[index];
  }

  const versionOf = (item: Item): ListedVersion => ({ etag: item.etag, size: item.size });

  /** True when an earlier prefix already listed `key` (overlapping prefixes). */
  const listedEarlier = (key: string, index: number): boolean =>
    prefixes
      .slice(0, index)
      .some((p) => key.startsWith(p) && (options.recursive || !key.slice(p.length).includes('/')));

  /** One page of `prefix` with what `describe` adds; failures as the service's errors. */
  async function fetchPage(
    prefix: string,
    token: string | undefined,
    signal: AbortSignal,
  ): Promise<ListPage> {
    try {
      const page = await backend.listPage(prefix, options.recursive, token, signal);
      return backend.describe ? { ...page, objects: await backend.describe(page.objects, signal) } : page;
    } catch (err) {
      throw backend.error(`cannot list ${backend.location(prefix)}`, err);
    }
  }

  /**
   * The items under `prefix`, page by page: the next page is asked for as soon as one arrives,
   * so it comes while the runtime works through this one; at most two pages are held.
   */
  async function* listPrefix(prefix: string, index: number, signal: AbortSignal): AsyncGenerator<Item> {
    const tokens = new Set<string>();
    let pending: Promise<ListPage> | undefined = fetchPage(prefix, undefined, signal);
    try {
      while (pending !== undefined) {
        const page: ListPage = await pending;
        const token = page.next;
        // A token given before is not asked for again (see below); the listing ends at it.
        const repeated = token !== undefined && tokens.has(token);
        pending =
          token === undefined || repeated || signal.aborted ? undefined : fetchPage(prefix, token, signal);
        if (token !== undefined) tokens.add(token);
        for (const object of page.objects) {
          if (object.unreadable === undefined) {
            // Keys ending in `/` are folder markers made by consoles and tools, not files.
            if (
              object.key.endsWith('/') ||
              !object.key.startsWith(prefix) ||
              listedEarlier(object.key, index)
            )
              continue;
          }
          const item = makeItem(prefix, object, rootOf(index));
          if (served && item.rejected === undefined) {
            if (served.has(item.path)) {
              options.log.debug(
                { key: object.key, root: item.root },
                'hidden by the same path under an earlier prefix (match: first)',
              );
              continue;
            }
            served.add(item.path);
          }
          yield item;
        }
        // A service that hands out a token again would have the listing go round for ever.
        if (repeated) {
          throw new SluiceError(
            'SLUICE_E_SOURCE',
            `cannot list ${backend.location(prefix)}: the service returned a continuation token it had already given (the listing would never end)`,
            { retryable: true },
          );
        }
      }
    } finally {
      // A page read ahead for a consumer that stopped: its failure is of no interest.
      pending?.catch(() => {});
    }
  }

  return {
    async check({ depth, signal }) {
      const target = backend.checks;
      await checking(target, 'SLUICE_E_SOURCE', 'reach', () => target.proveRoot(signal));
      const proven = `${target.noun} "${target.name}" at ${target.endpoint} exists, credentials accepted`;
      if (depth === 'cheap') return { detail: proven };
      const listed: string[] = [];
      for (const prefix of prefixes) {
        const page = await checking(target, 'SLUICE_E_SOURCE', 'list', () =>
          backend.listPage(prefix, options.recursive, undefined, signal),
        );
        listed.push(
          `${backend.location(prefix)} listed (${page.objects.length}${page.next ? '+' : ''} on the first page)`,
        );
      }
      return { detail: `${proven}; ${listed.join(', ')}` };
    },

    async *list(signal: AbortSignal) {
      for (const [index, prefix] of prefixes.entries()) {
        if (signal.aborted) return;
        yield* listPrefix(prefix, index, signal);
      }
    },

    pinsVersions: true,

    async openPath(
      path: string,
      signal?: AbortSignal,
      root?: string,
      version?: PathVersion,
    ): Promise<Readable | null> {
      // A path that is not a safe key below the prefix names no listed item.
      if (unsafeKeyReason(path) !== undefined) return null;
      // Beside an item of a known root (a companion, a ready marker): in that prefix only, never
      // another prefix's file of the same relative path.
      for (const prefix of root === undefined ? prefixes : [prefixOfRoot(root)]) {
        const key = joinKey(prefix, path);
        try {
          // With a version: that one only (If-Match), as the listed item reads it.
          return await backend.read(key, { signal, etag: version?.etag });
        } catch (err) {
          if (!backend.isNotFound(err)) throw backend.error(`cannot read ${backend.location(key)}`, err);
        }
      }
      return null;
    },

    async remove(item: Item) {
      const key = keyOf(item);
      try {
        await backend.deleteVersion(key, versionOf(item));
      } catch (err) {
        throw backend.error(`cannot delete ${backend.location(key)}`, err);
      }
    },

    async move(item: Item, toDir: string) {
      const key = keyOf(item);
      const target = joinKey(folderPrefix(toDir), item.path);
      if (target === key) {
        throw new SluiceError('SLUICE_E_SOURCE', `cannot move ${backend.location(key)} onto itself`, {
          retryable: false,
        });
      }
      const version = versionOf(item);
      try {
        await backend.copyVersion(key, version, target);
      } catch (err) {
        throw backend.error(`cannot copy ${backend.location(key)} to ${backend.location(target)}`, err);
      }
      try {
        await backend.deleteVersion(key, version);
      } catch (err) {
        throw backend.error(
          `cannot delete ${backend.location(key)} after copying it to ${backend.location(target)}`,
          err,
        );
      }
      options.log.debug({ from: key, to: target }, 'object moved');
    },
  };
}
