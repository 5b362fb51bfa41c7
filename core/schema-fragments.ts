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
  ready: Type.Optional(
    Type.Object(
      {
        marker: Type.String({
          minLength: 1,
          pattern: '^([^{}]|\\{(path|dir|name)\\})+$',
          description:
            'Path of the file whose presence says a file is complete. `{path}` is the file path, `{name}` its name, `{dir}` its folder; a template without `{path}` or `{dir}` is beside the file. A per-file marker (`{path}`, `{name}`) follows its file at after_success; a folder marker (`{dir}/_SUCCESS`) is never tidied.',
          examples: ['{path}.done', '{dir}/_SUCCESS'],
        }),
      },
      {
        additionalProperties: false,
        description: 'Take a file only once its marker exists (markers are never items).',
      },
    ),
  ),
  stable: Type.Optional(
    Type.Union([Type.Boolean(), Duration()], {
      description:
        'Take a file only once two listings at least this long apart (`true`: 5s) saw the same size and mtime: an alternative to `min_age` for SFTP and FTP uploads. A pass looks again after that delay at the files it saw for the first time.',
    }),
  ),
  skip_temporary: Type.Optional(
    Type.Union([Type.Boolean(), Type.Array(Type.String())], {
      description:
        "Leave uploaders' temporary names alone: `true` (default) skips `*.part`, `*.filepart`, `*.tmp`, `.~*`, `*.crdownload`; `false` skips none; a list of globs replaces the defaults.",
      default: true,
    }),
  ),
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
