/**
 * Seed workflow "monthly-results" (pipelines/monthly-results-s3.yaml): Parquet results written
 * by DuckDB into a results folder are rewritten (snappy, safe downcasts), uploaded to s3rver
 * under processed-data/monthly/YYYY/MM/ with checksum metadata and sha256 read-back
 * verification, and the originals are moved to results/uploaded. A file below the minimum size
 * fails with its reason; each pass of `sluice run` puts its statistics JSON (the pass report)
 * beside the results.
 */
import { readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import type { S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../helpers/object-store.js';
import {
  getObject,
  headMetadata,
  listKeys,
  pipelineFile,
  runCli,
  runWorkflow,
  s3rverClient,
  s3rverEnv,
} from '../../helpers/workflows.js';
import { listFiles, makeWorkspace, type Workspace } from '../../helpers/workspace.js';
import { type S3rverHandle, startS3rver } from '../../servers/s3rver.js';

const BUCKET = 'results-e2e';
let server: S3rverHandle;
let client: S3Client;
let ws: Workspace;
let db: DuckDBInstance;
let env: Record<string, string>;
const originalSha = new Map<string, string>();

const query = async (sql: string) => (await (await db.connect()).runAndReadAll(sql)).getRowObjectsJS();

/** Result files: path under results/, rows, input codec, month of their mtime. */
const RESULTS = [
  { path: 'revenue-2024-05.parquet', rows: 60_000, codec: 'uncompressed', mtime: '2024-05-31T18:00:00Z' },
  { path: 'region/churn-2024-05.parquet', rows: 25_000, codec: 'gzip', mtime: '2024-05-31T23:59:00Z' },
  { path: 'kpi-2024-04.parquet', rows: 500, codec: 'zstd', mtime: '2024-04-30T08:00:00Z' },
];

const table = (rows: number) => `SELECT
    i::BIGINT AS customer_id,
    (i % 97)::BIGINT AS segment,
    (i * 0.25)::DOUBLE AS revenue_eur,
    (i * 0.1)::DOUBLE AS score,
    'region-' || (i % 12) AS region,
    DATE '2024-05-01' + (i % 31)::INTEGER AS day
  FROM range(${rows}) t(i)`;

beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket(BUCKET);
  client = s3rverClient(server);
  ws = makeWorkspace('sluice-wf-results-');
  env = { RESULTS_DIR: ws.path('results'), RESULTS_BUCKET: BUCKET, ...s3rverEnv(server) };
  db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  ws.write('results/region/.keep', '');
  for (const r of RESULTS) {
    const file = ws.path('results', r.path);
    await connection.run(`COPY (${table(r.rows)}) TO '${file}' (FORMAT parquet, COMPRESSION ${r.codec})`);
    utimesSync(file, new Date(r.mtime), new Date(r.mtime));
    originalSha.set(r.path, sha256(readFileSync(file)));
  }
  writeFileSync(ws.path('results', 'README.txt'), 'not a result file\n');
}, 60_000);

afterAll(async () => {
  db?.closeSync();
  client?.destroy();
  await server?.stop();
  ws?.cleanup();
});

const keyOf = (r: (typeof RESULTS)[number]) =>
  `processed-data/monthly/${r.mtime.slice(0, 4)}/${r.mtime.slice(5, 7)}/${r.path.split('/').pop()}`;

describe('monthly-results workflow', () => {
  it('uploads every optimised result under processed-data/monthly/YYYY/MM with verified checksum metadata', async () => {
    const startedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const summary = await runWorkflow('monthly-results-s3', env, { stateDir: ws.path('state') });
    expect(summary.failures).toEqual([]);
    expect(summary).toMatchObject({ ok: 3, failed: 0, filesWritten: 3 });
    expect(summary.compression.bytesIn).toBe(
      RESULTS.reduce((n, r) => n + statSync(ws.path('results', 'uploaded', r.path)).size, 0),
    );

    expect(await listKeys(client, BUCKET)).toEqual(RESULTS.map(keyOf).sort());
    for (const r of RESULTS) {
      const key = keyOf(r);
      const body = await getObject(client, BUCKET, key);
      const meta = await headMetadata(client, BUCKET, key);
      expect(meta['source-sha256'], key).toBe(sha256(body));
      expect(meta['modified-at'], key).toBe(r.mtime.replace('.000', ''));
      expect(meta['uploaded-at'], key).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const uploadedAt = new Date(meta['uploaded-at']).getTime();
      expect(uploadedAt).toBeGreaterThanOrEqual(startedAt.getTime());
      expect(uploadedAt).toBeLessThanOrEqual(Date.now());
    }
  });

  it('keeps every value, with the codec changed and integers downcast', async () => {
    for (const r of RESULTS) {
      const copy = ws.path(`downloaded-${r.path.replaceAll('/', '_')}`);
      writeFileSync(copy, await getObject(client, BUCKET, keyOf(r)));
      const original = ws.path('results', 'uploaded', r.path);
      const [{ n }] = await query(`SELECT count(*)::INTEGER AS n FROM read_parquet('${copy}')`);
      expect(n, r.path).toBe(r.rows);
      const diff = await query(
        `SELECT count(*)::INTEGER AS d FROM ((SELECT * FROM read_parquet('${original}') EXCEPT ALL SELECT * FROM read_parquet('${copy}'))
          UNION ALL (SELECT * FROM read_parquet('${copy}') EXCEPT ALL SELECT * FROM read_parquet('${original}')))`,
      );
      expect(diff[0].d, r.path).toBe(0);
      const codecs = await query(`SELECT DISTINCT compression FROM parquet_metadata('${copy}')`);
      expect(
        codecs.map((c) => c.compression),
        r.path,
      ).toEqual(['SNAPPY']);
      const types = Object.fromEntries(
        (await query(`DESCRIBE SELECT * FROM read_parquet('${copy}')`)).map((c) => [
          c.column_name,
          c.column_type,
        ]),
      );
      expect(types, r.path).toMatchObject({
        customer_id: 'INTEGER',
        segment: 'INTEGER',
        revenue_eur: 'FLOAT',
        region: 'VARCHAR',
      });
    }
  });

  it('moved the originals, untouched, to results/uploaded; other files stay; a rerun does nothing', async () => {
    expect(listFiles(ws.path('results'))).toEqual(
      ['README.txt', 'region/.keep', ...RESULTS.map((r) => `uploaded/${r.path}`)].sort(),
    );
    for (const r of RESULTS)
      expect(sha256(readFileSync(ws.path('results', 'uploaded', r.path))), r.path).toBe(
        originalSha.get(r.path),
      );
    await server.clearRequests();
    const again = await runWorkflow('monthly-results-s3', env, { stateDir: ws.path('state') });
    expect(again).toMatchObject({ ok: 0, failed: 0, filesWritten: 0 });
    expect((await server.requests()).filter((q) => q.method !== 'GET' && q.method !== 'HEAD')).toEqual([]);
  });

  it('a file below the minimum size fails and stays; each pass puts its statistics JSON beside the results', async () => {
    const connection = await db.connect();
    const late = ws.path('results', 'revenue-2024-06.parquet');
    await connection.run(`COPY (${table(1000)}) TO '${late}' (FORMAT parquet, COMPRESSION zstd)`);
    utimesSync(late, new Date('2024-06-30T12:00:00Z'), new Date('2024-06-30T12:00:00Z'));
    writeFileSync(ws.path('results', 'partial-2024-06.parquet'), 'PAR1');
    const run = await runCli(
      [
        'run',
        pipelineFile('monthly-results-s3'),
        '--state-dir',
        ws.path('state'),
        '--summary-json',
        ws.path('summary.json'),
      ],
      ws.dir,
      env,
    );
    expect(run.code, run.stderr).toBe(1);
    const { report: where, ...summary } = JSON.parse(readFileSync(ws.path('summary.json'), 'utf8'));
    expect(summary).toMatchObject({ ok: 1, failed: 1, filesWritten: 1 });
    expect(summary.failures).toEqual([
      expect.objectContaining({
        path: 'partial-2024-06.parquet',
        error: expect.stringContaining('min_size: 1KiB'),
      }),
    ]);
    expect(listFiles(ws.path('results'))).toContain('partial-2024-06.parquet');
    expect(await listKeys(client, BUCKET, 'processed-data/monthly/2024/06/')).toEqual([
      'processed-data/monthly/2024/06/revenue-2024-06.parquet',
    ]);

    const stats = await listKeys(client, BUCKET, 'processed-data/stats/');
    expect(stats).toHaveLength(1);
    expect(stats[0]).toMatch(/^processed-data\/stats\/\d{4}\/\d{2}\/monthly-results-\d{8}T\d{6}\.json$/);
    expect(where).toMatchObject({ destination: stats[0] });
    expect(JSON.parse((await getObject(client, BUCKET, stats[0])).toString())).toEqual(summary);
  });
});
