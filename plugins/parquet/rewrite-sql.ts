/**
 * The SQL (DuckDB dialect) that plans, performs and verifies a Parquet rewrite. Pure string
 * building, kept apart so the downcast rules can be unit tested.
 */

export interface Column {
  name: string;
  /** DuckDB type name, e.g. `DOUBLE`, `BIGINT`, `VARCHAR`, `STRUCT(...)`. */
  type: string;
}

export type Downcast = 'FLOAT' | 'INTEGER';

export interface PlannedColumn extends Column {
  cast?: Downcast;
}

export const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
export const quoteString = (text: string) => `'${text.replace(/'/g, "''")}'`;
export const readParquet = (path: string) => `read_parquet(${quoteString(path)})`;

/** Columns that may shrink: top-level DOUBLE → FLOAT and BIGINT → INTEGER. */
export function downcastCandidates(columns: Column[]): { column: Column; to: Downcast }[] {
  const target: Record<string, Downcast> = { DOUBLE: 'FLOAT', BIGINT: 'INTEGER' };
  return columns
    .filter((column) => target[column.type])
    .map((column) => ({ column, to: target[column.type] }));
}

/**
 * One boolean per candidate: true when *every* value of the column survives the downcast.
 * BIGINT: the whole range fits in 32 bits. DOUBLE: each finite value, cast to FLOAT and back,
 * is within `tolerance` relative error (0 = exact round trip) and does not overflow or
 * underflow to zero; NULL, NaN and ±Infinity are kept by FLOAT as they are.
 */
export function downcastCheckSql(
  path: string,
  candidates: { column: Column; to: Downcast }[],
  tolerance: number,
): string {
  const checks = candidates.map(({ column, to }, i) => {
    const c = quoteIdent(column.name);
    if (to === 'INTEGER') {
      return `coalesce(min(${c}) >= -2147483648 AND max(${c}) <= 2147483647, true) AS k${i}`;
    }
    const asFloat = `TRY_CAST(${c} AS FLOAT)`;
    const fits = `(${asFloat} IS NOT NULL AND NOT isinf(${asFloat}) AND abs(${asFloat}::DOUBLE - ${c}) <= ${tolerance} * abs(${c}))`;
    return `coalesce(bool_and(${c} IS NULL OR isnan(${c}) OR isinf(${c}) OR ${fits}), true) AS k${i}`;
  });
  return `SELECT ${checks.join(', ')} FROM ${readParquet(path)}`;
}

function selectList(columns: PlannedColumn[], prefix?: string): string {
  return columns
    .map((col, i) => {
      const c = quoteIdent(col.name);
      const value = col.cast ? `CAST(${c} AS ${col.cast})` : c;
      return prefix ? `${value} AS ${prefix}${i}` : col.cast ? `${value} AS ${c}` : c;
    })
    .join(', ');
}

export function copySql(
  input: string,
  output: string,
  columns: PlannedColumn[],
  compression: string,
): string {
  return `COPY (SELECT ${selectList(columns)} FROM ${readParquet(input)}) TO ${quoteString(output)} (FORMAT parquet, COMPRESSION ${quoteString(compression)})`;
}

/**
 * Counts rows that differ between input and output, row by row in file order (POSITIONAL
 * JOIN streams both files). A downcast column is compared with the input value as cast, so
 * this checks what was written, while the tolerance was checked before writing.
 */
export function verifySql(input: string, output: string, columns: PlannedColumn[]): string {
  const plain = columns.map(({ name, type }) => ({ name, type }));
  const differs = columns.map((_, i) => `a.a${i} IS DISTINCT FROM b.a${i}`).join(' OR ') || 'false';
  return (
    `SELECT count(*) AS rows, count(*) FILTER (WHERE ${differs}) AS differing FROM ` +
    `(SELECT ${selectList(columns, 'a')} FROM ${readParquet(input)}) a POSITIONAL JOIN ` +
    `(SELECT ${selectList(plain, 'a')} FROM ${readParquet(output)}) b`
  );
}
