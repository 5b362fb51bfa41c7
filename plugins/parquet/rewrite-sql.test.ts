import { describe, expect, it } from 'vitest';
import { copySql, downcastCandidates, downcastCheckSql, quoteIdent, verifySql } from './rewrite-sql.js';

describe('parquet rewrite SQL', () => {
  const columns = [
    { name: 'id', type: 'BIGINT' },
    { name: 'v"x', type: 'DOUBLE' },
    { name: 'at', type: 'TIMESTAMP' },
  ];

  it('considers only top-level DOUBLE and BIGINT columns', () => {
    expect(downcastCandidates(columns).map((c) => [c.column.name, c.to])).toEqual([
      ['id', 'INTEGER'],
      ['v"x', 'FLOAT'],
    ]);
    expect(downcastCandidates([{ name: 's', type: 'STRUCT(a DOUBLE)' }])).toEqual([]);
  });

  it('quotes identifiers and paths', () => {
    expect(quoteIdent('v"x')).toBe('"v""x"');
    expect(
      copySql("/t/it's.parquet", '/t/o.parquet', [{ name: 'a', type: 'DOUBLE', cast: 'FLOAT' }], 'zstd'),
    ).toBe(
      `COPY (SELECT CAST("a" AS FLOAT) AS "a" FROM read_parquet('/t/it''s.parquet')) TO '/t/o.parquet' (FORMAT parquet, COMPRESSION 'zstd')`,
    );
  });

  it('checks the int32 range and the float tolerance per column', () => {
    const sql = downcastCheckSql('/in.parquet', downcastCandidates(columns), 0);
    expect(sql).toContain('min("id") >= -2147483648 AND max("id") <= 2147483647');
    expect(sql).toContain('abs(TRY_CAST("v""x" AS FLOAT)::DOUBLE - "v""x") <= 0 * abs("v""x")');
  });

  it('compares downcast columns with the input as cast', () => {
    const sql = verifySql('/in', '/out', [
      { name: 'id', type: 'BIGINT', cast: 'INTEGER' },
      { name: 'at', type: 'TIMESTAMP' },
    ]);
    expect(sql).toContain('CAST("id" AS INTEGER) AS a0');
    expect(sql).toContain('a.a0 IS DISTINCT FROM b.a0 OR a.a1 IS DISTINCT FROM b.a1');
    expect(sql).toContain('POSITIONAL JOIN');
  });
});
