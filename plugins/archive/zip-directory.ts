/**
 * Reads a zip's central directory from a file, record by record. Written here rather than
 * taken from unzipper's `Open.file`, which fails on two archives real tools make: Info-ZIP's
 * `zip -fz` to a pipe (zip64 markers in the end record without zip64 records, which Python
 * and Go read by locating the directory from its size) and archives whose comment is longer
 * than ~58 bytes (unzipper only looks at the last 80 bytes for the end record). Reading here
 * also lets the entry count be checked before any record is parsed.
 */
import type { FileHandle } from 'node:fs/promises';
import { decodeZipName } from './entry-path.js';
import { badDataError, crc32, limitError } from './limits.js';

export interface CentralRecord {
  name: string;
  versionMadeBy: number;
  flags: number;
  compressionMethod: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  externalAttributes: number;
  localHeaderOffset: number;
  mtime: Date;
}

const EOCD_SIGNATURE = 0x06054b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const ZIP64_EOCD_SIZE = 56;
const CENTRAL_SIGNATURE = 0x02014b50;
const CENTRAL_SIZE = 46;
const EXTRA_ZIP64 = 0x0001;
const EXTRA_UNICODE_PATH = 0x7075;
const FLAG_UTF8 = 0x800;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}

interface DirectoryLocation {
  offset: number;
  size: number;
  /** Entry count, or undefined when the end record says 0xffff without zip64 records. */
  count: number | undefined;
  /** Bytes of data prepended to the archive (self-extractors): add to every local offset. */
  shift: number;
}

async function locateDirectory(
  handle: FileHandle,
  fileSize: number,
  archive: string,
): Promise<DirectoryLocation> {
  const tailStart = Math.max(0, fileSize - EOCD_SIZE - MAX_COMMENT);
  const tail = await readAt(handle, tailStart, fileSize - tailStart);
  let eocd = -1;
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIGNATURE && i + EOCD_SIZE + tail.readUInt16LE(i + 20) <= tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0)
    throw badDataError(archive, 'not a valid zip (no end of central directory record; truncated?)');
  const eocdOffset = tailStart + eocd;
  let count: number | undefined = tail.readUInt16LE(eocd + 10);
  let size = tail.readUInt32LE(eocd + 12);
  let offset = tail.readUInt32LE(eocd + 16);
  let directoryEnd = eocdOffset;

  const locatorOffset = eocdOffset - ZIP64_LOCATOR_SIZE;
  const locator =
    locatorOffset >= 0 ? await readAt(handle, locatorOffset, ZIP64_LOCATOR_SIZE) : Buffer.alloc(0);
  if (locator.length === ZIP64_LOCATOR_SIZE && locator.readUInt32LE(0) === ZIP64_LOCATOR_SIGNATURE) {
    const recordOffset = Number(locator.readBigUInt64LE(8));
    const record = await readAt(handle, recordOffset, ZIP64_EOCD_SIZE);
    if (record.length !== ZIP64_EOCD_SIZE || record.readUInt32LE(0) !== ZIP64_EOCD_SIGNATURE) {
      throw badDataError(archive, 'not a valid zip (broken zip64 end of central directory record)');
    }
    count = Number(record.readBigUInt64LE(32));
    size = Number(record.readBigUInt64LE(40));
    offset = Number(record.readBigUInt64LE(48));
    directoryEnd = recordOffset;
  } else if (count === U16_MAX) {
    count = undefined;
  }
  // The directory ends where the end records begin: trust that over a marker (0xffffffff) or
  // an offset shifted by data prepended to the archive (self-extractors).
  const actualOffset = directoryEnd - size;
  const shift = offset === U32_MAX ? 0 : actualOffset - offset;
  if (actualOffset < 0 || shift < 0)
    throw badDataError(archive, 'not a valid zip (central directory out of bounds)');
  return { offset: actualOffset, size, count, shift };
}

/**
 * All central directory records of the zip in `handle`. Throws SLUICE_E_LIMIT past
 * `maxEntries` (before parsing any record when the count is declared) and SLUICE_E_BAD_DATA
 * when the directory is malformed.
 */
export async function readCentralDirectory(
  handle: FileHandle,
  fileSize: number,
  maxEntries: number,
  archive: string,
): Promise<CentralRecord[]> {
  const { offset, size, count, shift } = await locateDirectory(handle, fileSize, archive);
  if (count !== undefined && count > maxEntries) {
    throw limitError(archive, `holds ${count} entries, more than ${maxEntries} (max_entries)`);
  }
  const records: CentralRecord[] = [];
  const end = offset + size;
  let position = offset;
  while (position < end && (count === undefined || records.length < count)) {
    if (records.length >= maxEntries) {
      throw limitError(archive, `holds more than ${maxEntries} entries (max_entries)`);
    }
    const fixed = await readAt(handle, position, CENTRAL_SIZE);
    if (fixed.length < CENTRAL_SIZE || fixed.readUInt32LE(0) !== CENTRAL_SIGNATURE) {
      throw badDataError(archive, `not a valid zip (bad central directory record at byte ${position})`);
    }
    const nameLength = fixed.readUInt16LE(28);
    const extraLength = fixed.readUInt16LE(30);
    const commentLength = fixed.readUInt16LE(32);
    const variable = await readAt(handle, position + CENTRAL_SIZE, nameLength + extraLength);
    if (variable.length < nameLength + extraLength)
      throw badDataError(archive, 'not a valid zip (truncated central directory)');
    const record = parseRecord(fixed, variable.subarray(0, nameLength), variable.subarray(nameLength));
    record.localHeaderOffset += shift;
    records.push(record);
    position += CENTRAL_SIZE + nameLength + extraLength + commentLength;
  }
  if (count !== undefined && records.length !== count) {
    throw badDataError(
      archive,
      `not a valid zip (central directory holds ${records.length} of ${count} records)`,
    );
  }
  return records;
}

function parseRecord(fixed: Buffer, nameBytes: Buffer, extra: Buffer): CentralRecord {
  const flags = fixed.readUInt16LE(8);
  const record: CentralRecord = {
    name: decodeZipName(nameBytes, (flags & FLAG_UTF8) !== 0),
    versionMadeBy: fixed.readUInt16LE(4),
    flags,
    compressionMethod: fixed.readUInt16LE(10),
    mtime: dosDateTime(fixed.readUInt16LE(14), fixed.readUInt16LE(12)),
    crc32: fixed.readUInt32LE(16),
    compressedSize: fixed.readUInt32LE(20),
    uncompressedSize: fixed.readUInt32LE(24),
    externalAttributes: fixed.readUInt32LE(38),
    localHeaderOffset: fixed.readUInt32LE(42),
  };
  for (let i = 0; i + 4 <= extra.length; ) {
    const id = extra.readUInt16LE(i);
    const length = extra.readUInt16LE(i + 2);
    const data = extra.subarray(i + 4, i + 4 + length);
    if (id === EXTRA_ZIP64) applyZip64(record, data);
    // Info-ZIP's Unicode Path field: the UTF-8 name, valid while the stored name is unchanged.
    if (
      id === EXTRA_UNICODE_PATH &&
      data.length > 5 &&
      data[0] === 1 &&
      data.readUInt32LE(1) === crc32(nameBytes)
    ) {
      record.name = data.subarray(5).toString('utf8');
    }
    i += 4 + length;
  }
  return record;
}

/** The zip64 extra field holds, in this order, the 64-bit values whose 32-bit field is 0xffffffff. */
function applyZip64(record: CentralRecord, data: Buffer): void {
  let at = 0;
  const next = (): number | undefined => {
    if (at + 8 > data.length) return undefined;
    const value = Number(data.readBigUInt64LE(at));
    at += 8;
    return value;
  };
  if (record.uncompressedSize === U32_MAX) record.uncompressedSize = next() ?? record.uncompressedSize;
  if (record.compressedSize === U32_MAX) record.compressedSize = next() ?? record.compressedSize;
  if (record.localHeaderOffset === U32_MAX) record.localHeaderOffset = next() ?? record.localHeaderOffset;
}

function dosDateTime(date: number, time: number): Date {
  return new Date(
    Date.UTC(
      1980 + (date >> 9),
      ((date >> 5) & 0xf) - 1,
      date & 0x1f,
      time >> 11,
      (time >> 5) & 0x3f,
      (time & 0x1f) * 2,
    ),
  );
}
