import { type Static, Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { definePlugin } from '../../core/plugin-api.js';
import { Size } from '../../core/schema-fragments.js';
import { parseSize } from '../../core/units.js';
import { preferLateVerdict } from '../pgp/stream-gates.js';
import type { FormatName } from './detect.js';
import type { Layout } from './entry-path.js';
import { decompressItem, type UnpackSettings } from './unpack.js';

const ALL_FORMATS: FormatName[] = ['gzip', 'tar', 'zip'];

const DecompressConfig = Type.Object(
  {
    formats: Type.Optional(
      Type.Array(Type.Union([Type.Literal('gzip'), Type.Literal('tar'), Type.Literal('zip')]), {
        description:
          'Formats to handle; other files pass through unchanged. A `.tar.gz` needs both `gzip` and `tar` to be unpacked; with only `gzip` it becomes a `.tar`.',
        minItems: 1,
        uniqueItems: true,
        default: ALL_FORMATS,
      }),
    ),
    layout: Type.Optional(
      Type.Union([Type.Literal('keep'), Type.Literal('nest'), Type.Literal('flatten')], {
        description:
          "Where archive entries land: `keep` = entry's path inside the archive, beside the archive (`dir/x.zip` entry `a/b.csv` → `dir/a/b.csv`); `nest` = in a folder named after the archive (`dir/x/a/b.csv`); `flatten` = file name only (`dir/b.csv`).",
        default: 'keep',
      }),
    ),
    recursive: Type.Optional(
      Type.Boolean({
        description: 'Also unpack archives and gzip files found inside archives (up to `max_depth` levels).',
        default: false,
      }),
    ),
    max_depth: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 10,
        description: 'Nesting levels unpacked when `recursive` is on.',
        default: 3,
      }),
    ),
    sniff: Type.Optional(
      Type.Boolean({
        description:
          'Peek at the first bytes of files whose extension names no supported format, to recognise gzip, zip and tar by content (costs one extra open of each such file).',
        default: true,
      }),
    ),
    tar_prescan: Type.Optional(
      Type.Boolean({
        description:
          'Spool a tar (decompressed) to the temp folder and check every entry before handing on the first, so a bad entry anywhere rejects the whole archive with nothing committed. Costs one disk write and two extra reads of the tar; when off, entries before a bad one may already be committed.',
        default: true,
      }),
    ),
    max_entries: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'Most files one archive (with nested ones) may hold.',
        default: 10000,
      }),
    ),
    max_ratio: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description:
          'Most output bytes per compressed input byte, checked while streaming once 1 MiB has come out (decompression-bomb guard).',
        default: 200,
      }),
    ),
    max_total_size: Type.Optional(
      Size({ description: 'Most bytes one archive or gzip file may unpack to.', default: '10GiB' }),
    ),
    max_entry_size: Type.Optional(
      Size({ description: 'Most bytes one archive entry may hold (no limit by default).' }),
    ),
  },
  { additionalProperties: false },
);

export type DecompressConfig = Static<typeof DecompressConfig>;

function sizeOption(value: string | number, field: string): number {
  try {
    return parseSize(value);
  } catch (err) {
    throw new SluiceError('SLUICE_E_CONFIG', (err as Error).message, { context: { jsonPath: `/${field}` } });
  }
}

export const decompressPlugin = definePlugin({
  name: 'decompress',
  kind: 'unpack',
  summary:
    'Gunzip .gz files and unpack tar, tar.gz and zip archives into their entries, with bomb and traversal guards.',
  description: [
    'Recognises formats by extension, then by magic bytes. `a.csv.gz` becomes `a.csv`; an archive becomes one item',
    'per regular file, placed by `layout`. Files that are neither compressed nor archives pass through unchanged.',
    '',
    'Safety: entries escaping the archive (`../x`, `/x`, `C:x`, `..\\x`), links, devices and fifos reject the whole',
    'archive (SLUICE_E_LIMIT); zip entries are all checked before the first one is handed on, tar entries too with',
    '`tar_prescan` (default). Entry count, total size, entry size and expansion ratio are enforced on the bytes',
    'actually produced. Corrupt or truncated input fails the item with SLUICE_E_BAD_DATA and nothing is committed',
    'for the entry being written. Zip archives are spooled to the temp folder to read their central directory.',
  ].join('\n'),
  config: DecompressConfig,
  examples: [
    { title: 'Unpack everything recognisable', yaml: '{}' },
    {
      title: 'Stricter limits for partner uploads',
      yaml: 'max_entries: 10000\nmax_ratio: 200\nmax_total_size: 2GiB',
    },
    { title: 'Only zip files, each into a folder named after it', yaml: 'formats: [zip]\nlayout: nest' },
  ],
  create(config, ctx) {
    const settings: UnpackSettings = {
      formats: new Set(config.formats ?? ALL_FORMATS),
      layout: (config.layout ?? 'keep') as Layout,
      recursive: config.recursive ?? false,
      maxDepth: config.max_depth ?? 3,
      sniff: config.sniff ?? true,
      tarPrescan: config.tar_prescan ?? true,
      tempDir: ctx.tempDir,
      limits: {
        maxEntries: config.max_entries ?? 10000,
        maxRatio: config.max_ratio ?? 200,
        maxTotalSize: sizeOption(config.max_total_size ?? '10GiB', 'max_total_size'),
        maxEntrySize:
          config.max_entry_size === undefined
            ? undefined
            : sizeOption(config.max_entry_size, 'max_entry_size'),
      },
    };
    return {
      // Garbage from a tampered PGP message is the decryption's failure, not this step's.
      process: (item, stepCtx) =>
        preferLateVerdict(item, (input) => decompressItem(input, settings, stepCtx.signal)),
    };
  },
});
