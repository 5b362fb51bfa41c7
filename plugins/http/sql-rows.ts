/**
 * The `http` source's items from SQL rows (`list.sql`, plugins/sql/listing.ts): the `path`
 * column names the file; `size`, `mtime` and `etag` are item fields; every other column is
 * `meta.<column>` (`{meta.id}` in the download URL).
 */
import { SluiceError } from '../../core/errors.js';
import { createItem } from '../../core/item.js';
import type { Item } from '../../core/plugin-api.js';
import type { Row } from '../sql/listing.js';
import { rejectedItem, toDate, toSize, unsafePathReason } from './listed.js';

const ITEM_COLUMNS = new Set(['path', 'size', 'mtime', 'etag']);

export interface RowContext {
  source: string;
  /** Names the listing in errors: `the SQL listing (query "SELECT …")`. */
  where: string;
  open: (item: Item, signal?: AbortSignal) => ReturnType<Item['open']>;
}

/** Row `n` (from 1) as an item; a row the runtime cannot use is an error naming row and column. */
export function rowToItem(row: Row, n: number, ctx: RowContext): Item {
  const at = `row ${n} of ${ctx.where}`;
  const bad = (message: string) =>
    new SluiceError('SLUICE_E_SOURCE', `${at}: ${message}`, { retryable: false });
  if (!('path' in row)) {
    throw bad(
      `the query returns no "path" column (it returns ${columnList(row)}); select the file's relative path AS path`,
    );
  }
  const path = row.path;
  if (typeof path !== 'string' || path.trim() === '') {
    throw bad(`the "path" column is ${describeValue(path)}; every row needs the file's relative path there`);
  }
  const meta: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(row)) {
    if (!ITEM_COLUMNS.has(column)) meta[column] = metaValue(value);
  }
  const unsafe = unsafePathReason(path);
  if (unsafe) return rejectedItem(ctx.source, path, meta, at, unsafe);

  const size = row.size === undefined || row.size === null ? undefined : toSize(row.size);
  if (size === undefined && row.size !== undefined && row.size !== null) {
    throw bad(`the "size" column of "${path}" is ${describeValue(row.size)}, not a byte count`);
  }
  const mtime = row.mtime === undefined || row.mtime === null ? undefined : toDate(row.mtime);
  if (mtime === undefined && row.mtime !== undefined && row.mtime !== null) {
    throw bad(`the "mtime" column of "${path}" is ${describeValue(row.mtime)}, not a time`);
  }
  const etag = row.etag;
  if (etag !== undefined && etag !== null && typeof etag !== 'string' && typeof etag !== 'number') {
    throw bad(`the "etag" column of "${path}" is ${describeValue(etag)}, not text`);
  }
  const item: Item = createItem({
    source: ctx.source,
    path,
    size,
    mtime,
    etag: etag === undefined || etag === null || etag === '' ? undefined : String(etag),
    meta,
    open: (signal) => ctx.open(item, signal),
  });
  return item;
}

/**
 * A column value as templates and the ledger's job data can carry it: timestamps as ISO text,
 * binary as hex; numbers, text, booleans and JSON as they are.
 */
function metaValue(value: unknown): unknown {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (Buffer.isBuffer(value)) return value.toString('hex');
  return value;
}

function columnList(row: Row): string {
  const columns = Object.keys(row);
  return columns.length === 0 ? 'no columns' : columns.map((c) => `"${c}"`).join(', ');
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return value.trim() === '' ? 'empty' : `"${value.slice(0, 60)}"`;
  if (value instanceof Date) return 'an invalid date';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return `a ${Array.isArray(value) ? 'list' : typeof value}`;
}
