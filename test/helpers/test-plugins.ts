/** Plugins that misbehave on purpose, for runtime tests (pure logic stand-ins, not connectors). */
import { Readable, Transform } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { createItem, deriveItem, itemName } from '../../core/item.js';
import { definePlugin, type Plugin } from '../../core/plugin-api.js';
import type { PluginRegistry } from '../../core/registry.js';
import { builtinRegistry } from '../../core/runtime/run-file.js';
import { pipeThrough } from '../../core/streams.js';

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
          throw new SluiceError('SLUICE_E_PLUGIN', `flaky failure ${n} on ${item.path}`, { retryable: cfg.retryable });
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
                  if (n > cfg.after_bytes) cb(new SluiceError('SLUICE_E_BAD_DATA', 'integrity check failed at end', { retryable: false }));
                  else cb(null, chunk);
                },
                flush(cb) {
                  cb(new SluiceError('SLUICE_E_BAD_DATA', 'integrity check failed at end', { retryable: false }));
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
          yield deriveItem(item, { path: `${item.path}.${i}`, open: async () => Readable.from([Buffer.from(line)]) });
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
        if (n === 1) throw new SluiceError('SLUICE_E_SOURCE', `delete of ${item.path} timed out`, { retryable: true });
      },
    };
  },
});
export const stickyStats = { opens: 0 };

export const testPlugins: Plugin[] = [flaky, breakStream, splitLines, carelessUpper, stickySource];

export function testRegistry(): PluginRegistry {
  return builtinRegistry().extend(testPlugins.map((plugin) => ({ plugin, origin: 'test' })));
}
