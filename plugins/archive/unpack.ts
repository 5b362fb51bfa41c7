/**
 * What `decompress` does with one item: recognise its format, then gunzip it (1 → 1, a byte
 * transform) or unpack it (1 → N entries, each an item placed by `layout`).
 */
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { createGunzip } from 'node:zlib';
import { deriveItem, itemName } from '../../core/item.js';
import type { Item } from '../../core/plugin-api.js';
import { pipeThrough, STREAM_CHUNK } from '../../core/streams.js';
import {
  type ArchiveFormat,
  archiveStem,
  type FormatName,
  formatFromMagic,
  formatFromName,
  gunzippedName,
  MAGIC_BYTES_NEEDED,
  restrictFormat,
} from './detect.js';
import { type Layout, placeEntry } from './entry-path.js';
import { ByteCounter, EntryGuard, ErrorOrigins, UnpackBudget, type UnpackLimits } from './limits.js';
import { peekStream, readHead } from './peek.js';
import type { RawEntry } from './raw-entry.js';
import { spoolPath, spoolTo } from './spool.js';
import { prescanTar, readTarEntries } from './tar.js';
import { readZipEntries } from './zip.js';

export interface UnpackSettings {
  limits: UnpackLimits;
  layout: Layout;
  formats: ReadonlySet<FormatName>;
  /** Peek at the first bytes of files whose name announces no format. */
  sniff: boolean;
  /** Also unpack archives and gzip files found inside archives, up to `maxDepth` levels. */
  recursive: boolean;
  maxDepth: number;
  /** Spool a tar and check every header before yielding its first entry. */
  tarPrescan: boolean;
  tempDir: string;
}

/** Step output for one listed item: the same item when it is neither compressed nor an archive. */
export async function decompressItem(
  item: Item,
  settings: UnpackSettings,
  signal?: AbortSignal,
): Promise<Item | AsyncIterable<Item>> {
  let format = formatFromName(itemName(item));
  if (!format && settings.sniff)
    format = formatFromMagic(await readHead(await item.open(signal), MAGIC_BYTES_NEEDED));
  const allowed = format && restrictFormat(format, settings.formats);
  if (!allowed) return item;
  return allowed === 'gzip'
    ? gunzippedItem(item, settings.limits)
    : unpackArchive(item, allowed, settings, 0, signal);
}

function gunzippedItem(gz: Item, limits: UnpackLimits, parent?: UnpackBudget): Item {
  const path = posix.join(posix.dirname(gz.path), gunzippedName(itemName(gz)));
  return deriveItem(gz, {
    path,
    open: async (signal) => {
      const budget = new UnpackBudget(limits, gz.path, parent);
      const origins = new ErrorOrigins(gz.path, 'gzip file');
      const source = origins.watchSource(await gz.open(signal));
      return pipeThrough(
        source,
        new ByteCounter((bytes) => {
          budget.bytesIn = bytes;
        }),
        createGunzip({ chunkSize: STREAM_CHUNK }),
        new EntryGuard({ budget, origins }),
      );
    },
  });
}

const FORMAT_LABEL: Record<Exclude<ArchiveFormat, 'gzip'>, string> = {
  zip: 'zip archive',
  tar: 'tar archive',
  tar_gz: 'tar.gz archive',
};

async function* unpackArchive(
  archive: Item,
  format: Exclude<ArchiveFormat, 'gzip'>,
  settings: UnpackSettings,
  depth: number,
  signal?: AbortSignal,
  parent?: UnpackBudget,
): AsyncGenerator<Item> {
  const budget = new UnpackBudget(settings.limits, archive.path, parent);
  const origins = new ErrorOrigins(archive.path, FORMAT_LABEL[format]);
  const stem = archiveStem(itemName(archive));
  const spooled: string[] = [];
  const source = origins.watchSource(await archive.open(signal));
  // Bytes of compressed input read, for the ratio; a prescan budget sees the same figure.
  const prescanBudget = new UnpackBudget(settings.limits, archive.path);
  const counter = new ByteCounter((bytes) => {
    budget.bytesIn = bytes;
    prescanBudget.bytesIn = bytes;
  });
  const gunzip = () => (format === 'tar_gz' ? [createGunzip({ chunkSize: STREAM_CHUNK })] : []);
  try {
    let entries: AsyncGenerator<RawEntry>;
    if (format === 'zip') {
      const path = await spoolPath(settings.tempDir, '.zip');
      spooled.push(path);
      await spoolTo(path, source, counter);
      entries = readZipEntries(path, (await stat(path)).size, budget, origins);
    } else if (settings.tarPrescan) {
      const path = await spoolPath(settings.tempDir, '.tar');
      spooled.push(path);
      await spoolTo(
        path,
        source,
        counter,
        ...gunzip(),
        new EntryGuard({ budget: prescanBudget, origins }),
      ).catch((err: Error) => Promise.reject(origins.classify(err)));
      const readSpool = () => createReadStream(path, { highWaterMark: STREAM_CHUNK });
      await prescanTar(readSpool(), prescanBudget, origins);
      entries = readTarEntries(readSpool(), budget, origins);
    } else {
      entries = readTarEntries(pipeThrough(source, counter, ...gunzip()), budget, origins);
    }
    for await (const raw of entries) {
      const entry = entryItem(archive, raw, stem, settings.layout);
      if (settings.recursive && depth < settings.maxDepth)
        yield* expandNested(entry, settings, depth + 1, budget);
      else yield entry;
    }
  } finally {
    source.destroy();
    await Promise.all(spooled.map((path) => rm(path, { force: true })));
  }
}

function entryItem(archive: Item, raw: RawEntry, stem: string, layout: Layout): Item {
  const meta: Record<string, unknown> = { ...archive.meta, archive: archive.path };
  if (raw.mtime) meta.entry_mtime = raw.mtime.toISOString();
  const item = deriveItem(archive, {
    path: placeEntry(archive.path, stem, raw.name, layout),
    size: raw.size,
    meta,
    open: async () => raw.open(),
  });
  // The archive's etag names the archive's bytes, not this entry's. An entry keeps the archive's
  // mtime: it is the listed file's time, what `date: {from: mtime}` routes by and what a sink
  // with preserve_mtime stores; the entry's own time is `meta.entry_mtime`.
  return { ...item, etag: undefined };
}

/** An entry inside an archive, unpacked in turn when it is itself compressed or an archive. */
async function* expandNested(
  entry: Item,
  settings: UnpackSettings,
  depth: number,
  parent: UnpackBudget,
): AsyncGenerator<Item> {
  let item = entry;
  let format = formatFromName(itemName(entry));
  if (!format && settings.sniff) {
    // An entry can be opened only once: hand on the peeked stream itself.
    const peeked = await peekStream(await entry.open(), MAGIC_BYTES_NEEDED);
    item = { ...entry, open: async () => peeked.stream };
    format = formatFromMagic(peeked.head);
  }
  const allowed = format && restrictFormat(format, settings.formats);
  if (!allowed) yield item;
  else if (allowed === 'gzip') yield gunzippedItem(item, settings.limits, parent);
  else yield* unpackArchive(item, allowed, settings, depth, undefined, parent);
}
