/**
 * What a listing (JSON pages or SQL rows) says about a file, checked before it becomes an item:
 * whether its path can name exactly one file, and its size and date as the runtime needs them.
 */
import { SluiceError } from '../../core/errors.js';
import { createItem } from '../../core/item.js';
import type { Item } from '../../core/plugin-api.js';

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Why a listed path cannot be used as one file's name, or undefined. Each of these would make
 * the rendered download/delete URL, or the local path it is written to, name another file:
 * `\` is a separator elsewhere, `.`/`..` segments resolve away in URLs and paths, an empty
 * segment collapses, a control character or a lone surrogate has no faithful encoding.
 */
export function unsafePathReason(path: string): string | undefined {
  if (path.includes('\\')) return 'holds a backslash, which would make it another path';
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'holds a control character';
  if (LONE_SURROGATE.test(path)) return 'is not valid Unicode';
  const segments = path.replace(/^\/+/, '').split('/');
  if (segments.some((s) => s === '.' || s === '..'))
    return 'has a "." or ".." segment, which would make it another path';
  if (segments.some((s) => s === '')) return 'has an empty segment ("//" or a trailing "/")';
  return undefined;
}

/**
 * A rejected path as it can be shown: what made it unsafe percent-escaped (`%` too, so two
 * rejected paths never show alike), and nothing a path normalisation would fold into another
 * listed file's path (`./a` into `a`, `x//y` into `x/y`).
 */
export function displayPath(path: string): string {
  const percent = (c: string) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
  return path
    .replace(
      /[%\\\u0000-\u001f\u007f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
      percent,
    )
    .split('/')
    .map((segment) => (segment === '.' || segment === '..' ? segment.replace(/\./g, percent) : segment))
    .join('/')
    .replace(/^\/|\/(?=\/|$)/g, percent);
}

export function toSize(value: unknown): number | undefined {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/**
 * A Date (SQL timestamps), ISO strings, or epoch numbers: below 1e11 they are seconds (1e11 s
 * is the year 5138).
 */
export function toDate(value: unknown): Date | undefined {
  let date: Date | undefined;
  if (value instanceof Date) date = value;
  else if (typeof value === 'number') date = new Date(value < 1e11 ? value * 1000 : value);
  else if (typeof value === 'string' && value.trim() !== '')
    date = /^\d+$/.test(value) ? toDate(Number(value)) : new Date(value);
  return date && !Number.isNaN(date.getTime()) ? date : undefined;
}

/**
 * The item of a listed path no file can safely be named by: reported as a failed item
 * (`SLUICE_E_NAME`) under a path that shows what was wrong, never opened, deleted or moved.
 */
export function rejectedItem(
  source: string,
  path: string,
  meta: Record<string, unknown>,
  where: string,
  unsafe: string,
): Item {
  const reason = `${where}: the path "${displayPath(path)}" ${unsafe}; it is not downloaded or deleted`;
  const refuse = () => Promise.reject(new SluiceError('SLUICE_E_NAME', reason, { retryable: false }));
  return createItem({ source, path: displayPath(path), meta, rejected: reason, open: refuse });
}
