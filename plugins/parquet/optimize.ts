import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open as openFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { deriveItem } from '../../core/item.js';
import { definePlugin } from '../../core/plugin-api.js';
import { Size } from '../../core/schema-fragments.js';
import { parseSize } from '../../core/units.js';
import {
  type Column,
  copySql,
  downcastCandidates,
  downcastCheckSql,
  type PlannedColumn,
  readParquet,
  verifySql,
} from './rewrite-sql.js';

const config = Type.Object(
  {
    compression: Type.Union(
      [Type.Literal('snappy'), Type.Literal('zstd'), Type.Literal('gzip'), Type.Literal('uncompressed')],
      { description: 'Codec of the rewritten file.', default: 'snappy' },
    ),
    downcast: Type.Boolean({
      description:
        'Store DOUBLE columns as FLOAT and BIGINT columns as INTEGER when no value changes beyond `float_tolerance` (floats) or the whole column range fits in 32 bits (integers). Top-level columns only.',
      default: false,
    }),
    float_tolerance: Type.Number({
      minimum: 0,
      maximum: 1e-3,
      description:
        'Largest relative error allowed for a DOUBLE → FLOAT downcast, per value. 0 (the default) downcasts only columns whose every value round-trips exactly; 1e-7 accepts FLOAT’s own rounding for most values (FLOAT keeps ~7 significant digits).',
      default: 0,
    }),
    memory_limit: Size({
      description:
        'Memory DuckDB may use for one rewrite; beyond it, it spills to the pipeline temp folder. Row groups are streamed, so the file size is not bounded by this.',
      default: '512MiB',
    }),
    max_size: Size({
      description: 'Fail files larger than this (they are spooled to the temp folder).',
      default: '20GiB',
    }),
  },
  { additionalProperties: false },
);

type DuckDB = typeof import('@duckdb/node-api');
type Connection = Awaited<ReturnType<Awaited<ReturnType<DuckDB['DuckDBInstance']['create']>>['connect']>>;

const PARQUET_MAGIC = 'PAR1';

/**
 * A Parquet file starts and ends with `PAR1`. Checking it first turns an empty or non-Parquet
 * file into a one-line message instead of DuckDB's multi-line error quoting the spool path.
 */
async function assertParquetMagic(path: string, itemPath: string): Promise<void> {
  const handle = await openFile(path, 'r');
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(4);
    const tail = Buffer.alloc(4);
    if (size >= 12) {
      await handle.read(head, 0, 4, 0);
      await handle.read(tail, 0, 4, size - 4);
    }
    if (head.toString('latin1') !== PARQUET_MAGIC || tail.toString('latin1') !== PARQUET_MAGIC) {
      throw new SluiceError(
        'SLUICE_E_BAD_DATA',
        `"${itemPath}" is not a Parquet file (${size} bytes, the PAR1 marker is missing at its start or end)`,
        { retryable: false },
      );
    }
  } finally {
    await handle.close();
  }
}

/** DuckDB's first line, with the spool path replaced by the item's path. */
function duckdbMessage(err: unknown, spoolPath: string, itemPath: string): string {
  const first = String((err as Error)?.message ?? err).split('\n')[0];
  return first.split(spoolPath).join(itemPath);
}

async function rows(connection: Connection, sql: string): Promise<Record<string, unknown>[]> {
  return (await connection.runAndReadAll(sql)).getRowObjectsJS() as Record<string, unknown>[];
}

export const parquetOptimizePlugin = definePlugin({
  name: 'parquet_optimize',
  kind: 'transform',
  summary:
    'Rewrite Parquet files with another codec and, safely, smaller numeric types; verified value by value.',
  description: [
    'Uses DuckDB (`@duckdb/node-api`, native, loaded only when a pipeline uses this step). The file is spooled to the',
    'pipeline temp folder (Parquet needs random access), rewritten row group by row group with the chosen codec, then',
    'the output is re-read and compared with the input row by row in file order (POSITIONAL JOIN): row count and every',
    'value must match (downcast columns: the value as cast). Any difference fails the item and nothing is written.',
    'Memory is bounded by `memory_limit`, not by the file size. Byte counts before/after go to the run summary.',
    'Not kept: custom key-value metadata of the input (e.g. pandas/Arrow schema hints) and its row group layout.',
  ].join(' '),
  config,
  examples: [
    { title: 'Snappy with safe downcasts', yaml: 'compression: snappy\ndowncast: true' },
    {
      title: 'Zstd, allowing FLOAT rounding',
      yaml: 'compression: zstd\ndowncast: true\nfloat_tolerance: 1.0e-7',
    },
  ],
  async create(cfg, ctx) {
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const spillDir = join(ctx.tempDir, `duckdb-${randomUUID()}`);
    await mkdir(spillDir, { recursive: true });
    const instance = await DuckDBInstance.create(':memory:', {
      memory_limit: `${Math.floor(parseSize(cfg.memory_limit) / (1024 * 1024))}MiB`,
      temp_directory: spillDir,
      threads: '2',
      preserve_insertion_order: 'true',
    });
    const maxSize = parseSize(cfg.max_size);

    async function rewrite(input: string, output: string, itemPath: string) {
      const connection = await instance.connect();
      try {
        const columns = (await rows(connection, `DESCRIBE SELECT * FROM ${readParquet(input)}`)).map(
          (r): Column => ({ name: String(r.column_name), type: String(r.column_type) }),
        );
        const planned: PlannedColumn[] = columns.map((c) => ({ ...c }));
        if (cfg.downcast) {
          const candidates = downcastCandidates(columns);
          if (candidates.length > 0) {
            const [fits] = await rows(connection, downcastCheckSql(input, candidates, cfg.float_tolerance));
            candidates.forEach(({ column, to }, i) => {
              if (fits[`k${i}`] === true) planned[columns.indexOf(column)].cast = to;
            });
          }
        }
        await connection.run(copySql(input, output, planned, cfg.compression));
        const [{ count: inputRows }] = await rows(
          connection,
          `SELECT count(*) AS count FROM ${readParquet(input)}`,
        );
        const [check] = await rows(connection, verifySql(input, output, planned));
        if (Number(check.rows) !== Number(inputRows) || Number(check.differing) !== 0) {
          throw new SluiceError(
            'SLUICE_E_PLUGIN',
            `rewrite of "${itemPath}" failed verification: ${check.rows} rows written for ${inputRows}, ${check.differing} differ`,
            { retryable: false },
          );
        }
        return planned.filter((c) => c.cast).map((c) => `${c.name}: ${c.type} → ${c.cast}`);
      } catch (err) {
        if (err instanceof SluiceError) throw err;
        throw new SluiceError(
          'SLUICE_E_BAD_DATA',
          `cannot rewrite "${itemPath}" as Parquet: ${duckdbMessage(err, input, itemPath)}`,
          {
            cause: err,
            retryable: false,
          },
        );
      } finally {
        connection.closeSync();
      }
    }

    return {
      process(item, stepCtx) {
        if (item.size !== undefined && item.size > maxSize) {
          throw new SluiceError(
            'SLUICE_E_LIMIT',
            `"${item.path}" is ${item.size} bytes, over max_size ${cfg.max_size}`,
            {
              retryable: false,
            },
          );
        }
        return deriveItem(item, {
          open: async (signal) => {
            const work = join(ctx.tempDir, `parquet-${randomUUID()}`);
            await mkdir(work, { recursive: true });
            const input = join(work, 'in.parquet');
            const output = join(work, 'out.parquet');
            try {
              await pipeline(await item.open(signal), createWriteStream(input), { signal });
              const bytesIn = (await stat(input)).size;
              if (bytesIn > maxSize) {
                throw new SluiceError('SLUICE_E_LIMIT', `"${item.path}" is over max_size ${cfg.max_size}`, {
                  retryable: false,
                });
              }
              await assertParquetMagic(input, item.path);
              const downcasts = await rewrite(input, output, item.path);
              const bytesOut = (await stat(output)).size;
              stepCtx.report({ kind: 'compression', bytesIn, bytesOut });
              stepCtx.log.debug({ item: item.path, bytesIn, bytesOut, downcasts }, 'parquet rewritten');
              const stream = createReadStream(output, { highWaterMark: 1024 * 1024 });
              stream.once('close', () => void rm(work, { recursive: true, force: true }));
              return stream;
            } catch (err) {
              await rm(work, { recursive: true, force: true });
              throw err;
            }
          },
        });
      },
      async close() {
        instance.closeSync();
        await rm(spillDir, { recursive: true, force: true });
      },
    };
  },
});
