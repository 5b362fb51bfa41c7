/**
 * Listing from SQL: the rows of a PostgreSQL query, read through a cursor in batches, so a
 * query over millions of rows holds one batch in memory at a time. A source that lists from
 * SQL puts `SqlListing()` into its schema, calls `validateSqlListing` from its `validate`,
 * and maps each row of `listRows` to an item; the rows themselves mean nothing here.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Static, Type } from '@sinclair/typebox';
import { errorMessage, SluiceError } from '../../core/errors.js';
import { Duration, Secret } from '../../core/schema-fragments.js';
import { parseDuration } from '../../core/units.js';

/** The `sql` block of a listing; `description` says what its rows mean to the source using it. */
export const SqlListing = (options: { description?: string } = {}) =>
  Type.Object(
    {
      url: Secret(
        Type.String({
          minLength: 1,
          description:
            'PostgreSQL connection URL, `postgres://user:password@host:5432/database` (query options such as `sslmode=require` as node-postgres reads them). Masked in all output.',
          examples: [`$\{DATAHUB_DB_URL}`],
        }),
      ),
      query: Type.String({
        minLength: 1,
        description:
          'The SELECT whose rows are the items; `$1`, `$2`… stand for `params`. Its columns are read by name (use `AS` to rename).',
      }),
      params: Type.Optional(
        Type.Array(Type.Union([Type.String(), Type.Number(), Type.Boolean()]), {
          description:
            'Values of `$1`, `$2`… in order, sent as query parameters (never spliced into the SQL text), e.g. `["${MONTH}", "${YEAR}"]`; PostgreSQL converts each to the type its place needs.',
        }),
      ),
      batch_size: Type.Integer({
        minimum: 1,
        maximum: 100_000,
        default: 1000,
        description: 'Rows fetched per round trip from the cursor: the most rows held in memory at once.',
      }),
      connect_timeout: Duration({
        default: '30s',
        description: 'A connection not established within this time fails the listing.',
      }),
    },
    { additionalProperties: false, ...options },
  );

export type SqlListingConfig = Static<ReturnType<typeof SqlListing>>;

/** One row, by column name. Column values as node-postgres parses them (bigint as a string, timestamps as Date). */
export type Row = Record<string, unknown>;

/**
 * Static checks `validate` can make without connecting: the URL is a PostgreSQL URL.
 * `jsonPath` is where the listing sits in the plugin config (e.g. `/list/sql`).
 */
export function validateSqlListing(config: SqlListingConfig, jsonPath: string): void {
  if (!isPostgresUrl(config.url)) {
    throw new SluiceError(
      'SLUICE_E_CONFIG',
      `${jsonPath.slice(1).replace(/\//g, '.')}.url must be a postgres:// (or postgresql://) URL, got "${displayDatabaseUrl(config.url)}"`,
      { context: { jsonPath: `${jsonPath}/url` } },
    );
  }
}

function isPostgresUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === 'postgres:' || protocol === 'postgresql:';
  } catch {
    return false;
  }
}

/** The URL as it can be shown: no password, no query options (they may carry keys). */
export function displayDatabaseUrl(text: string): string {
  try {
    const url = new URL(text);
    const user = url.username ? `${url.username}@` : '';
    return `${url.protocol}//${user}${url.host}${url.pathname}`;
  } catch {
    return '(not a URL)';
  }
}

/** The query as errors name it: its first line, shortened. */
function queryLabel(query: string): string {
  const line = query.trim().split('\n')[0].trim();
  return line.length > 80 ? `${line.slice(0, 77)}…` : line;
}

/** SQLSTATE classes worth another try: connection exceptions, resources, operator intervention. */
const TRANSIENT_SQLSTATE = /^(08|53|57P0[1-3])/;

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * The rows of the query, in the order it gives them, `batch_size` at a time. The cursor and
 * the connection are closed when the rows end, when reading fails, when the consumer stops
 * early (`return`) and when `signal` aborts (a read in progress is cut off).
 */
export async function* listRows(config: SqlListingConfig, signal: AbortSignal): AsyncGenerator<Row> {
  const where = `SQL listing on ${displayDatabaseUrl(config.url)}`;
  const query = `query "${queryLabel(config.query)}"`;
  // Heavy and rarely used: loaded only by pipelines that list from SQL.
  const { default: pg } = await import('pg');
  const { default: Cursor } = await import('pg-cursor');
  signal.throwIfAborted();
  const client = new pg.Client({
    connectionString: config.url,
    connectionTimeoutMillis: parseDuration(config.connect_timeout ?? '30s'),
    application_name: 'sluice',
  });
  // A connection lost between reads is reported by the next read; without a listener the
  // client's 'error' event would crash the process.
  client.on('error', () => {});
  const stop = () => {
    client.end().catch(() => {});
  };
  signal.addEventListener('abort', stop, { once: true });
  let cursor: InstanceType<typeof Cursor<Row>> | undefined;
  let failed = false;
  try {
    try {
      await client.connect();
    } catch (err) {
      signal.throwIfAborted();
      const state = sqlState(err);
      throw new SluiceError('SLUICE_E_SOURCE', `${where}: cannot connect: ${describe(err)}`, {
        cause: err,
        // Refused, reset or timed out: the default rules; a refused login or a missing database is final.
        retryable: state ? TRANSIENT_SQLSTATE.test(state) : undefined,
      });
    }
    cursor = client.query(new Cursor<Row>(config.query, config.params ?? []));
    const batch = config.batch_size ?? 1000;
    for (;;) {
      let rows: Row[];
      try {
        rows = await cursor.read(batch);
      } catch (err) {
        failed = true;
        signal.throwIfAborted();
        const state = sqlState(err);
        throw new SluiceError('SLUICE_E_SOURCE', `${where}: the ${query} failed: ${describe(err)}`, {
          cause: err,
          retryable: state ? TRANSIENT_SQLSTATE.test(state) : undefined,
        });
      }
      if (rows.length === 0) return;
      for (const row of rows) {
        signal.throwIfAborted();
        yield row;
      }
    }
  } finally {
    signal.removeEventListener('abort', stop);
    // A consumer that stopped early leaves an open portal: closing it first lets the session end
    // cleanly. After a failed read or an abort there is nothing to close (and no answer would come).
    // Bounded: a connection that died unnoticed would never answer the close.
    if (cursor && !failed && !signal.aborted) {
      await Promise.race([cursor.close().catch(() => {}), sleep(5000, undefined, { ref: false })]);
    }
    await client.end().catch(() => {});
  }
}

/** A driver error as one line: the server's message, its SQLSTATE, and where in the query. */
function describe(err: unknown): string {
  const e = err as { code?: unknown; position?: unknown; detail?: unknown; hint?: unknown };
  const parts = [errorMessage(err)];
  const state = sqlState(err);
  if (state) parts.push(`(SQLSTATE ${state})`);
  else if (typeof e.code === 'string') parts.push(`(${e.code})`);
  if (typeof e.position === 'string') parts.push(`at character ${e.position}`);
  if (typeof e.detail === 'string') parts.push(`— ${e.detail}`);
  if (typeof e.hint === 'string') parts.push(`(hint: ${e.hint})`);
  return parts.join(' ');
}
