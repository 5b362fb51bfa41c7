import { Type } from '@sinclair/typebox';
import { deriveItem } from '../../core/item.js';
import { definePlugin, type Item } from '../../core/plugin-api.js';
import { compileTemplate } from '../../core/template.js';

type MetaValue = (item: Item, now: Date) => unknown;

/** Escapes a key for a JSON pointer (RFC 6901). */
const pointerSegment = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

export const setMetaPlugin = definePlugin({
  name: 'set_meta',
  kind: 'step',
  summary: 'Adds or overwrites item meta values (`{meta.KEY}` in later templates and routing rules).',
  description: [
    'The config is a map KEY → value. String values are templates rendered per item (UTC dates;',
    'write `{{`/`}}` for literal braces); `{meta.…}` in them reads the meta the item had before',
    'this step. Other values (numbers, booleans, lists, maps) are copied as they are.',
  ].join(' '),
  config: Type.Record(
    Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_.-]*$' }),
    Type.Unknown({ description: 'The value: a template string, or any other YAML value copied as is.' }),
    {
      additionalProperties: false,
      description: 'Meta keys (letters, digits, `_`, `.`, `-`) and their values.',
    },
  ),
  examples: [
    { title: 'Tag items with their provider', yaml: 'provider: acme' },
    { title: 'Values from templates', yaml: 'batch: "{now:%Y%m%d}"\noriginal_name: "{name}"\npriority: 2' },
  ],
  create(config) {
    const values: [string, MetaValue][] = Object.entries(config).map(([key, value]) => {
      if (typeof value !== 'string') return [key, () => value];
      const template = compileTemplate(value, { jsonPath: `/${pointerSegment(key)}` });
      return [key, (item, now) => template.render(item, { now, sha256: item.checksums.sha256 })];
    });
    return {
      process(item) {
        const now = new Date();
        const meta: Record<string, unknown> = { ...item.meta };
        for (const [key, value] of values) meta[key] = value(item, now);
        return deriveItem(item, { meta });
      },
    };
  },
});
