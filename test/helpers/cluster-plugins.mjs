// Test and bench plugins for scale-out: a source whose listing is slow (so a lister can be
// killed mid-listing), a local sink with injected latency (an I/O-bound sink) and a step that
// kills its worker on chosen items (a poison item), and a step and a sink that hold an item while
// a marker file exists (to pause a worker mid-item from outside).
import { createHash } from 'node:crypto';
import { access, mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { definePlugin, Type } from 'sluice';

/** The deterministic bytes of generated file number `i`. */
export function generatedBody(i, size) {
  const body = Buffer.alloc(size, i % 251);
  body.write(`generated file ${i}`);
  return body;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const slowSource = definePlugin({
  name: 'slow_source',
  kind: 'source',
  summary: 'Lists `count` generated files, waiting `delay_ms` before each (test fixture).',
  config: Type.Object(
    {
      name: Type.Optional(Type.String({ description: 'Source name.' })),
      count: Type.Integer({ description: 'How many files.' }),
      delay_ms: Type.Integer({ default: 10, description: 'Delay before each listed file.' }),
      size: Type.Integer({ default: 1024, description: 'Bytes per file.' }),
    },
    { additionalProperties: false },
  ),
  create(config) {
    const source = config.name ?? 'slow_source';
    const open = (i) => async () => Readable.from([generatedBody(i, config.size)]);
    return {
      async *list(signal) {
        for (let i = 0; i < config.count; i++) {
          await sleep(config.delay_ms);
          if (signal?.aborted) return;
          const path = `f${i}.dat`;
          yield {
            source,
            path,
            size: config.size,
            mtime: new Date(0),
            etag: `e${i}`,
            checksums: {},
            meta: {},
            open: open(i),
          };
        }
      },
      async openPath(path) {
        const m = /^f(\d+)\.dat$/.exec(path);
        return m ? open(Number(m[1]))() : null;
      },
    };
  },
});

export const slowSink = definePlugin({
  name: 'slow_sink',
  kind: 'sink',
  summary: 'Writes files under `path` (temp + rename) after waiting `latency_ms` (test/bench fixture).',
  config: Type.Object(
    {
      path: Type.String({ description: 'Root folder.' }),
      latency_ms: Type.Integer({ default: 50, description: 'Injected latency per file.' }),
    },
    { additionalProperties: false },
  ),
  create(config, ctx) {
    const root = resolve(ctx.baseDir, config.path);
    return {
      async write(req) {
        const chunks = [];
        for await (const c of req.body) chunks.push(c);
        const data = Buffer.concat(chunks);
        await sleep(config.latency_ms);
        const dest = join(root, req.destination);
        await mkdir(dirname(dest), { recursive: true });
        const temp = `${dest}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
        await writeFile(temp, data);
        await rename(temp, dest).catch(async (err) => {
          await unlink(temp).catch(() => undefined);
          throw err;
        });
        return { location: dest, size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
      },
    };
  },
});

/** Kills its own process when an item's path contains `match`: a worker dying mid-item, every time. */
export const crashOn = definePlugin({
  name: 'crash_on',
  kind: 'step',
  summary: 'SIGKILLs the running process on items whose path contains `match` (test fixture: a poison item).',
  config: Type.Object(
    { match: Type.String({ description: 'Substring of the item path.' }) },
    { additionalProperties: false },
  ),
  create(config) {
    return {
      async process(item) {
        if (item.path.includes(config.match)) process.kill(process.pid, 'SIGKILL');
        return item;
      },
    };
  },
});

/** While `<dir>/hold` exists: writes `<dir>/reached-<pid>` (which worker holds), then waits. */
async function holdWhileMarked(dir, what) {
  const holding = () =>
    access(join(dir, 'hold')).then(
      () => true,
      () => false,
    );
  if (!(await holding())) return;
  await writeFile(join(dir, `reached-${process.pid}`), what);
  while (await holding()) await sleep(20);
}

/** Holds items whose path contains `match` while `<dir>/hold` exists. Test fixture: a worker paused mid-item. */
export const holdOn = definePlugin({
  name: 'hold_on',
  kind: 'step',
  summary: 'Holds items whose path contains `match` while `<dir>/hold` exists (test fixture).',
  config: Type.Object(
    {
      match: Type.String({ description: 'Substring of the item path.' }),
      dir: Type.String({ description: 'Folder of the marker files.' }),
    },
    { additionalProperties: false },
  ),
  create(config, ctx) {
    const dir = resolve(ctx.baseDir, config.dir);
    return {
      async process(item) {
        if (item.path.includes(config.match)) await holdWhileMarked(dir, item.path);
        return item;
      },
    };
  },
});

/**
 * A local sink with `if_exists: rename` that, once it has read all of an item's bytes, holds it
 * while `<dir>/hold` exists, then reserves the first free name and writes it. Test fixture: a
 * worker paused between the end of a stream and its commit.
 */
export const holdSink = definePlugin({
  name: 'hold_sink',
  kind: 'sink',
  summary:
    'Writes under `path`, numbering taken names; holds each file before writing while `<dir>/hold` exists (test fixture).',
  config: Type.Object(
    {
      path: Type.String({ description: 'Root folder.' }),
      dir: Type.String({ description: 'Folder of the marker files.' }),
      if_exists: Type.Literal('rename', { description: 'The only mode of this fixture.' }),
    },
    { additionalProperties: false },
  ),
  create(config, ctx) {
    const root = resolve(ctx.baseDir, config.path);
    const dir = resolve(ctx.baseDir, config.dir);
    const exists = (p) =>
      access(p).then(
        () => true,
        () => false,
      );
    return {
      async write(req) {
        const chunks = [];
        for await (const c of req.body) chunks.push(c);
        const data = Buffer.concat(chunks);
        await holdWhileMarked(dir, req.destination);
        const ext = extname(req.destination);
        const stem = req.destination.slice(0, req.destination.length - ext.length);
        let destination = req.destination;
        for (let n = 1; await exists(join(root, destination)); n++) destination = `${stem} (${n})${ext}`;
        await req.reserve(destination);
        const dest = join(root, destination);
        await mkdir(dirname(dest), { recursive: true });
        await writeFile(dest, data, { flag: 'wx' });
        return { location: dest, size: data.length, destination };
      },
    };
  },
});

export default [slowSource, slowSink, crashOn, holdOn, holdSink];
