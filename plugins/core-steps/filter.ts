import { Type } from '@sinclair/typebox';
import { compileIncludeExclude } from '../../core/glob.js';
import { definePlugin } from '../../core/plugin-api.js';
import { Globs } from '../../core/schema-fragments.js';
import { compileMatch, matchFields } from './item-match.js';

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
    },
    { additionalProperties: false },
  ),
  examples: [
    { title: 'Big files that are not already compressed', yaml: 'min_size: 1MiB\nexclude: ["*.gz"]' },
    { title: 'CSV reports of the last week', yaml: "include: ['reports/**/*.csv']\nmax_age: 7d" },
    { title: 'Names that carry a date', yaml: "regex: '\\d{8}'" },
  ],
  create(config) {
    const { include, exclude, ...spec } = config;
    const selected = compileIncludeExclude(include, exclude);
    const matches = compileMatch(spec, '');
    return {
      process: (item) => (selected(item.path) && matches(item, new Date()) ? item : null),
    };
  },
});
