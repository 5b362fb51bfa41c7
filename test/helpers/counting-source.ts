/** A source plugin wrapped to count every read of an item's bytes (the destination pre-check tests). */
import type { TSchema } from '@sinclair/typebox';
import { definePlugin, type Item, type SourcePlugin } from '../../core/plugin-api.js';

/**
 * `plugin` under `name`, pushing the path of every item it opens or reads whole onto `reads`.
 * Items carry no `origin`, so no sink copies server-side behind the source's back: every byte a
 * sink gets is a counted read. `decorate` may add to each listed item (checksums a backend lists).
 */
export function countingSource<S extends TSchema>(
  plugin: SourcePlugin<S>,
  name: string,
  reads: string[],
  decorate: (item: Item, config: unknown, baseDir: string) => Partial<Item> = () => ({}),
): SourcePlugin<S> {
  return definePlugin({
    ...plugin,
    name,
    async create(cfg, ctx) {
      const inner = await plugin.create(cfg, ctx);
      const counted = (item: Item): Item => ({
        ...item,
        ...decorate(item, cfg, ctx.baseDir),
        origin: undefined,
        open: async (signal) => {
          reads.push(item.path);
          return item.open(signal);
        },
      });
      return {
        ...inner,
        async *list(signal) {
          for await (const item of inner.list(signal)) yield counted(item);
        },
        ...(inner.readAll
          ? {
              readAll: async (item: Item, signal?: AbortSignal) => {
                reads.push(item.path);
                return inner.readAll!(item, signal);
              },
            }
          : {}),
      };
    },
  });
}
