import { constants, createBrotliCompress, createGzip } from 'node:zlib';
import { type Static, Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { deriveItem } from '../../core/item.js';
import { definePlugin } from '../../core/plugin-api.js';
import { Size } from '../../core/schema-fragments.js';
import { HashTap, pipeThrough, STREAM_CHUNK } from '../../core/streams.js';
import { parseSize } from '../../core/units.js';
import { zstdCompressStream, zstdVersion } from './zstd-cli.js';

type Format = 'gzip' | 'brotli' | 'zstd';

const FORMATS: Record<Format, { extension: string; min: number; max: number; defaultLevel: number }> = {
  gzip: { extension: '.gz', min: 1, max: 9, defaultLevel: 6 },
  brotli: { extension: '.br', min: 0, max: 11, defaultLevel: 4 },
  zstd: { extension: '.zst', min: 1, max: 19, defaultLevel: 3 },
};

const CompressConfig = Type.Object(
  {
    format: Type.Optional(
      Type.Union([Type.Literal('gzip'), Type.Literal('brotli'), Type.Literal('zstd')], {
        description: 'Compression format; the extension `.gz`, `.br` or `.zst` is appended to the name.',
        default: 'gzip',
      }),
    ),
    level: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 19,
        description:
          'Compression level: gzip 1-9 (default 6), brotli quality 0-11 (default 4), zstd 1-19 (default 3).',
      }),
    ),
    min_size: Type.Optional(
      Size({
        description:
          'Files smaller than this pass through uncompressed (files of unknown size are always compressed).',
      }),
    ),
  },
  { additionalProperties: false },
);

export type CompressConfig = Static<typeof CompressConfig>;

export const compressPlugin = definePlugin({
  name: 'compress',
  kind: 'transform',
  summary: 'Compress files with gzip, brotli or zstd and append the extension.',
  description:
    'Streams each file through the compressor (gzip and brotli by Node zlib with 1 MiB chunks, zstd by the `zstd` command, which must be installed). Bytes in and out are reported for the run summary.',
  config: CompressConfig,
  examples: [
    { title: 'gzip files over 1 MiB', yaml: 'format: gzip\nlevel: 6\nmin_size: 1MiB' },
    { title: 'zstd, fast and small', yaml: 'format: zstd\nlevel: 3' },
  ],
  create(config) {
    const format: Format = config.format ?? 'gzip';
    const spec = FORMATS[format];
    const level = config.level ?? spec.defaultLevel;
    if (level < spec.min || level > spec.max) {
      throw new SluiceError(
        'SLUICE_E_CONFIG',
        `${format} level must be ${spec.min}-${spec.max}, got ${level}`,
        {
          context: { jsonPath: '/level' },
        },
      );
    }
    let minSize: number | undefined;
    try {
      minSize = config.min_size === undefined ? undefined : parseSize(config.min_size);
    } catch (err) {
      throw new SluiceError('SLUICE_E_CONFIG', (err as Error).message, {
        context: { jsonPath: '/min_size' },
      });
    }
    if (format === 'zstd' && zstdVersion() === null) {
      throw new SluiceError(
        'SLUICE_E_CONFIG',
        'format zstd needs the `zstd` command, which was not found on PATH',
        {
          context: {
            jsonPath: '/format',
            hint: 'install it (Debian/Ubuntu: apt-get install zstd) or use gzip/brotli',
          },
        },
      );
    }
    const encoder = (sizeHint: number | undefined): NodeJS.ReadWriteStream => {
      if (format === 'gzip') return createGzip({ level, chunkSize: STREAM_CHUNK });
      if (format === 'zstd') return zstdCompressStream(level);
      return createBrotliCompress({
        chunkSize: STREAM_CHUNK,
        params: {
          [constants.BROTLI_PARAM_QUALITY]: level,
          ...(sizeHint === undefined ? {} : { [constants.BROTLI_PARAM_SIZE_HINT]: sizeHint }),
        },
      });
    };
    return {
      process(item, ctx) {
        if (minSize !== undefined && item.size !== undefined && item.size < minSize) return item;
        return deriveItem(item, {
          path: item.path + spec.extension,
          open: async (signal) => {
            const bytesIn = new HashTap(null);
            const bytesOut = new HashTap(null);
            const compressed = pipeThrough(await item.open(signal), bytesIn, encoder(item.size), bytesOut);
            compressed.once('end', () =>
              ctx.report({ kind: 'compression', bytesIn: bytesIn.bytes, bytesOut: bytesOut.bytes }),
            );
            return compressed;
          },
        });
      },
    };
  },
});
