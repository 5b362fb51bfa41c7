import { createReadStream } from 'node:fs';
import { mkdir, opendir, rename, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Type } from '@sinclair/typebox';
import { createItem } from '../../core/item.js';
import { definePlugin, type Item } from '../../core/plugin-api.js';
import { sourceCommon } from '../../core/schema-fragments.js';
import { STREAM_CHUNK } from '../../core/streams.js';
import { parseDuration } from '../../core/units.js';
import { readFile, stat } from './fs-callbacks.js';

const config = Type.Object(
  {
    path: Type.String({ description: 'Folder to read, relative to the pipeline file or absolute.' }),
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

/** Folders Sluice itself writes (temp files, state): never listed as input. */
const INTERNAL = /^\.sluice(-tmp)?$/;

export const localSource = definePlugin({
  name: 'local',
  kind: 'source',
  summary: 'Files in a local folder (recursive, globs, min_age, keep/delete/move after success).',
  description:
    'Lists a folder lazily, one directory at a time. Identity is path + size + mtime, so a file rewritten in place is processed again. A `move_to` folder inside the source folder is never listed.',
  config,
  examples: [
    {
      title: 'Take CSVs, move them away when done',
      yaml: 'path: ./inbox\ninclude: ["*.csv"]\nafter_success:\n  move_to: ./inbox/done',
    },
    {
      title: 'Pick files up as they arrive, once they have been still for 2s',
      yaml: 'path: ./inbox\nwatch: true\nmin_age: 2s\nafter_success: delete',
    },
  ],
  create(cfg, ctx) {
    const root = resolve(ctx.baseDir, cfg.path);
    const name = cfg.name ?? 'local';
    const moveTo =
      cfg.after_success && typeof cfg.after_success === 'object'
        ? resolve(ctx.baseDir, cfg.after_success.move_to)
        : undefined;
    const openFile = (abs: string, size?: number) =>
      Promise.resolve(
        createReadStream(abs, {
          highWaterMark: size !== undefined ? Math.max(Math.min(size + 1, STREAM_CHUNK), 16) : STREAM_CHUNK,
        }),
      );

    const itemAt = (abs: string, size: number, mtime: Date) =>
      createItem({
        source: name,
        path: relative(root, abs).split(sep).join('/'),
        size,
        mtime,
        origin: { kind: 'local', endpoint: 'localhost', location: { path: abs } },
        open: () => openFile(abs, size),
      });

    async function* walk(dir: string, signal: AbortSignal): AsyncGenerator<Item> {
      let handle: Awaited<ReturnType<typeof opendir>>;
      try {
        handle = await opendir(dir, { bufferSize: 256 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && dir !== root) return; // removed while listing
        throw err;
      }
      const subdirs: string[] = [];
      for await (const entry of handle) {
        if (signal.aborted) return;
        if (INTERNAL.test(entry.name)) continue;
        const abs = join(dir, entry.name);
        if (entry.isDirectory()) {
          if (cfg.recursive !== false && abs !== moveTo) subdirs.push(abs);
          continue;
        }
        if (!entry.isFile()) continue;
        let st: Awaited<ReturnType<typeof stat>>;
        try {
          st = await stat(abs);
        } catch {
          continue; // vanished between readdir and stat
        }
        yield itemAt(abs, st.size, st.mtime);
      }
      for (const sub of subdirs) yield* walk(sub, signal);
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
          const st = await stat(abs);
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
            ready.push(itemAt(abs, st.size, st.mtime));
            poke();
          }
        } catch {
          candidates.delete(abs); // gone (taken by after_success, or removed by its writer)
        }
      };
      const watcher = watch(root, {
        ignoreInitial: true,
        depth: cfg.recursive === false ? 0 : undefined,
        ignored: (path: string) => path !== root && isInternal(path),
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
        await new Promise<void>((resolve, reject) => watcher.once('ready', resolve).once('error', reject));
        for await (const item of walk(root, signal)) {
          const abs = join(root, item.path);
          if (Date.now() - (item.mtime?.getTime() ?? 0) >= stableMs) {
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

    return {
      list: (signal) => (cfg.watch ? watchAndList(signal) : walk(root, signal)),
      readAll: (item) => readFile(join(root, item.path)),
      async openPath(path) {
        const abs = resolve(root, path);
        if (!abs.startsWith(root + sep)) return null;
        try {
          const st = await stat(abs);
          return st.isFile() ? openFile(abs, st.size) : null;
        } catch {
          return null;
        }
      },
      async remove(item) {
        await unlink(join(root, item.path)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      },
      async move(item, toDir) {
        const target = join(resolve(ctx.baseDir, toDir), item.path);
        await mkdir(dirname(target), { recursive: true });
        await rename(join(root, item.path), target);
      },
      isRetryable(err) {
        const code = (err as NodeJS.ErrnoException)?.code;
        if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'EISDIR') return false;
        if (code === 'EMFILE' || code === 'ENFILE' || code === 'EBUSY' || code === 'EAGAIN') return true;
        return undefined;
      },
    };
  },
});
