/** Plugins that misbehave on purpose, for runtime tests (pure logic stand-ins, not connectors). */
import { truncateSync } from 'node:fs';
import { resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { createItem, deriveItem, itemName } from '../../core/item.js';
import { definePlugin, type Plugin, type SinkCommit } from '../../core/plugin-api.js';
import type { PluginRegistry } from '../../core/registry.js';
import { builtinRegistry } from '../../core/sdk.js';
import { pipeThrough } from '../../core/streams.js';
import { localSink } from '../../plugins/local/sink.js';

/** Fails items whose name matches `pattern` the first `times` attempts (retryable or not). */
export const flaky = definePlugin({
  name: 'flaky',
  kind: 'step',
  summary: 'test: fails matching items a number of times',
  config: Type.Object({
    pattern: Type.String(),
    times: Type.Integer({ default: 1 }),
    retryable: Type.Boolean({ default: true }),
  }),
  create(cfg) {
    const seen = new Map<string, number>();
    const re = new RegExp(cfg.pattern);
    return {
      process(item) {
        if (!re.test(itemName(item))) return item;
        const n = (seen.get(item.path) ?? 0) + 1;
        seen.set(item.path, n);
        if (n <= cfg.times) {
          throw new SluiceError('SLUICE_E_PLUGIN', `flaky failure ${n} on ${item.path}`, {
            retryable: cfg.retryable,
          });
        }
        return item;
      },
    };
  },
});

/** Passes bytes through but errors after `after_bytes` for matching items (a late integrity failure). */
export const breakStream = definePlugin({
  name: 'break_stream',
  kind: 'transform',
  summary: 'test: stream error after N bytes',
  config: Type.Object({ pattern: Type.String(), after_bytes: Type.Integer({ default: 0 }) }),
  create(cfg) {
    const re = new RegExp(cfg.pattern);
    return {
      process(item) {
        if (!re.test(itemName(item))) return item;
        return deriveItem(item, {
          open: async (signal) => {
            let n = 0;
            return pipeThrough(
              await item.open(signal),
              new Transform({
                transform(chunk: Buffer, _e, cb) {
                  n += chunk.length;
                  if (n > cfg.after_bytes)
                    cb(
                      new SluiceError('SLUICE_E_BAD_DATA', 'integrity check failed at end', {
                        retryable: false,
                      }),
                    );
                  else cb(null, chunk);
                },
                flush(cb) {
                  cb(
                    new SluiceError('SLUICE_E_BAD_DATA', 'integrity check failed at end', {
                      retryable: false,
                    }),
                  );
                },
              }),
            );
          },
        });
      },
    };
  },
});

/** Splits a text file into one item per line (an unpacker stand-in). */
export const splitLines = definePlugin({
  name: 'split_lines',
  kind: 'unpack',
  summary: 'test: one item per line',
  config: Type.Object({}),
  create() {
    return {
      async *process(item) {
        let text = '';
        for await (const chunk of await item.open()) text += chunk.toString();
        const lines = text.split('\n').filter(Boolean);
        for (const [i, line] of lines.entries()) {
          yield deriveItem(item, {
            path: `${item.path}.${i}`,
            open: async () => Readable.from([Buffer.from(line)]),
          });
        }
      },
    };
  },
});

/** Upper-cases bytes but keeps the item's `origin` (as a careless plugin might, not using deriveItem). */
export const carelessUpper = definePlugin({
  name: 'careless_upper',
  kind: 'transform',
  summary: 'test: changes bytes without clearing origin',
  config: Type.Object({}),
  create() {
    return {
      process(item) {
        return {
          ...item,
          open: async (signal?: AbortSignal) =>
            pipeThrough(
              await item.open(signal),
              new Transform({
                transform(chunk: Buffer, _e, cb) {
                  cb(null, Buffer.from(chunk.toString('latin1').toUpperCase(), 'latin1'));
                },
              }),
            ),
        };
      },
    };
  },
});

/** In-memory files whose deletion (after_success) fails the first time; counts reads. */
export const stickySource = definePlugin({
  name: 'sticky_source',
  kind: 'source',
  summary: 'test: remove() fails once per file',
  config: Type.Object({ files: Type.Integer(), after_success: Type.Optional(Type.Literal('delete')) }),
  create(cfg) {
    const removals = new Map<string, number>();
    return {
      async *list() {
        for (let i = 0; i < cfg.files; i++) {
          const path = `f${i}.txt`;
          yield createItem({
            source: 'sticky_source',
            path,
            size: 5,
            mtime: new Date(0),
            open: async () => {
              stickyStats.opens++;
              return Readable.from([Buffer.from('hello')]);
            },
          });
        }
      },
      async remove(item) {
        const n = (removals.get(item.path) ?? 0) + 1;
        removals.set(item.path, n);
        if (n === 1)
          throw new SluiceError('SLUICE_E_SOURCE', `delete of ${item.path} timed out`, { retryable: true });
      },
    };
  },
});
export const stickyStats = { opens: 0 };

/**
 * In-memory files listed the way a misbehaving server lists them: every item twice (offset
 * pagination while the server inserts at the front), plus one entry it cannot name safely.
 */
export const repeatingSource = definePlugin({
  name: 'repeating_source',
  kind: 'source',
  summary: 'test: lists every file twice and one rejected entry',
  config: Type.Object({
    files: Type.Integer(),
    /** First lists a rejected entry whose display path is `r0.txt`, the name of a real file after it. */
    shadow: Type.Optional(Type.Boolean()),
  }),
  create(cfg) {
    const item = (i: number) =>
      createItem({
        source: 'repeating_source',
        path: `r${i}.txt`,
        size: 3,
        mtime: new Date(0),
        open: async () => {
          repeatingStats.opens++;
          return Readable.from([Buffer.from(`r${i}\n`)]);
        },
      });
    return {
      async *list() {
        if (cfg.shadow) {
          yield createItem({
            source: 'repeating_source',
            path: 'r0.txt',
            rejected: 'a control character',
            open: async () => Readable.from([]),
          });
        }
        for (let i = 0; i < cfg.files; i++) yield item(i);
        yield createItem({
          source: 'repeating_source',
          path: 'caf\ufffd.txt',
          rejected: 'the name is not valid UTF-8',
          open: async () => Readable.from([]),
        });
        for (let i = 0; i < cfg.files; i++) yield item(i);
      },
    };
  },
});
export const repeatingStats = { opens: 0 };

/** Truncates the listed local file to `to_bytes` before its bytes are read (a producer rewriting it mid-run). */
export const truncateSource = definePlugin({
  name: 'truncate_source',
  kind: 'step',
  summary: 'test: truncates the source file of each item',
  config: Type.Object({ root: Type.String(), to_bytes: Type.Integer() }),
  create(cfg, ctx) {
    return {
      process(item) {
        truncateSync(resolve(ctx.baseDir, cfg.root, item.path), cfg.to_bytes);
        return item;
      },
    };
  },
});

/** A sink that stores nothing it can describe: drains the bytes and reports no size. */
export const mumSink = definePlugin({
  name: 'mum_sink',
  kind: 'sink',
  summary: 'test: a sink that cannot report what it stored',
  config: Type.Object({
    verify: Type.Optional(Type.Union([Type.Literal('size'), Type.Literal('sha256'), Type.Literal('none')])),
  }),
  create() {
    return {
      async write(req) {
        for await (const _ of req.body) {
          // stored somewhere nobody can check
        }
        return { location: `mum://${req.destination}` };
      },
    };
  },
});

/** The local sink, but every commit claims one byte more than it stored (a corrupting backend). */
export const lyingLocalSink = definePlugin({
  ...localSink,
  name: 'lying_local',
  async create(cfg, ctx) {
    const inner = await localSink.create(cfg, ctx);
    const lie = (commit: SinkCommit): SinkCommit =>
      commit.skipped ? commit : { ...commit, size: (commit.size ?? 0) + 1 };
    return {
      ...inner,
      copy: undefined,
      writeBuffer: undefined,
      write: async (req) => lie(await inner.write(req)),
    };
  },
});

/**
 * A sink whose backend answers "busy" to the first `busy_times` writes with an error only this
 * sink knows to be transient: its own classifier says retry, the default rules would not.
 */
export const pickySink = definePlugin({
  name: 'picky_sink',
  kind: 'sink',
  summary: 'test: fails with its own transient error, classified by itself',
  config: Type.Object({ busy_times: Type.Integer({ default: 1 }) }),
  create(cfg) {
    let writes = 0;
    return {
      async write(req) {
        let size = 0;
        for await (const chunk of req.body) size += (chunk as Buffer).length;
        if (++writes <= cfg.busy_times)
          throw Object.assign(new Error('backend says: come back later'), { code: 'PICKY_BUSY' });
        return { location: `picky://${req.destination}`, size };
      },
      isRetryable(err) {
        return (err as { code?: unknown })?.code === 'PICKY_BUSY' ? true : undefined;
      },
    };
  },
});

/** Lists `files` slow-to-read items, then fails (a server dropping the listing mid-pass). */
export const brokenListing = definePlugin({
  name: 'broken_listing',
  kind: 'source',
  summary: 'test: the listing fails after some items',
  config: Type.Object({ files: Type.Integer(), read_ms: Type.Integer({ default: 300 }) }),
  create(cfg) {
    return {
      async *list() {
        for (let i = 0; i < cfg.files; i++) {
          yield createItem({
            source: 'broken_listing',
            path: `b${i}.txt`,
            size: 3,
            mtime: new Date(0),
            open: async () => {
              await new Promise((resolve) => setTimeout(resolve, cfg.read_ms));
              return Readable.from([Buffer.from(`b${i}\n`)]);
            },
          });
        }
        throw new SluiceError('SLUICE_E_SOURCE', 'listing connection dropped', { retryable: false });
      },
    };
  },
});

export const testPlugins: Plugin[] = [
  brokenListing,
  pickySink,
  flaky,
  breakStream,
  splitLines,
  carelessUpper,
  stickySource,
  repeatingSource,
  truncateSource,
  mumSink,
  lyingLocalSink,
];

export function testRegistry(): PluginRegistry {
  return builtinRegistry().extend(testPlugins.map((plugin) => ({ plugin, origin: 'test' })));
}
