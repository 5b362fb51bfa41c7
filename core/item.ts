import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { escapeControl, SluiceError } from './errors.js';
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
  /** See `Item.root`: the configured root this item was listed under (multi-root sources). */
  root?: string;
  /** See `Item.storedAt`: where the bytes are when not at `path`. */
  storedAt?: string;
}

/**
 * Makes an item as a source lists it. `path` is normalised to a relative POSIX path without
 * changing which file it names (see `normalizeItemPath`).
 */
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
    ...(init.root !== undefined ? { root: init.root } : {}),
    ...(init.storedAt !== undefined ? { storedAt: init.storedAt } : {}),
  };
}

export interface ItemChanges {
  path?: string;
  meta?: Record<string, unknown>;
  date?: Date;
  destination?: string;
  /** Named regex groups for `{match.NAME}` (replaces the item's). */
  match?: Readonly<Record<string, string>>;
  size?: number;
  checksums?: Record<string, string>;
  /** New bytes: clears size, checksums, origin and `writeTo` unless given again. */
  open?: (signal?: AbortSignal) => Promise<Readable>;
  /** The new bytes written into a file by the step itself (see `Item.writeTo`); only with `open`. */
  writeTo?: (fd: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Returns a new item with `changes` applied. Giving `open` means the bytes changed: size,
 * checksums, origin (server-side copy) and a `writeTo` of the old bytes no longer hold and are
 * dropped unless given.
 */
export function deriveItem(item: Item, changes: ItemChanges): Item {
  const bytesChanged = changes.open !== undefined;
  const { writeTo, ...rest } = item;
  const writer = bytesChanged ? changes.writeTo : writeTo;
  return {
    ...rest,
    ...(writer !== undefined ? { writeTo: writer } : {}),
    path: changes.path !== undefined ? normalizeItemPath(changes.path) : item.path,
    meta: changes.meta ?? item.meta,
    date: changes.date ?? item.date,
    destination: 'destination' in changes ? changes.destination : item.destination,
    match: changes.match ?? item.match,
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
  // Under several roots the same relative path is another file: the root is part of its name.
  const path = item.root === undefined ? item.path : posix.join(item.root, item.path);
  return { source: item.source, path, version };
}

/**
 * Drops leading `./` and `/` and collapses `//`: only spellings of the same path. A backslash
 * is a character of a POSIX file name (`a\b.txt` is one file, not `a/b.txt`), so it stays.
 */
export function normalizeItemPath(path: string): string {
  return path
    .replace(/\/{2,}/g, '/')
    .replace(/^(\.\/)+/, '')
    .replace(/^\/+/, '');
}

/**
 * Why a listed name cannot be an item path, or undefined when it can. A control character
 * (NUL, newline…) breaks logs, listings and protocols; U+FFFD is what a client library
 * decodes undecodable bytes into (SFTP and FTP names are bytes), so such a name no longer
 * addresses the file it came from — it could even address another one.
 */
export function unsafeNameReason(name: string): string | undefined {
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'its name holds a control character (NUL, newline, tab…)';
  if (name.includes('\ufffd')) {
    return 'its name is not valid UTF-8 (the bytes decode to U+FFFD, so it cannot be addressed again); rename it at the source';
  }
  return undefined;
}

/**
 * True when a file found at an item's path is still the version that was listed: same size
 * and mtime, the mtime compared at `mtimePrecisionMs` (FTP and SFTP give whole seconds).
 * A field the listing did not give is not compared.
 */
export function isListedVersion(
  item: Pick<Item, 'size' | 'mtime'>,
  found: { size: number; mtime?: Date },
  mtimePrecisionMs = 1,
): boolean {
  if (item.size !== undefined && item.size !== found.size) return false;
  if (item.mtime === undefined || found.mtime === undefined) return true;
  const at = (d: Date) => Math.floor(d.getTime() / mtimePrecisionMs);
  return at(item.mtime) === at(found.mtime);
}

const ASIDE_NAME = /^\.(.+)\.sluice-tidy-[0-9a-f]{12}$/;

/**
 * The hidden name a file-system source renames a listed file to while it checks its version
 * before a delete or move. It is derived from the item's path and version, so a retry after a
 * lost connection finds the file an earlier attempt set aside, and it holds the whole name, so
 * a listing after a crash can tell which file it was (see `asideOriginal`).
 */
export function asideName(item: Pick<Item, 'source' | 'path' | 'size' | 'mtime'>): string {
  const version = `${item.source}\0${item.path}\0${item.size ?? '?'}\0${item.mtime?.getTime() ?? '?'}`;
  const hex = createHash('sha256').update(version).digest('hex').slice(0, 12);
  return `.${itemName(item)}.sluice-tidy-${hex}`;
}

/** The name of the file an aside name was made for; undefined for any other name. */
export function asideOriginal(name: string): string | undefined {
  return ASIDE_NAME.exec(name)?.[1];
}

/**
 * A file a tidy-up set aside and a crash left there, found by a listing: the item it was,
 * when it still is that version (its tidy-up is then redone: the runtime's ledger holds it as
 * delivered), or why it is reported instead (another version: only a person can tell which).
 */
export function strandedAside(
  source: string,
  relDir: string,
  name: string,
  found: { size: number; mtime?: Date },
): { path: string; rejected?: string } | undefined {
  const original = asideOriginal(name);
  if (original === undefined) return undefined;
  const path = relDir === '' ? original : `${relDir}/${original}`;
  if (asideName({ source, path, size: found.size, mtime: found.mtime }) === name) return { path };
  return {
    path: relDir === '' ? name : `${relDir}/${name}`,
    rejected: `an interrupted tidy-up left this file aside, and it is not the version it set aside: rename it back to "${escapeControl(original)}" to have it processed`,
  };
}

/** What `tidyListedVersion` needs from a file system; paths are the backend's own. */
export interface AsideOps {
  /** undefined when nothing is at `path`; `file` false for a folder, link or device. */
  stat(path: string): Promise<{ size: number; mtime?: Date; file: boolean } | undefined>;
  /** Renames unless `to` exists (then false, nothing done); throws when `from` is missing. */
  renameIfAbsent(from: string, to: string): Promise<boolean>;
}

/**
 * Deletes or moves a listed file only if it is still the listed version: renames it aside
 * (atomically: a producer replacing the file now replaces the name, not our aside copy), checks
 * the aside file's size and mtime, then runs `act` on it. Another version is renamed back and
 * reported as SLUICE_E_CHANGED, for the next pass to take. A file already gone is not an error.
 */
export async function tidyListedVersion(
  fs: AsideOps,
  item: Pick<Item, 'source' | 'path' | 'size' | 'mtime'>,
  path: string,
  aside: string,
  act: (aside: string) => Promise<void>,
  mtimePrecisionMs = 1,
): Promise<void> {
  if (!(await fs.stat(aside))) {
    try {
      await fs.renameIfAbsent(path, aside);
    } catch (err) {
      if (!(await fs.stat(path)) && !(await fs.stat(aside))) return; // already gone
      throw err;
    }
  }
  const found = await fs.stat(aside);
  if (!found) return;
  const where = `${item.source}:${escapeControl(item.path)}`;
  if (found.file && isListedVersion(item, found, mtimePrecisionMs)) {
    try {
      await act(aside);
    } catch (err) {
      await fs.renameIfAbsent(aside, path).catch(() => false);
      throw err;
    }
    return;
  }
  const restored = await fs.renameIfAbsent(aside, path).catch(() => false);
  const listed = `${item.size ?? '?'} bytes, mtime ${item.mtime?.toISOString() ?? '?'}`;
  const now = found.file
    ? `${found.size} bytes, mtime ${found.mtime?.toISOString() ?? '?'}`
    : 'not a regular file';
  throw new SluiceError(
    'SLUICE_E_CHANGED',
    `${where} changed since it was listed (listed ${listed}; now ${now}): not tidied, left for the next pass${
      restored ? '' : `; a newer file took its name meanwhile, so this version stays at ${aside}`
    }`,
    { retryable: false },
  );
}
