/**
 * When a listed file is ready to take: the source's `ready.marker` exists, its size and mtime
 * held still (`stable`), and its name is not an uploader's temporary one (`skip_temporary`).
 * The listing stage asks; finalisation tidies a per-file marker with its file.
 */
import type { Readable } from 'node:stream';
import { SluiceError } from '../errors.js';
import { compileGlobs, type PathPredicate } from '../glob.js';
import type { Item } from '../plugin-api.js';
import { parseDuration } from '../units.js';

/** What browsers, WinSCP, rsync, curl and office suites write before the final name appears. */
export const TEMPORARY_NAMES = ['*.part', '*.filepart', '*.tmp', '.~*', '*.crdownload'];

/** `skip_temporary: true | false | [globs]` as a predicate; `true` (the default) is TEMPORARY_NAMES. */
export function temporaryNames(setting: boolean | string[] | undefined): PathPredicate {
  if (setting === false) return () => false;
  const globs = Array.isArray(setting) ? setting : TEMPORARY_NAMES;
  return globs.length === 0 ? () => false : compileGlobs(globs);
}

/**
 * `ready: {marker: "{path}.done"}`: `{path}` is the item's path, `{name}` its file name and
 * `{dir}` its folder. A template with `{path}` or `{dir}` is a path from the source root
 * (`{dir}/_SUCCESS` at the root is `_SUCCESS`); any other is beside the item (`{name}.ok`,
 * `_SUCCESS`).
 */
export class ReadyMarker {
  /** True when one marker serves one file (`{path}`/`{name}`): it is tidied with that file. */
  readonly perFile: boolean;
  private readonly rooted: boolean;
  private readonly pattern: RegExp;

  constructor(readonly template: string) {
    const unknown = template.match(/\{(?!(?:path|dir|name)\})[^}]*\}/);
    if (unknown)
      throw new SluiceError(
        'SLUICE_E_CONFIG',
        `ready.marker "${template}" uses ${unknown[0]}; only {path}, {dir} and {name} are known`,
      );
    this.perFile = /\{(path|name)\}/.test(template);
    this.rooted = /\{(path|dir)\}/.test(template);
    const source = template
      .split(/(\{dir\}\/|\{dir\}|\{path\}|\{name\})/)
      .map((part) => {
        if (part === '{dir}/') return '(?:.*/)?';
        if (part === '{dir}') return '.*';
        if (part === '{path}') return '.+';
        if (part === '{name}') return '[^/]+';
        return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      })
      .join('');
    this.pattern = new RegExp(`^${this.rooted ? '' : '(?:.*/)?'}${source}$`);
  }

  /** The marker path of the item at `path`. */
  markerFor(path: string): string {
    const slash = path.lastIndexOf('/');
    const dir = slash < 0 ? '' : path.slice(0, slash);
    const filled = this.template.replace(/\{dir\}\/?|\{path\}|\{name\}/g, (token) => {
      if (token === '{path}') return path;
      if (token === '{name}') return path.slice(slash + 1);
      return dir === '' ? '' : token.endsWith('/') ? `${dir}/` : dir;
    });
    if (!this.rooted && dir !== '') return `${dir}/${filled}`;
    return filled.replace(/^\/+/, '');
  }

  /** True for paths of the marker's shape: markers are never items of their own. */
  isMarker(path: string): boolean {
    return this.pattern.test(path);
  }
}

/** The longest `stable` memory: paths beyond it are forgotten oldest first (and looked at again). */
const MAX_TRACKED = 100_000;

/** `stable: true` waits this long between the two looks at a file. */
export const DEFAULT_STABLE_MS = 5_000;

/**
 * `stable`: a file is taken once two listings at least `minMs` apart saw the same size, mtime
 * and etag. Kept on the source across passes (bounded), so a long-running pipeline takes a
 * file seen unchanged in the previous pass at once.
 */
export class StableFiles {
  private readonly seen = new Map<string, { version: string; since: number }>();

  constructor(readonly minMs: number) {}

  /** Notes this sighting; true when the file has held still for `minMs` since it was first seen so. */
  isStable(item: Item, now = Date.now()): boolean {
    const version = `${item.size ?? ''}:${item.mtime?.getTime() ?? ''}:${item.etag ?? ''}`;
    const before = this.seen.get(item.path);
    if (before && before.version === version) return now - before.since >= this.minMs;
    this.seen.delete(item.path);
    this.seen.set(item.path, { version, since: now });
    if (this.seen.size > MAX_TRACKED) this.seen.delete(this.seen.keys().next().value as string);
    return false;
  }
}

/** `stable: true | <duration>` in milliseconds, or undefined when not asked for. */
export function stableMs(setting: boolean | string | number | undefined): number | undefined {
  if (setting === undefined || setting === false) return undefined;
  return setting === true ? DEFAULT_STABLE_MS : parseDuration(setting);
}

/**
 * True when `open` finds a file: only a probe, the stream it opens is closed at once (a cheaper
 * look than a read where the source has none: local `lstat`, SFTP/FTP `stat` before the open).
 */
export async function exists(open: () => Promise<Readable | null>): Promise<boolean> {
  const stream = await open();
  if (!stream) return false;
  // A stream that opens lazily may fail after this (the file deleted meanwhile); that late
  // error is not a failure, and unheard it would crash the process.
  stream.on('error', () => undefined);
  stream.destroy();
  return true;
}
