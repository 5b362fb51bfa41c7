import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { compileIncludeExclude } from '../../core/glob.js';
import { compileMatch, matchFields } from '../../core/item-match.js';
import type { Item } from '../../core/plugin-api.js';
import { definePlugin } from '../../core/plugin-api.js';
import { Globs } from '../../core/schema-fragments.js';

export const filterPlugin = definePlugin({
  name: 'filter',
  kind: 'step',
  summary: 'Keeps only the items that match every condition (globs, regex, size, age, meta); drops the rest.',
  description: [
    'All conditions are ANDed. A dropped item counts as filtered: it is not recorded in the ledger',
    'and its source file is left alone (no `after_success`), so a later change of the filter can',
    'still take it. Globs without `/` match the file name at any depth;',
    'dotfiles match `*`. Size and age conditions never match an item whose size or mtime is unknown.',
  ].join(' '),
  config: Type.Object(
    {
      include: Type.Optional(Globs('Keep only items whose path matches one of these globs.')),
      exclude: Type.Optional(Globs('Drop items whose path matches one of these globs.')),
      ...matchFields,
      action: Type.Optional(
        Type.Union([Type.Literal('drop'), Type.Literal('fail')], {
          description:
            'What happens to an item that does not match: `drop` it (counted as filtered), or `fail` it (sent to `on_error` with the rule it broke).',
          default: 'drop',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  examples: [
    { title: 'Big files that are not already compressed', yaml: 'min_size: 1MiB\nexclude: ["*.gz"]' },
    { title: 'CSV reports of the last week', yaml: "include: ['reports/**/*.csv']\nmax_age: 7d" },
    { title: 'Names that carry a date', yaml: "regex: '\\d{8}'" },
    { title: 'Fail (not drop) a download that is too small', yaml: 'min_size: 100KiB\naction: fail' },
  ],
  create(config) {
    const { include, exclude, action, ...spec } = config;
    const selected = compileIncludeExclude(include, exclude);
    const matches = compileMatch(spec, '');
    return {
      process: (item) => {
        if (selected(item.path) && matches(item, new Date())) return item;
        if (action !== 'fail') return null;
        throw new SluiceError('SLUICE_E_PLUGIN', `fails the filter: ${brokenRule(config, item)}`, {
          context: { item: item.path },
          retryable: false,
        });
      },
    };
  },
});

/** The first condition `item` breaks, as the config wrote it (`min_size: 100KiB, size 12 B`). */
function brokenRule(config: Record<string, unknown>, item: Item): string {
  const now = new Date();
  for (const [key, value] of Object.entries(config)) {
    if (key === 'action' || value === undefined) continue;
    const one =
      key === 'include' || key === 'exclude'
        ? compileIncludeExclude(
            key === 'include' ? (value as string[]) : undefined,
            key === 'exclude' ? (value as string[]) : undefined,
          )(item.path)
        : compileMatch({ [key]: value }, '')(item, now);
    if (!one)
      return `${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}${describeItem(key, item)}`;
  }
  return 'no condition met';
}

function describeItem(key: string, item: Item): string {
  if (key.endsWith('_size')) return item.size === undefined ? ' (size unknown)' : ` (size ${item.size} B)`;
  if (key.endsWith('_age'))
    return item.mtime === undefined ? ' (mtime unknown)' : ` (modified ${item.mtime.toISOString()})`;
  return '';
}
