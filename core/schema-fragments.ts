/**
 * Cross-cutting config fields shared by many plugins. Plugins spread these into their own
 * TypeBox schema; the runtime (not the plugin) enforces them.
 */
import { type TSchema, Type } from '@sinclair/typebox';
import { DURATION_PATTERN, SIZE_PATTERN } from './units.js';

export const Duration = (options: { description?: string; default?: string } = {}) =>
  Type.Union([Type.String({ pattern: DURATION_PATTERN }), Type.Number({ minimum: 0 })], {
    examples: ['500ms', '30s', '15m', '24h', '7d'],
    ...options,
  });

export const Size = (options: { description?: string; default?: string | number } = {}) =>
  Type.Union([Type.String({ pattern: SIZE_PATTERN }), Type.Number({ minimum: 0 })], {
    examples: ['512KiB', '1MiB', '5GB'],
    ...options,
  });

export const Globs = (description: string) =>
  Type.Union([Type.String(), Type.Array(Type.String())], { description });

/** `after_success: keep | delete | {move_to: dir}` — run only at finalize. */
export const AfterSuccess = Type.Union(
  [
    Type.Literal('keep'),
    Type.Literal('delete'),
    Type.Object(
      { move_to: Type.String({ description: 'Folder (at the source) to move the file into.' }) },
      { additionalProperties: false },
    ),
  ],
  {
    description:
      'What to do with a source file once every copy of it is committed and verified: keep it, delete it, or move it into a folder.',
    default: 'keep',
  },
);

/** Fields every source accepts. */
export const sourceCommon = {
  name: Type.Optional(
    Type.String({
      pattern: '^[A-Za-z0-9_.-]+$',
      description:
        'Name of this source in ledger keys and as `{source}` in templates (default: the plugin name).',
    }),
  ),
  include: Type.Optional(
    Globs('Globs of files to take (a glob without `/` matches the file name at any depth).'),
  ),
  exclude: Type.Optional(Globs('Globs of files to leave alone.')),
  min_age: Type.Optional(
    Duration({ description: 'Skip files modified more recently than this (still being written).' }),
  ),
  after_success: Type.Optional(AfterSuccess),
};

export const IfExists = Type.Union(
  [Type.Literal('overwrite'), Type.Literal('skip'), Type.Literal('fail'), Type.Literal('rename')],
  {
    description:
      'When the destination exists: overwrite it, skip the item, fail (unless it already holds the same bytes), or write under a new name (`name (1).ext`).',
    default: 'overwrite',
  },
);

export const Verify = Type.Union([Type.Literal('size'), Type.Literal('sha256'), Type.Literal('none')], {
  description:
    'How to verify a committed object: `size` (always cheap), `sha256` (re-read or backend checksum compared with the sha256 computed while streaming), or `none`.',
  default: 'size',
});

/** Fields every sink accepts. */
export const sinkCommon = {
  if_exists: Type.Optional(IfExists),
  verify: Type.Optional(Verify),
};

/** Marks a field as secret: it is masked in all output. */
export const Secret = <T extends TSchema>(schema: T) => ({ ...schema, 'x-secret': true }) as T;
