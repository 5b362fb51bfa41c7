import { constants, createReadStream, lstatSync, type Stats } from 'node:fs';
import { access, lstat, mkdir, opendir, realpath, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import { escapeControl, SluiceError } from '../../core/errors.js';
import {
  type AsideOps,
  asideName,
  asideOriginal,
  createItem,
  strandedAside,
  tidyListedVersion,
} from '../../core/item.js';
import { definePlugin, type Item, type PluginContext, type SourceInstance } from '../../core/plugin-api.js';
import { sourceCommon } from '../../core/schema-fragments.js';
import { STREAM_CHUNK } from '../../core/streams.js';
import { parseDuration } from '../../core/units.js';
import { close as closeFd, closeSoon, link, lstat as lstatCb, readFile, stat } from './fs-callbacks.js';
import {
  changedSinceListing,
  copyHashing,
  type ListedVersion,
  notListed,
  openedAs,
  openedAsync,
  openListed,
  PROC_FD,
} from './listed-file.js';
import { sha256File } from './sink.js';
import { localDiskDevice, SyncGate } from './sync-io.js';

const config = Type.Object(
  {
    path: Type.Optional(
      Type.String({ description: 'Folder to read, relative to the pipeline file or absolute.' }),
    ),
    paths: Type.Optional(
      Type.Array(Type.String(), {
        minItems: 1,
        description:
          'Several folders to read, in this order, instead of `path`. Each item keeps its path relative to its own folder; tidy-up, companions and ready markers act in that folder.',
      }),
    ),
    match: Type.Optional(
      Type.Union([Type.Literal('all'), Type.Literal('first')], {
        default: 'all',
        description:
          'With `paths`: `all` takes every file of every folder; `first` takes a relative path only from the first folder that holds it (the same path in later folders is hidden). The run summary counts items per folder.',
      }),
    ),
    recursive: Type.Optional(Type.Boolean({ default: true, description: 'Descend into sub-folders.' })),
    watch: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'After the first listing, keep listing new and changed files as the filesystem reports them, until the pipeline stops (near-real-time pick-up). A file is taken once its size and mtime have not changed for `min_age` (1s when unset).',
      }),
    ),
    ...sourceCommon,
  },
  { additionalProperties: false },
);

type LocalSourceConfig = Static<typeof config>;

/** The folders to read, as written: `path`, or `paths` (not both; `match` only with `paths`). */
function foldersOf(cfg: LocalSourceConfig): string[] {
  const invalid = (message: string, jsonPath: string, hint?: string) =>
    new SluiceError('SLUICE_E_CONFIG', message, { context: { jsonPath, hint } });
  if (cfg.paths === undefined) {
    // Worded as the schema words a missing key: `path` stays the usual spelling.
    if (cfg.path === undefined) throw invalid('missing required key "path"', '');
    // `all` is the default the schema fills in; only `first` asks for something `path` cannot do.
    if (cfg.match === 'first')
      throw invalid(
        '`match` chooses among several folders: it needs `paths`',
        '/match',
        'write paths: [a, b]',
      );
    return [cfg.path];
  }
  if (cfg.path !== undefined)
    throw invalid(
      'write either `path` or `paths`, not both',
      '/paths',
      'move the folder of `path` into `paths`',
    );
  const twice = cfg.paths.find((p, i) => cfg.paths!.indexOf(p) !== i);
  if (twice !== undefined) throw invalid(`"${twice}" is listed twice in \`paths\``, '/paths');
  if (cfg.watch)
    throw invalid('`watch: true` reads one folder: use `path`, or one pipeline per folder', '/watch');
  return cfg.paths;
}

/**
 * `paths`: the folders listed one after the other, each item marked with its folder (`root`,
 * which also keeps ledger identities of one relative path in two folders apart), and every
 * later call sent to that folder. With `match: first`, a relative path seen in an earlier
 * folder is not listed from a later one.
 */
function severalFolders(cfg: LocalSourceConfig, folders: Map<string, SourceInstance>): SourceInstance {
  const folderOf = (item: Pick<Item, 'root' | 'path'>): SourceInstance => {
    const folder = item.root === undefined ? undefined : folders.get(item.root);
    if (!folder) {
      throw new SluiceError(
        'SLUICE_E_SOURCE',
        `"${item.path}" names no folder of this source (root ${JSON.stringify(item.root)}; paths: ${[...folders.keys()].join(', ')})`,
        { retryable: false },
      );
    }
    return folder;
  };
  const [first] = folders.values();
  return {
    async *list(signal) {
      const earlier = cfg.match === 'first' ? new Set<string>() : undefined;
      for (const [root, folder] of folders) {
        const here: string[] = [];
        for await (const item of folder.list(signal)) {
          if (earlier?.has(item.path)) continue;
          if (earlier) here.push(item.path);
          yield { ...item, root };
        }
        for (const path of here) earlier?.add(path);
      }
    },
    readAll: (item, signal) => folderOf(item).readAll!(item, signal),
    openFile: (item, signal) => folderOf(item).openFile!(item, signal),
    async openPath(path, signal, root) {
      if (root !== undefined) return folderOf({ root, path }).openPath!(path, signal);
      // No folder named (a caller from before `root`): the first that has it, as `match: first` would.
      for (const folder of folders.values()) {
        const stream = await folder.openPath!(path, signal);
        if (stream) return stream;
      }
      return null;
    },
    remove: (item) => folderOf(item).remove!(item),
    move: (item, toDir) => folderOf(item).move!(item, toDir),
    isRetryable: (err) => first.isRetryable!(err),
    async check(req) {
      const details: string[] = [];
      for (const folder of folders.values()) details.push((await folder.check!(req)).detail);
      return { detail: details.join('; ') };
    },
  };
}

/**
 * Pre-flight of a local folder: it exists, is a folder and can be read (`cheap`), and a `full`
 * check counts its entries. Never writes.
 */
export async function checkLocalFolder(
  root: string,
  depth: 'cheap' | 'full',
  signal?: AbortSignal,
): Promise<{ detail: string }> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(root);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SluiceError(
      'SLUICE_E_SOURCE',
      code === 'ENOENT' ? `folder ${root} does not exist` : `cannot look at folder ${root}: ${code ?? err}`,
      { retryable: false, context: { hint: 'check `path` (relative paths start at the pipeline file)' } },
    );
  }
  if (!st.isDirectory()) {
    throw new SluiceError('SLUICE_E_SOURCE', `${root} is not a folder`, { retryable: false });
  }
  try {
    await access(root, constants.R_OK | constants.X_OK);
  } catch {
    throw new SluiceError('SLUICE_E_SOURCE', `folder ${root} cannot be read: permission denied`, {
      retryable: false,
      context: { hint: 'run sluice as a user who may read the folder' },
    });
  }
  if (depth === 'cheap') return { detail: `folder ${root} readable` };
  let entries = 0;
  const dir = await opendir(root);
  for await (const _ of dir) {
    if (signal?.aborted) break;
    entries++;
  }
  return { detail: `folder ${root} listed (${entries} entr${entries === 1 ? 'y' : 'ies'})` };
}

/** Folders Sluice itself writes (temp files, state): never listed as input. */
const INTERNAL = /^\.sluice(-tmp)?$/;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lossyUtf8 = new TextDecoder('utf-8');

/** A listed name as text, or why it cannot be one (invalid UTF-8, a control character). */
function decodeName(raw: Buffer): { name: string; rejected?: string } {
  let name: string;
  try {
    name = strictUtf8.decode(raw);
  } catch {
    return {
      name: escapeControl(lossyUtf8.decode(raw)),
      rejected: `its name is not valid UTF-8 (bytes ${raw.toString('hex').replace(/(..)(?!$)/g, '$1 ')}; a Latin-1 name from a legacy system?): rename it at the source`,
    };
  }
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    return { name: escapeControl(name), rejected: 'its name holds a control character (newline, tab…)' };
  }
  return { name };
}

function nameError(path: string, why: string): SluiceError {
  return new SluiceError('SLUICE_E_NAME', `"${escapeControl(path)}" ${why}`, { retryable: false });
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException)?.code === 'ENOENT';

/** What `openPath` answers with null: nothing readable at that name (not a failure to read it). */
const NOTHING_THERE = new Set(['ENOENT', 'ENOTDIR', 'SLUICE_E_NAME', 'SLUICE_E_CHANGED']);

export const localSource = definePlugin({
  name: 'local',
  kind: 'source',
  summary: 'Files in a local folder (recursive, globs, min_age, keep/delete/move after success).',
  description:
    'Lists a folder lazily, one directory at a time. Identity is path + size + mtime, so a file rewritten in place is processed again. A `move_to` folder inside the source folder is never listed. Symbolic links are neither listed nor followed (a link could lead outside the folder). A name that is not valid UTF-8 or holds a control character, and a sub-folder that cannot be read, are reported as failed items; the listing goes on. `delete` and `move_to` act only on the version that was listed: the file is renamed aside to a hidden `.<name>.sluice-tidy-<hex>`, checked (size + mtime), then deleted or moved — a file changed meanwhile is put back for the next pass. `move_to` onto another file system copies, verifies (size and sha256) and then deletes. `paths` reads several folders in order (not with `watch`); with `match: first` a relative path is taken only from the first folder holding it, and the run summary says how many items each folder served.',
  config,
  examples: [
    {
      title: 'Take CSVs, move them away when done',
      yaml: 'path: ./inbox\ninclude: ["*.csv"]\nafter_success:\n  move_to: ./inbox/done',
    },
    {
      title: 'The first of several drop folders that holds a file wins',
      yaml: 'paths: [./drops/today, ./drops/retry, ./drops/archive]\nmatch: first',
    },
    {
      title: 'Pick files up as they arrive, once they have been still for 2s',
      yaml: 'path: ./inbox\nwatch: true\nmin_age: 2s\nafter_success: delete',
    },
  ],
  validate(cfg) {
    foldersOf(cfg);
  },
  create(cfg, ctx) {
    const folders = foldersOf(cfg);
    if (cfg.paths === undefined) return openFolder(cfg, ctx, resolve(ctx.baseDir, folders[0]));
    return severalFolders(
      cfg,
      new Map(folders.map((folder) => [folder, openFolder(cfg, ctx, resolve(ctx.baseDir, folder))])),
    );
  },
});

/** What the listing keeps of a file's lstat. */
type ListedStat = { size: number; mtime: Date; ino: number; dev: number };

/** One folder: the whole source for `path`, one root of `paths`. */
function openFolder(cfg: LocalSourceConfig, ctx: PluginContext, root: string): SourceInstance {
  const name = cfg.name ?? 'local';
  const moveTo =
    cfg.after_success && typeof cfg.after_success === 'object'
      ? resolve(ctx.baseDir, cfg.after_success.move_to)
      : undefined;
  const streamOf = (fd: number, size: number) =>
    createReadStream('', {
      fd,
      start: 0,
      highWaterMark: Math.max(Math.min(size + 1, STREAM_CHUNK), 16),
    });

  let realRoot: string | undefined;
  /** The root's device when it is a local disk (sync-io.ts), else undefined. */
  let rootDevice: Promise<number | undefined> | undefined;
  /**
   * The listing's lstat of each file, on this thread where the folder is on the root's local
   * disk (sync-io.ts): a call the kernel answers from memory in microseconds, against a
   * thread-pool round trip per file that paced the whole listing. Off for a while when those
   * calls turn slow (a cold disk that seeks).
   */
  const listGate = new SyncGate();
  /** Whether the files of `dir` may be stat'ed on this thread: `dir` is on the root's local disk. */
  const statsOnThread = async (dir: string): Promise<boolean> => {
    rootDevice ??= localDiskDevice(root);
    const device = await rootDevice;
    if (device === undefined) return false;
    // A folder below the root may be a mount point of anything (NFS, FUSE): its own device.
    return (
      dir === root ||
      (await stat(dir).then(
        (st) => st.dev === device,
        () => false,
      ))
    );
  };
  const lstatOnThread = (path: string | Buffer): Stats => {
    const startedAt = performance.now();
    try {
      return lstatSync(path);
    } finally {
      listGate.took(startedAt);
    }
  };
  /** The segments of an item path, refused (SLUICE_E_NAME) when one is `..`, `.` or empty. */
  const segmentsOf = (relPath: string): string[] => {
    const segments = relPath.split('/');
    if (segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('\0'))) {
      throw nameError(relPath, `is not a path inside ${root}`);
    }
    return segments;
  };
  const outside = (relPath: string, folder: string) =>
    nameError(relPath, `leads outside ${root} (through a symbolic link to ${folder})`);
  /**
   * The absolute path of an item path, refused (SLUICE_E_NAME) unless it names a file inside
   * the root: no `..`, `.` or empty segment, and the real (links resolved) folder holding it
   * lies inside the real root — a folder replaced by a link after the listing leads nowhere.
   * ENOENT when its folder is gone.
   */
  const locate = async (relPath: string): Promise<string> => {
    const segments = segmentsOf(relPath);
    realRoot ??= await realpath(root);
    const folder = await realpath(join(root, ...segments.slice(0, -1)));
    if (folder !== realRoot && !folder.startsWith(realRoot + sep)) throw outside(relPath, folder);
    return join(folder, segments[segments.length - 1]);
  };
  /**
   * Opens the file at `relPath` (listed as `itemPath`) to read it, and checks what was opened,
   * on its descriptor, as the sink's kernel copy does (listed-file.ts): not a link in its last
   * component (refused), no wait on a FIFO, a regular file of the `listed` size and mtime, and —
   * its real path read back from the descriptor — inside the real root (SLUICE_E_NAME
   * otherwise: a folder swapped for a link between a check by path and the open leads nowhere).
   * Without /proc the folder's real path is checked before the open instead.
   */
  const openInside = async (
    relPath: string,
    listed: ListedVersion,
    itemPath = relPath,
  ): Promise<{ fd: number; st: Stats }> => {
    const abs = PROC_FD ? join(root, ...segmentsOf(relPath)) : await locate(relPath);
    realRoot ??= await realpath(root);
    rootDevice ??= localDiskDevice(root);
    const onDisk = await rootDevice;
    const fd = await openListed(abs, itemPath);
    try {
      // Asked on this thread only where the kernel answers from memory (sync-io.ts).
      const { st, real } = onDisk !== undefined ? openedAs(fd, true) : await openedAsync(fd, true);
      if (real !== undefined && !real.startsWith(realRoot + sep)) throw outside(relPath, dirname(real));
      const why = notListed(st, listed);
      if (why !== undefined) throw changedSinceListing(itemPath, why);
      return { fd, st };
    } catch (err) {
      closeSoon(fd);
      throw err;
    }
  };

  /** An item; `storedAs` is where its bytes are when that is not its path (a file left aside). */
  const itemAt = (relPath: string, st: ListedStat, storedAs = relPath) =>
    createItem({
      source: name,
      path: relPath,
      ...(storedAs !== relPath ? { storedAt: storedAs } : {}),
      size: st.size,
      mtime: st.mtime,
      origin: {
        kind: 'local',
        endpoint: 'localhost',
        // The file's inode as listed and the folder's real path: a sink that copies by path
        // checks that the file it opens is this one (with the item's size and mtime) and lies
        // inside the folder, not a link or another file put there since (listed-file.ts).
        location: {
          path: join(root, ...storedAs.split('/')),
          ino: String(st.ino),
          dev: String(st.dev),
          ...(realRoot !== undefined ? { realRoot } : {}),
        },
      },
      open: async () => streamOf((await openInside(storedAs, st, relPath)).fd, st.size),
    });
  /** Where an item's bytes are, relative to the root: its origin (a file left aside) or its path. */
  const storedAt = (item: Item) =>
    item.origin?.kind === 'local' && typeof item.origin.location.path === 'string'
      ? relative(root, item.origin.location.path).split(sep).join('/')
      : item.path;

  const rejectedAt = (relPath: string, reason: string, size?: number, mtime?: Date) =>
    createItem({
      source: name,
      path: relPath,
      size,
      mtime,
      rejected: reason,
      open: () => Promise.reject(nameError(relPath, reason)),
    });

  async function* walk(dir: string, relDir: string, signal: AbortSignal): AsyncGenerator<Item> {
    const subdirs: Array<[string, string]> = [];
    try {
      if (dir === root) realRoot ??= await realpath(root);
      // Names as bytes: a name that is not UTF-8 must not be decoded into another file's name.
      const onThread = await statsOnThread(dir);
      const handle = await opendir(dir, { bufferSize: 256, encoding: 'buffer' as BufferEncoding });
      for await (const entry of handle) {
        if (signal.aborted) return;
        const raw = entry.name as unknown as Buffer;
        const { name: entryName, rejected } = decodeName(raw);
        if (INTERNAL.test(entryName)) continue;
        const relPath = relDir === '' ? entryName : `${relDir}/${entryName}`;
        const abs = join(dir, entryName);
        if (entry.isDirectory()) {
          if (cfg.recursive === false || abs === moveTo) continue;
          if (rejected) yield rejectedAt(relPath, `${rejected} (a folder: its files are not listed)`);
          else subdirs.push([abs, relPath]);
          continue;
        }
        if (!entry.isFile()) continue;
        let st: Stats;
        try {
          // lstat: a file replaced by a link between readdir and here is not followed.
          const at = rejected ? Buffer.concat([Buffer.from(`${dir}${sep}`), raw]) : abs;
          st = onThread && listGate.allows(0) ? lstatOnThread(at) : await lstatCb(at);
        } catch {
          continue; // vanished between readdir and stat
        }
        if (!st.isFile()) continue;
        if (rejected) {
          yield rejectedAt(relPath, rejected, st.size, st.mtime);
          continue;
        }
        // A file a killed tidy-up set aside: listed as the item it was, so its tidy-up is redone.
        const stranded = strandedAside(name, relDir, entryName, st);
        if (stranded?.rejected) yield rejectedAt(stranded.path, stranded.rejected, st.size, st.mtime);
        else if (stranded) yield itemAt(stranded.path, st, relPath);
        else yield itemAt(relPath, st);
      }
    } catch (err) {
      if (isMissing(err) && dir !== root) return; // removed while listing
      if (dir === root) throw err;
      // One unreadable folder must not hide the others: report it and go on.
      const code = (err as NodeJS.ErrnoException).code;
      yield rejectedAt(
        relDir,
        `this folder could not be listed (${code ?? (err as Error).message}): its files were not read`,
      );
      return;
    }
    for (const [abs, relPath] of subdirs) yield* walk(abs, relPath, signal);
  }

  const stableMs = cfg.min_age !== undefined ? parseDuration(cfg.min_age) : 1000;
  const isInternal = (abs: string) =>
    (moveTo !== undefined && (abs === moveTo || abs.startsWith(moveTo + sep))) ||
    relative(root, abs)
      .split(sep)
      .some((part) => INTERNAL.test(part));

  /**
   * The first listing, then files from filesystem events. A changed file becomes a candidate
   * and is yielded once its size and mtime have held still for `stableMs` (a writer may still
   * be appending); each version (size + mtime) is yielded once.
   */
  async function* watchAndList(signal: AbortSignal): AsyncGenerator<Item> {
    const { watch } = await import('chokidar');
    const yielded = new Map<string, string>();
    const candidates = new Map<string, { size: number; mtimeMs: number; stillSince: number }>();
    const ready: Item[] = [];
    let wake: (() => void) | undefined;
    const poke = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const versionKey = (size: number, mtimeMs: number) => `${size}:${mtimeMs}`;
    const consider = async (abs: string) => {
      try {
        // lstat: a link in a watched folder is not a file of it (its target may be anywhere).
        const st = await lstatCb(abs);
        if (!st.isFile()) return;
        const now = Date.now();
        const key = versionKey(st.size, st.mtimeMs);
        if (yielded.get(abs) === key) {
          candidates.delete(abs);
          return;
        }
        const seen = candidates.get(abs);
        if (!seen || seen.size !== st.size || seen.mtimeMs !== st.mtimeMs) {
          candidates.set(abs, { size: st.size, mtimeMs: st.mtimeMs, stillSince: now });
        } else if (now - seen.stillSince >= stableMs && now - st.mtimeMs >= stableMs) {
          candidates.delete(abs);
          yielded.set(abs, key);
          // Reached through a folder that leads outside the root (a link put in its path): no item.
          const folder = await realpath(dirname(abs));
          realRoot ??= await realpath(root);
          if (folder !== realRoot && !folder.startsWith(realRoot + sep)) return;
          ready.push(itemAt(relative(root, abs).split(sep).join('/'), st));
          poke();
        }
      } catch {
        candidates.delete(abs); // gone (taken by after_success, or removed by its writer)
      }
    };
    const watcher = watch(root, {
      ignoreInitial: true,
      // A linked folder's files are not this folder's (its target may be anywhere).
      followSymlinks: false,
      // The watches do not keep the process alive (the ticker does while intake runs): chokidar
      // may still add one for a folder it was scanning when closed, which held `sluice watch`
      // open after SIGTERM now and then.
      persistent: false,
      depth: cfg.recursive === false ? 0 : undefined,
      ignored: (path: string) =>
        path !== root && (isInternal(path) || asideOriginal(basename(path)) !== undefined),
    });
    const touched = (abs: string) => {
      candidates.set(abs, candidates.get(abs) ?? { size: -1, mtimeMs: -1, stillSince: Date.now() });
      void consider(abs);
    };
    watcher
      .on('add', touched)
      .on('change', touched)
      .on('unlink', (abs: string) => {
        yielded.delete(abs);
        candidates.delete(abs);
      });
    const ticker = setInterval(
      () => {
        for (const abs of candidates.keys()) void consider(abs);
      },
      Math.max(20, Math.min(250, stableMs / 4)),
    );
    // Release the watcher as soon as intake stops, even if nobody resumes this generator.
    const onAbort = () => {
      clearInterval(ticker);
      void watcher.close();
      poke();
    };
    signal.addEventListener('abort', onAbort);
    try {
      // A watcher closed before it was ready never says so: the stop must not wait for it.
      await new Promise<void>((resolve, reject) => {
        if (signal.aborted) return resolve();
        watcher.once('ready', resolve).once('error', reject);
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      if (signal.aborted) return;
      for await (const item of walk(root, '', signal)) {
        const abs = join(root, item.path);
        if (item.rejected || Date.now() - (item.mtime?.getTime() ?? 0) >= stableMs) {
          yielded.set(abs, versionKey(item.size ?? -1, item.mtime?.getTime() ?? -1));
          yield item;
        } else {
          touched(abs);
        }
      }
      while (!signal.aborted) {
        const next = ready.shift();
        if (next) {
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (signal.aborted) resolve();
        });
      }
    } finally {
      clearInterval(ticker);
      signal.removeEventListener('abort', onAbort);
      await watcher.close();
    }
  }

  const aside: AsideOps = {
    async stat(path) {
      try {
        const st = await lstat(path);
        return { size: st.size, mtime: st.mtime, file: st.isFile() };
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
    },
    async renameIfAbsent(from, to) {
      // A hard link never replaces an existing name (rename would: it could drop a new file).
      try {
        await link(from, to);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
      await unlink(from);
      return true;
    },
  };
  /** Runs a version-checked tidy-up of `item`; a file whose folder is gone is already gone. */
  const tidy = async (item: Item, act: (asidePath: string) => Promise<void>) => {
    let abs: string;
    try {
      abs = await locate(item.path);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    const away: AsideOps = {
      ...aside,
      // Away, the rename itself is the atomic step: a producer replacing the file now replaces the name.
      renameIfAbsent: async (from, to) => {
        if (from !== abs) return aside.renameIfAbsent(from, to);
        if (await aside.stat(to)) return false;
        await rename(from, to);
        return true;
      },
    };
    await tidyListedVersion(away, item, abs, join(dirname(abs), asideName(item)), act);
  };

  /**
   * Moves a file onto another file system: copy beside the target, verify, rename in, delete.
   * The aside file is read through one descriptor opened without following a link and checked
   * to be the listed version (a link or another file put at its name meanwhile is not copied).
   */
  const moveAcross = async (item: Item, from: string, target: string, temp: string) => {
    const fd = await openListed(from, item.path);
    try {
      const why = notListed((await openedAsync(fd, false)).st, item);
      if (why !== undefined) throw changedSinceListing(item.path, why);
      // Copied and hashed from the descriptor in one pass; the copy hashed again from disk.
      const ha = await copyHashing(fd, temp);
      const [a, b] = [item.size, (await stat(temp)).size];
      const hb = a === undefined || a === b ? await sha256File(temp) : '-';
      if (ha !== hb) {
        throw new SluiceError(
          'SLUICE_E_SOURCE',
          `move_to: the copy of ${from} at ${target} differs from it (size or sha256)`,
          {
            retryable: true,
          },
        );
      }
      await rename(temp, target);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    } finally {
      closeSoon(fd);
    }
    await unlink(from);
  };

  return {
    list: (signal) => (cfg.watch ? watchAndList(signal) : walk(root, '', signal)),
    check: (req) => checkLocalFolder(root, req.depth, req.signal),
    async readAll(item) {
      const { fd } = await openInside(storedAt(item), item, item.path);
      try {
        return await readFile(fd);
      } finally {
        closeSoon(fd);
      }
    },
    /**
     * As `open` reads it and checks it, for a child process to read. Another inode than the
     * listed one: null (read as a stream).
     */
    async openFile(item) {
      const { fd, st } = await openInside(storedAt(item), item, item.path);
      const at = item.origin?.kind === 'local' ? item.origin.location : undefined;
      if (at?.ino === undefined || String(st.ino) === at.ino) return { fd, close: () => closeFd(fd) };
      closeSoon(fd);
      return null;
    },
    async openPath(path) {
      try {
        const { fd, st } = await openInside(path, {});
        return streamOf(fd, st.size);
      } catch (err) {
        // Gone, not a regular file, a link, or a name that leads outside: nothing to read there.
        // Anything else (no permission, too many open files) is a failure, not an absence.
        const code = err instanceof SluiceError ? err.code : (err as NodeJS.ErrnoException)?.code;
        if (code && NOTHING_THERE.has(code)) return null;
        throw err;
      }
    },
    async remove(item) {
      await tidy(item, (asidePath) => unlink(asidePath));
    },
    async move(item, toDir) {
      const base = resolve(ctx.baseDir, toDir);
      const target = join(base, ...item.path.split('/'));
      await tidy(item, async (asidePath) => {
        await mkdir(dirname(target), { recursive: true });
        const [realBase, folder] = await Promise.all([realpath(base), realpath(dirname(target))]);
        if (folder !== realBase && !folder.startsWith(realBase + sep)) {
          throw nameError(item.path, `would be moved outside ${base} (through a symbolic link to ${folder})`);
        }
        try {
          await rename(asidePath, target);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
          await moveAcross(item, asidePath, target, join(dirname(target), basename(asidePath)));
        }
      });
    },
    isRetryable(err) {
      const code = (err as NodeJS.ErrnoException)?.code;
      if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'EISDIR') return false;
      if (code === 'EMFILE' || code === 'ENFILE' || code === 'EBUSY' || code === 'EAGAIN') return true;
      return undefined;
    },
  };
}
