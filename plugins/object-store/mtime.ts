/**
 * The source file's modification time as object stores keep it: user metadata `mtime`, spelled
 * the way rclone writes and reads it, so either tool reads the other's (rclone
 * `backend/s3/s3.go` metaMtime with swift `TimeToFloatString`; `backend/azureblob/azureblob.go`
 * modTimeKey with timeFormatOut).
 */
import { Type } from '@sinclair/typebox';

/** Metadata name (S3: `x-amz-meta-mtime`, Azure: `x-ms-meta-mtime`). */
export const MTIME_METADATA = 'mtime';

/** S3: seconds since the epoch as a fixed-point decimal, trailing zeros dropped (`1354040105.123`). */
export function s3MtimeValue(mtime: Date): string {
  const ms = mtime.getTime();
  if (ms < 0) return `-${s3MtimeValue(new Date(-ms))}`;
  const seconds = Math.floor(ms / 1000);
  const fraction = String(ms % 1000)
    .padStart(3, '0')
    .replace(/0+$/, '');
  return fraction === '' ? String(seconds) : `${seconds}.${fraction}`;
}

/** Azure: RFC 3339 with nine fractional digits, UTC (`2012-11-27T18:15:05.123000000Z`). */
export function azureMtimeValue(mtime: Date): string {
  return mtime.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
}

const DECIMAL_SECONDS = /^(-?)(\d+)(?:\.(\d+))?$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Reads a stored `mtime` in either spelling (decimal seconds as on S3, RFC 3339 as on Azure —
 * a bucket may hold objects another tool wrote); undefined when it is neither. Precision beyond
 * the millisecond is dropped (a `Date` holds no more).
 */
export function parseStoredMtime(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  const decimal = DECIMAL_SECONDS.exec(text);
  if (decimal) {
    const [, sign, seconds, fraction = ''] = decimal;
    const ms = Number(seconds) * 1000 + Number(fraction.slice(0, 3).padEnd(3, '0'));
    const date = new Date(sign === '-' ? -ms : ms);
    return Number.isNaN(date.getTime()) ? undefined : date;
  }
  if (!RFC3339.test(text)) return undefined;
  // Date.parse keeps milliseconds only: cut longer fractions to three digits first.
  const date = new Date(text.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** The sink option, the same on S3 and Azure. */
export const preserveMtimeField = Type.Boolean({
  default: true,
  description:
    "Store the source file's modification time as metadata `mtime` (as rclone does: readable by rclone and by Sluice's own sources), read it back after each write and report it, so verification compares it with the source's. False: store none.",
});
