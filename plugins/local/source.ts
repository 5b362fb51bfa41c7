import { createReadStream } from 'node:fs';
import { mkdir, opendir, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Type } from '@sinclair/typebox';
import { createItem } from '../../core/item.js';
import { definePlugin, type Item } from '../../core/plugin-api.js';
import { sourceCommon } from '../../core/schema-fragments.js';
import { STREAM_CHUNK } from '../../core/streams.js';

const config = Type.Object(
  {
    path: Type.String({ description: 'Folder to read, relative to the pipeline file or absolute.' }),
    recursive: Type.Optional(Type.Boolean({ default: true, description: 'Descend into sub-folders.' })),
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
    { title: 'Take CSVs, move them away when done', yaml: 'path: ./inbox\ninclude: ["*.csv"]\nafter_success:\n  move_to: ./inbox/done' },
  ],
  create(cfg, ctx) {
    const root = resolve(ctx.baseDir, cfg.path);
    const name = cfg.name ?? 'local';
    const moveTo =
      cfg.after_success && typeof cfg.after_success === 'object' ? resolve(ctx.baseDir, cfg.after_success.move_to) : undefined;
    const openFile = (abs: string, size?: number) =>
      Promise.resolve(
        createReadStream(abs, { highWaterMark: size !== undefined ? Math.max(Math.min(size + 1, STREAM_CHUNK), 16) : STREAM_CHUNK }),
      );

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
        const size = st.size;
        yield createItem({
          source: name,
          path: relative(root, abs).split(sep).join('/'),
          size,
          mtime: st.mtime,
          origin: { kind: 'local', endpoint: 'localhost', location: { path: abs } },
          open: () => openFile(abs, size),
        });
      }
      for (const sub of subdirs) yield* walk(sub, signal);
    }

    return {
      list: (signal) => walk(root, signal),
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
