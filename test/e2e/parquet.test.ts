/** parquet_optimize on Parquet files written at test time by DuckDB (several codecs, types, row groups). */
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createItem } from '../../core/item.js';
import type { Item, StepInstance } from '../../core/plugin-api.js';
import { parquetOptimizePlugin } from '../../plugins/parquet/optimize.js';
import { verifySql } from '../../plugins/parquet/rewrite-sql.js';
import { makePluginContext, makeStepContext } from '../helpers/context.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-parquet-'));
const file = (name: string) => join(dir, name);
let db: DuckDBInstance;
const query = async (sql: string) => (await (await db.connect()).runAndReadAll(sql)).getRowObjectsJS();

const ROWS = 250_000;
const TABLE = `SELECT
    i::BIGINT AS id,
    (i * 10000000000)::BIGINT AS big,
    (i * 0.5)::DOUBLE AS halves,
    (i * 0.1)::DOUBLE AS tenths,
    CASE WHEN i % 7 = 0 THEN NULL WHEN i % 11 = 0 THEN 'NaN'::DOUBLE ELSE i::DOUBLE END AS sparse,
    'name-' || (i % 1000) AS label,
    TIMESTAMP '2024-01-01' + to_seconds(i) AS at,
    (i / 100)::DECIMAL(18, 2) AS amount,
    {'k': i % 3, 'tags': [i % 5, i % 2]} AS nested
  FROM range(${ROWS}) t(i)`;

beforeAll(async () => {
  db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  await connection.run(
    `COPY (${TABLE}) TO '${file('gzip.parquet')}' (FORMAT parquet, COMPRESSION gzip, ROW_GROUP_SIZE 100000)`,
  );
  await connection.run(
    `COPY (${TABLE}) TO '${file('plain.parquet')}' (FORMAT parquet, COMPRESSION uncompressed)`,
  );
}, 60_000);

afterAll(() => {
  db.closeSync();
  rmSync(dir, { recursive: true, force: true });
});

function itemOf(name: string): Item {
  const path = file(name);
  return createItem({
    source: 'local',
    path: `results/${name}`,
    size: statSync(path).size,
    open: async () => createReadStream(path),
  });
}

describe('parquet_optimize', () => {
  const steps: StepInstance[] = [];
  afterAll(async () => {
    for (const step of steps) await step.close?.();
  });

  async function optimize(config: Record<string, unknown>, name: string, target: string) {
    const step = await parquetOptimizePlugin.create(
      {
        compression: 'snappy',
        downcast: false,
        float_tolerance: 0,
        memory_limit: '256MiB',
        max_size: '1GiB',
        ...config,
      } as never,
      makePluginContext(),
    );
    steps.push(step);
    const ctx = makeStepContext();
    const out = (await step.process(itemOf(name), ctx)) as Item;
    await pipeline(await out.open(), createWriteStream(file(target)));
    return { out, figures: ctx.figures };
  }

  const typesOf = async (name: string) =>
    Object.fromEntries(
      (await query(`DESCRIBE SELECT * FROM read_parquet('${file(name)}')`)).map((r) => [
        r.column_name,
        r.column_type,
      ]),
    );
  const codecsOf = async (name: string) =>
    new Set(
      (await query(`SELECT compression FROM parquet_metadata('${file(name)}')`)).map((r) => r.compression),
    );

  it('rewrites with zstd and downcasts only the columns whose values all survive exactly', async () => {
    const { out, figures } = await optimize(
      { compression: 'zstd', downcast: true },
      'gzip.parquet',
      'zstd.parquet',
    );
    expect(out.path).toBe('results/gzip.parquet');
    expect(await codecsOf('zstd.parquet')).toEqual(new Set(['ZSTD']));
    const types = await typesOf('zstd.parquet');
    expect(types).toMatchObject({
      id: 'INTEGER',
      big: 'BIGINT',
      halves: 'FLOAT',
      tenths: 'DOUBLE',
      sparse: 'FLOAT',
      label: 'VARCHAR',
      at: 'TIMESTAMP',
      amount: 'DECIMAL(18,2)',
    });
    expect(types.nested).toMatch(/^STRUCT/);
    const [diff] = await query(
      `SELECT count(*) AS n FROM (SELECT * FROM read_parquet('${file('gzip.parquet')}') EXCEPT ALL
         SELECT id::BIGINT, big, halves::DOUBLE, tenths, sparse::DOUBLE, label, "at", amount, nested FROM read_parquet('${file('zstd.parquet')}'))`,
    );
    expect(Number(diff.n)).toBe(0);
    const [{ n }] = await query(`SELECT count(*) AS n FROM read_parquet('${file('zstd.parquet')}')`);
    expect(Number(n)).toBe(ROWS);
    expect(figures).toEqual([
      {
        kind: 'compression',
        bytesIn: statSync(file('gzip.parquet')).size,
        bytesOut: statSync(file('zstd.parquet')).size,
      },
    ]);
  });

  it('downcasts inexact doubles only within the configured tolerance', async () => {
    await optimize(
      { compression: 'snappy', downcast: true, float_tolerance: 1e-7 },
      'plain.parquet',
      'snappy.parquet',
    );
    expect(await codecsOf('snappy.parquet')).toEqual(new Set(['SNAPPY']));
    expect((await typesOf('snappy.parquet')).tenths).toBe('FLOAT');
    const [worst] = await query(
      `SELECT max(abs(b.tenths - a.tenths) / nullif(abs(a.tenths), 0)) AS err FROM read_parquet('${file('plain.parquet')}') a
         POSITIONAL JOIN (SELECT tenths::DOUBLE AS tenths FROM read_parquet('${file('snappy.parquet')}')) b`,
    );
    expect(Number(worst.err)).toBeLessThanOrEqual(1e-7);
    expect(Number(worst.err)).toBeGreaterThan(0);
  });

  it('keeps every type without downcast and shrinks an uncompressed file', async () => {
    const { figures } = await optimize({ compression: 'gzip' }, 'plain.parquet', 'gzip-out.parquet');
    expect(await typesOf('gzip-out.parquet')).toEqual(await typesOf('plain.parquet'));
    expect(figures[0].bytesOut).toBeLessThan(figures[0].bytesIn);
  });

  it('fails a file that is not Parquet as bad data, and one over max_size as a limit', async () => {
    const step = await parquetOptimizePlugin.create(
      {
        compression: 'snappy',
        downcast: false,
        float_tolerance: 0,
        memory_limit: '256MiB',
        max_size: '1KiB',
      } as never,
      makePluginContext(),
    );
    steps.push(step);
    expect(() => step.process(itemOf('plain.parquet'), makeStepContext())).toThrow(/over max_size/);
    const notParquet = createItem({
      source: 'local',
      path: 'x.parquet',
      open: async () => Readable.from([Buffer.from('id,value\n1,2\n')]),
    });
    const out = (await step.process(notParquet, makeStepContext())) as Item;
    await expect(out.open()).rejects.toMatchObject({ code: 'SLUICE_E_BAD_DATA', retryable: false });
  });

  it('has a verification query that notices one changed value and one missing row', async () => {
    const connection = await db.connect();
    const columns = (await query(`DESCRIBE SELECT * FROM read_parquet('${file('plain.parquet')}')`)).map(
      (r) => ({
        name: String(r.column_name),
        type: String(r.column_type),
      }),
    );
    const source = `read_parquet('${file('plain.parquet')}')`;
    await connection.run(
      `COPY (SELECT * REPLACE (CASE WHEN id = 1234 THEN 'changed' ELSE label END AS label) FROM ${source}) TO '${file('altered.parquet')}' (FORMAT parquet)`,
    );
    await connection.run(
      `COPY (SELECT * FROM ${source} LIMIT ${ROWS - 1}) TO '${file('short.parquet')}' (FORMAT parquet)`,
    );
    const [altered] = await query(verifySql(file('plain.parquet'), file('altered.parquet'), columns));
    expect(Number(altered.differing)).toBe(1);
    const [short] = await query(verifySql(file('plain.parquet'), file('short.parquet'), columns));
    expect([Number(short.rows), Number(short.differing)]).toEqual([ROWS, 1]);
  });
});
