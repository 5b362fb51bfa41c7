/**
 * Listing from SQL (`http` source, `list.sql`) against a real PostgreSQL started by the suite
 * (test/servers/postgres.ts) and the REST test server: the DataHub job of
 * pipelines/datahub-compress-sql.yaml picks one month's files from a `files` table of 2,000
 * rows over three years, compresses those of at least 1 MiB, uploads, verifies and deletes
 * exactly those; a second run does nothing. Then what goes wrong: a row without `path`, a bad
 * query, a wrong password (no password in any message), and the cursor (rows arrive in batches,
 * the connection is closed when the listing ends early).
 */
import { gunzipSync } from 'node:zlib';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import type { Item } from '../../core/plugin-api.js';
import { httpSource } from '../../plugins/http/source.js';
import { listRows, type SqlListingConfig } from '../../plugins/sql/listing.js';
import { makePluginContext } from '../helpers/context.js';
import { collect, configure, sha256 } from '../helpers/object-store.js';
import { pipelineFile, runCli, runWorkflow } from '../helpers/workflows.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { type PostgresHandle, startPostgres } from '../servers/postgres.js';
import { type RestApi, startRestApi } from '../servers/rest-api.js';

const TOKEN = 'datahub-sql-token-7d41';
const MiB = 1024 * 1024;
const ROWS = 2000;
/** Months from January 2022 to December 2024; row i falls in month i % 36. */
const MONTHS = 36;

/** The big files (name → [year, month, size]): only June 2023's ≥ 1 MiB, not .gz, are compressed. */
const BIG: Record<string, [number, number, number]> = {
  'exports/2023-06/meter-big.csv': [2023, 6, 3 * MiB],
  'exports/2023-06/meter-exactly-1mib.csv': [2023, 6, MiB],
  'exports/2023-06/sales report #7 (final).csv': [2023, 6, 2 * MiB + 123],
  'exports/2023-06/meter-just-under.csv': [2023, 6, MiB - 1],
  'exports/2023-06/archive-already.csv.gz': [2023, 6, 2 * MiB],
  'exports/2022-06/meter-big.csv': [2022, 6, 2 * MiB],
  'exports/2024-06/meter-big.csv': [2024, 6, 2 * MiB],
  'exports/2023-07/meter-big.csv': [2023, 7, 2 * MiB],
};
const COMPRESSED = [
  'exports/2023-06/meter-big.csv',
  'exports/2023-06/meter-exactly-1mib.csv',
  'exports/2023-06/sales report #7 (final).csv',
];

let db: PostgresHandle;
let api: RestApi;
let ws: Workspace;
const originals = new Map<string, string>(); // name → sha256
let juneRows = 0;

/** Sensor readings as CSV: compressible like the real exports, but not trivially so. */
function csv(size: number, seed: number): Buffer {
  const lines: string[] = ['timestamp,sensor,value,status'];
  let length = lines[0].length + 1;
  let x = seed;
  for (let i = 0; length < size; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const line = `2023-06-${String((i % 28) + 1).padStart(2, '0')}T${String(i % 24).padStart(2, '0')}:00:00Z,sensor-${x % 97},${(x % 100000) / 1000},${x % 13 === 0 ? 'WARN' : 'OK'}`;
    lines.push(line);
    length += line.length + 1;
  }
  return Buffer.from(`${lines.join('\n')}\n`).subarray(0, size);
}

async function sql(text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}

function env(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    DATAHUB_URL: api.url,
    DATAHUB_TOKEN: TOKEN,
    DATAHUB_DB_URL: db.url,
    MONTH: '6',
    YEAR: '2023',
    ...overrides,
  };
}

const writes = () => api.requests.filter((r) => r.method === 'PUT' || r.method === 'DELETE');

beforeAll(async () => {
  [db, api] = await Promise.all([startPostgres(), startRestApi({ token: TOKEN })]);
  ws = makeWorkspace('sluice-sql-listing-');
  await sql(`CREATE TABLE files (
    id text PRIMARY KEY,
    name text NOT NULL,
    size_bytes bigint NOT NULL,
    modified_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL
  )`);
  const rows: { id: string; name: string; size: number; date: Date }[] = [];
  const bigNames = Object.keys(BIG);
  for (let i = 0; i < ROWS; i++) {
    const month = i % MONTHS;
    const year = 2022 + Math.floor(month / 12);
    const day = (Math.floor(i / MONTHS) % 28) + 1;
    const date = new Date(Date.UTC(year, month % 12, day, 8, i % 60));
    // The first rows of a month carry the big files of that month, the rest are small files.
    const big = bigNames.find(
      (n) => BIG[n][0] === year && BIG[n][1] === (month % 12) + 1 && !originals.has(n),
    );
    const name = big ?? `exports/${year}-${String((month % 12) + 1).padStart(2, '0')}/reading-${i}.csv`;
    const body = csv(big ? BIG[big][2] : 200 + ((i * 37) % 3000), i + 1);
    originals.set(name, sha256(body));
    const stored = await api.seed(name, body, date);
    rows.push({ id: stored.id, name, size: body.length, date });
    if (year === 2023 && month % 12 === 5) juneRows++;
  }
  expect(bigNames.every((n) => originals.has(n))).toBe(true);
  await sql(
    `INSERT INTO files (id, name, size_bytes, modified_at, created_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $4::timestamptz[])`,
    [rows.map((r) => r.id), rows.map((r) => r.name), rows.map((r) => r.size), rows.map((r) => r.date)],
  );
}, 120_000);

afterAll(async () => {
  await Promise.all([db?.stop(), api?.stop()]);
  ws?.cleanup();
});

describe('pipelines/datahub-compress-sql.yaml', () => {
  it('compresses exactly the chosen month’s big files, verifies the upload and deletes only those', async () => {
    const summary = await runWorkflow('datahub-compress-sql', env(), { stateDir: ws.path('state') });
    expect(summary.failures).toEqual([]);
    expect(summary.ok).toBe(COMPRESSED.length);
    expect(summary.filtered).toBe(juneRows - COMPRESSED.length);

    for (const name of COMPRESSED) {
      expect(api.file(name), `${name} should be deleted`).toBeUndefined();
      expect(sha256(gunzipSync(await api.read(`${name}.gz`))), name).toBe(originals.get(name));
    }
    // Everything else is where it was, byte for byte: 2,000 files minus the three originals, plus their .gz.
    const left = api.files().filter((f) => !f.name.endsWith('.csv.gz') || f.name.includes('archive-already'));
    expect(left.length).toBe(ROWS - COMPRESSED.length);
    for (const file of left) expect(file.sha256, file.name).toBe(originals.get(file.name));
    expect(
      writes()
        .filter((r) => r.method === 'DELETE')
        .map((r) => r.status),
    ).toEqual([204, 204, 204]);
    expect(writes().filter((r) => r.method === 'PUT').length).toBe(COMPRESSED.length);
    expect(await api.pendingUploads()).toBe(0);
  }, 120_000);

  it('a second run of the month does nothing (the ledger knows its files)', async () => {
    const before = writes().length;
    const downloadsBefore = api.requests.filter((r) => r.url.endsWith('/content')).length;
    const summary = await runWorkflow('datahub-compress-sql', env(), { stateDir: ws.path('state') });
    expect(summary.failures).toEqual([]);
    expect(summary.ok).toBe(0);
    expect(summary.skipped).toBe(COMPRESSED.length);
    expect(writes().length).toBe(before);
    expect(api.requests.filter((r) => r.url.endsWith('/content')).length).toBe(downloadsBefore);
  }, 60_000);

  it('another month and year come from the same query by their variables', async () => {
    const summary = await runWorkflow('datahub-compress-sql', env({ MONTH: '07', YEAR: '2023' }), {
      stateDir: ws.path('state'),
      dryRun: true,
    });
    expect(summary.failures).toEqual([]);
    expect(summary.ok).toBe(1); // exports/2023-07/meter-big.csv, in a dry run: nothing written
    expect(api.file('exports/2023-07/meter-big.csv.gz')).toBeUndefined();
  }, 60_000);
});

describe('what goes wrong is said clearly', () => {
  const sourceConfig = (sqlListing: Partial<SqlListingConfig>) =>
    configure(httpSource, {
      list: { sql: { url: db.url, query: 'SELECT id, name AS path FROM files ORDER BY id', ...sqlListing } },
      download: { url: `${api.url}/api/files/{meta.id}/content` },
      headers: { Authorization: `Bearer ${TOKEN}` },
    });
  const listing = async (sqlListing: Partial<SqlListingConfig>): Promise<Item[]> => {
    const config = sourceConfig(sqlListing);
    httpSource.validate?.(config);
    const source = await httpSource.create(config, makePluginContext());
    try {
      return await collect(source.list(new AbortController().signal));
    } finally {
      await source.close?.();
    }
  };
  const failure = async (sqlListing: Partial<SqlListingConfig>): Promise<SluiceError> => {
    const err = await listing(sqlListing).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SluiceError);
    return err as SluiceError;
  };

  it('maps columns: path, size, mtime to the item, every other column to meta', async () => {
    const items = await listing({
      query: `SELECT id, name AS path, size_bytes AS size, modified_at AS mtime, created_at
              FROM files WHERE name = $1`,
      params: ['exports/2023-06/meter-big.csv'],
    });
    expect(items).toHaveLength(1);
    const [item] = items;
    expect(item.path).toBe('exports/2023-06/meter-big.csv');
    expect(item.size).toBe(3 * MiB);
    expect(item.mtime).toBeInstanceOf(Date);
    expect(Object.keys(item.meta).sort()).toEqual(['created_at', 'id']);
    expect(item.meta.created_at).toBe(item.mtime?.toISOString());
  });

  it('a query without a path column names the column and what the query returns', async () => {
    const err = await failure({ query: 'SELECT id, name FROM files' });
    expect(err.message).toMatch(/row 1 of the SQL listing .*no "path" column \(it returns "id", "name"\)/);
  });

  it('a row whose path is null fails the listing, naming the row and column', async () => {
    const err = await failure({ query: `SELECT 'a.csv' AS path UNION ALL SELECT NULL` });
    expect(err.message).toMatch(/row 2 of the SQL listing .*the "path" column is null/);
  });

  it('an unsafe path becomes a rejected item (reported, never downloaded), as in the URL listing', async () => {
    const items = await listing({ query: `SELECT 'x' AS id, '../etc/passwd' AS path` });
    expect(items).toHaveLength(1);
    expect(items[0].rejected).toMatch(/row 1 of the SQL listing .*"\.\." segment/);
    await expect(items[0].open()).rejects.toMatchObject({ code: 'SLUICE_E_NAME' });
  });

  it('a bad query names the query and the server’s reason, without the password', async () => {
    const err = await failure({ query: 'SELECT id, nme AS path FROM files' });
    expect(err.message).toMatch(
      /SQL listing on postgres:\/\/sluice@127\.0\.0\.1:\d+\/datahub: the query "SELECT id, nme AS path FROM files" failed: column "nme" does not exist \(SQLSTATE 42703\)/,
    );
    expect(err.retryable).toBe(false);
    expect(err.toUserString()).not.toContain(db.password);
  });

  it('a wrong password fails to connect, says so, and shows no password', async () => {
    const wrong = 'Wr0ng-Passw0rd-xyz';
    const err = await failure({ url: db.urlWith({ password: wrong }) });
    expect(err.message).toMatch(
      /SQL listing on postgres:\/\/sluice@127\.0\.0\.1:\d+\/datahub: cannot connect: password authentication failed for user "sluice" \(SQLSTATE 28P01\)/,
    );
    expect(err.retryable).toBe(false);
    const shown = `${err.toUserString()} ${String(err.cause)}`;
    expect(err.toUserString()).not.toContain(wrong);
    expect(shown).not.toContain(db.password);
  });

  it('through the CLI: a refused login fails the run, and no password is printed', async () => {
    const wrong = 'Wr0ng-Passw0rd-cli';
    const r = await runCli(
      [
        'run',
        pipelineFile('datahub-compress-sql'),
        '--state-dir',
        ws.path('state-cli'),
        '--log-format',
        'json',
      ],
      ws.dir,
      env({ DATAHUB_DB_URL: db.urlWith({ password: wrong }) }),
    );
    expect(r.code).not.toBe(0);
    const output = r.stdout + r.stderr;
    expect(output).toMatch(/cannot connect: password authentication failed for user \\?"sluice\\?"/);
    expect(output).not.toContain(wrong);
    expect(output).not.toContain(db.password);
    expect(output).not.toContain(TOKEN);
  }, 60_000);

  it('params are query parameters, never SQL text', async () => {
    const items = await listing({
      query: 'SELECT id, name AS path FROM files WHERE name = $1',
      params: ["x' OR '1'='1"],
    });
    expect(items).toEqual([]);
  });

  it('validation: exactly one of list.url and list.sql; a non-postgres URL is refused', () => {
    const both = configure(httpSource, {
      list: { url: `${api.url}/api/files`, sql: { url: db.url, query: 'SELECT 1' } },
      download: { url: `${api.url}/api/files/{meta.id}/content` },
    });
    expect(() => httpSource.validate?.(both)).toThrow(/both `url` and `sql`/);
    const neither = configure(httpSource, { list: {}, download: { url: `${api.url}/x/{path}` } });
    expect(() => httpSource.validate?.(neither)).toThrow(/needs `url`.* or `sql`/);
    const https = configure(httpSource, {
      list: { sql: { url: 'https://db.example/datahub', query: 'SELECT 1' } },
      download: { url: `${api.url}/x/{path}` },
    });
    expect(() => httpSource.validate?.(https)).toThrow(/list\.sql\.url must be a postgres:\/\//);
  });
});

describe('the cursor', () => {
  const config = (query: string, batch_size = 100): SqlListingConfig =>
    ({ url: db.url, query, params: [], batch_size, connect_timeout: '10s' }) as SqlListingConfig;
  const sluiceSessions = async () =>
    Number(
      (await sql(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'sluice'`)).rows[0].n,
    );

  it('reads rows in batches: the first rows arrive although computing row 150,000 would fail', async () => {
    // Read whole, this query fails (division by zero at g = 150000); read through a cursor,
    // the server computes only the batches asked for.
    const query =
      'SELECT g::text AS path FROM generate_series(1, 200000) g WHERE 1 / (150000 - g) IS NOT NULL';
    await expect(sql(query)).rejects.toThrow(/division by zero/);
    const rows: unknown[] = [];
    for await (const row of listRows(config(query), new AbortController().signal)) {
      rows.push(row);
      if (rows.length === 250) break;
    }
    expect(rows[249]).toEqual({ path: '250' });
    // Reading on meets the failing row: an error naming the query.
    const all = collect(listRows(config(query, 5000), new AbortController().signal));
    await expect(all).rejects.toThrow(/the query "SELECT g::text AS path .*" failed: division by zero/);
  });

  it('closes its connection when the listing ends, stops early, fails or is aborted', async () => {
    expect(await sluiceSessions()).toBe(0);
    await collect(listRows(config('SELECT 1 AS path'), new AbortController().signal));
    expect(await sluiceSessions()).toBe(0);
    const aborter = new AbortController();
    const seen: unknown[] = [];
    const aborted = (async () => {
      for await (const row of listRows(
        config('SELECT g AS path, pg_sleep(0.001) FROM generate_series(1, 100000) g', 10),
        aborter.signal,
      )) {
        seen.push(row);
        if (seen.length === 15) aborter.abort();
      }
    })();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen).toHaveLength(15);
    // end() is asynchronous on the server side: the session goes within moments.
    for (let i = 0; i < 50 && (await sluiceSessions()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await sluiceSessions()).toBe(0);
  });
});
