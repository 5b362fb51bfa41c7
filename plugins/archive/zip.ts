/**
 * Zip through its central directory, read from a spooled copy: unlike streaming parsers this
 * handles data descriptors, stored entries and zip64, and lets every entry be checked before
 * the first one is handed on. Entry bytes are read and inflated here (1 MiB zlib chunks) and
 * checked against the declared size and CRC-32.
 */
import { createReadStream } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createInflateRaw } from 'node:zlib';
import { pipeThrough, STREAM_CHUNK } from '../../core/streams.js';
import { badDataError, EntryGuard, type ErrorOrigins, limitError, type UnpackBudget } from './limits.js';
import { type RawEntry, safeEntryName } from './raw-entry.js';
import { type CentralRecord, readCentralDirectory } from './zip-directory.js';

const FLAG_ENCRYPTED = 0x1;
const METHOD_STORED = 0;
const METHOD_DEFLATED = 8;
const LOCAL_HEADER_SIGNATURE = 0x04034b50;
const LOCAL_HEADER_SIZE = 30;
const MADE_BY_UNIX = 3;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

/**
 * Yields the files of the zip at `path`. Every name, type, count and declared size is checked
 * before the first entry is yielded, so a bad archive yields nothing at all.
 */
export async function* readZipEntries(
  path: string,
  archiveSize: number,
  budget: UnpackBudget,
  origins: ErrorOrigins,
): AsyncGenerator<RawEntry> {
  const archive = budget.archive;
  const handle = await open(path, 'r');
  try {
    const entries = await checkedEntries(handle, archiveSize, budget);
    for (const entry of entries) {
      const dataStart = await localDataOffset(handle, entry, archive);
      if (dataStart + entry.compressedSize > archiveSize) {
        throw badDataError(archive, `entry "${entry.name}" runs past the end of the file (truncated zip)`);
      }
      yield {
        name: entry.name,
        size: entry.uncompressedSize,
        mtime: entry.mtime,
        open: () => {
          const compressed =
            entry.compressedSize === 0
              ? Readable.from([], { objectMode: false })
              : origins.watchSource(
                  createReadStream(path, {
                    start: dataStart,
                    end: dataStart + entry.compressedSize - 1,
                    highWaterMark: STREAM_CHUNK,
                  }),
                );
          const guard = new EntryGuard({
            budget,
            origins,
            entry: entry.name,
            expectedSize: entry.uncompressedSize,
            expectedCrc32: entry.crc32,
          });
          return entry.compressionMethod === METHOD_DEFLATED
            ? pipeThrough(compressed, createInflateRaw({ chunkSize: STREAM_CHUNK }), guard)
            : pipeThrough(compressed, guard);
        },
      };
    }
  } finally {
    await handle.close();
  }
}

async function checkedEntries(
  handle: FileHandle,
  archiveSize: number,
  budget: UnpackBudget,
): Promise<CentralRecord[]> {
  const archive = budget.archive;
  const records = await readCentralDirectory(handle, archiveSize, budget.limits.maxEntries, archive);
  const entries: CentralRecord[] = [];
  let declaredTotal = 0;
  for (const record of records) {
    const raw = record.name;
    const name = safeEntryName(archive, raw);
    const unixType =
      record.versionMadeBy >> 8 === MADE_BY_UNIX ? (record.externalAttributes >>> 16) & S_IFMT : 0;
    if (name === '' || /[/\\]$/.test(raw) || unixType === S_IFDIR) continue;
    if (unixType !== 0 && unixType !== S_IFREG) {
      throw limitError(archive, `entry "${raw}" is a link or special file; only regular files are unpacked`);
    }
    if (record.flags & FLAG_ENCRYPTED)
      throw badDataError(archive, `entry "${raw}" is encrypted (not supported)`);
    if (record.compressionMethod !== METHOD_STORED && record.compressionMethod !== METHOD_DEFLATED) {
      throw badDataError(
        archive,
        `entry "${raw}" uses compression method ${record.compressionMethod}; only stored and deflated entries are supported`,
      );
    }
    budget.addEntry(name);
    budget.checkEntrySize(name, record.uncompressedSize);
    declaredTotal += record.uncompressedSize;
    entries.push({ ...record, name });
  }
  // Declared sizes are checked up front so an honest bomb yields nothing; the bytes are
  // checked again while streaming, so a lying one is stopped too.
  budget.checkGrowth(declaredTotal);
  return entries;
}

/** Offset of an entry's data: after its local header, whose name/extra lengths may differ. */
async function localDataOffset(handle: FileHandle, entry: CentralRecord, archive: string): Promise<number> {
  const header = Buffer.alloc(LOCAL_HEADER_SIZE);
  const { bytesRead } = await handle.read(header, 0, LOCAL_HEADER_SIZE, entry.localHeaderOffset);
  if (bytesRead < LOCAL_HEADER_SIZE || header.readUInt32LE(0) !== LOCAL_HEADER_SIGNATURE) {
    throw badDataError(archive, `entry "${entry.name}" has no valid local header (corrupt zip)`);
  }
  return entry.localHeaderOffset + LOCAL_HEADER_SIZE + header.readUInt16LE(26) + header.readUInt16LE(28);
}
