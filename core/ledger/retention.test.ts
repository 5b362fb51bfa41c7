/**
 * `state.retention` (issue 17): 30 simulated days of 10,000 files a day keep the ledger flat
 * (what the retention holds, not everything ever seen); committed, failed (parked) and seen
 * records are never pruned; the prune goes through the (pipeline, state, updated_at) index.
 * Days pass by moving the clock the store stamps records with, not by waiting.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { SqliteLedger } from './sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-retention-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  vi.useRealTimers();
});

const DAY = 86_400_000;
const FILES_PER_DAY = 10_000;
const RETENTION_DAYS = 7;

/** What pruneOncePerPass does at the start of a pass (chunks of 5,000, at most 100,000). */
async function prunePass(ledger: SqliteLedger, pipeline: string, now: number): Promise<number> {
  let total = 0;
  for (let n = 5_000; n === 5_000 && total < 100_000; total += n)
    n = await ledger.prune(pipeline, new Date(now - RETENTION_DAYS * DAY), 5_000);
  return total;
}

function count(state: string, where = ''): number {
  const db = new Database(join(state, 'ledger.sqlite'), { readonly: true });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM items ${where}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('ledger retention', () => {
  it('keeps the ledger flat across 30 days of 10,000 files a day', async () => {
    const state = join(dir, 'flat');
    const ledger = await SqliteLedger.open(state);
    const start = Date.UTC(2026, 0, 1);
    vi.useFakeTimers({ toFake: ['Date'] });
    // Records a retention must never drop, written on day 0.
    vi.setSystemTime(start);
    ledger.record(
      'nightly',
      { source: 's', path: 'parked.csv', version: '1:1' },
      { state: 'failed', error: 'bad' },
    );
    ledger.record('nightly', { source: 's', path: 'tidy.csv', version: '1:1' }, { state: 'committed' });
    ledger.record('nightly', { source: 's', path: 'crashed.csv', version: '1:1' }, { state: 'seen' });
    ledger.record('other', { source: 's', path: 'old.csv', version: '1:1' }, { state: 'finalized' });
    const sizes: number[] = [];
    for (let day = 0; day < 30; day++) {
      const now = start + day * DAY;
      vi.setSystemTime(now);
      await prunePass(ledger, 'nightly', now);
      for (let i = 0; i < FILES_PER_DAY; i++)
        ledger.record(
          'nightly',
          { source: 's', path: `d${day}/f${i}.csv`, version: '10:1' },
          { state: 'finalized' },
        );
      await ledger.flush();
      sizes.push(count(state, "WHERE pipeline = 'nightly' AND state = 'finalized'"));
    }
    await ledger.close();
    // Day n holds days n-7 … n: the retention (7 days, records strictly older are gone) plus today.
    expect(Math.max(...sizes)).toBe((RETENTION_DAYS + 1) * FILES_PER_DAY);
    expect(sizes.slice(RETENTION_DAYS)).toEqual(
      Array(30 - RETENTION_DAYS).fill((RETENTION_DAYS + 1) * FILES_PER_DAY),
    );
    expect(count(state, "WHERE pipeline = 'nightly' AND state <> 'finalized'")).toBe(3);
    // Another pipeline's records are its own retention's business.
    expect(count(state, "WHERE pipeline = 'other'")).toBe(1);
  }, 60_000);

  it('prunes through the (pipeline, state, updated_at) index, a bounded batch at a time', async () => {
    const state = join(dir, 'plan');
    const ledger = await SqliteLedger.open(state);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.UTC(2026, 0, 1));
    for (let i = 0; i < 12; i++)
      ledger.record('p', { source: 's', path: `f${i}`, version: '1' }, { state: 'finalized' });
    vi.setSystemTime(Date.UTC(2026, 2, 1));
    expect(await ledger.prune('p', new Date(Date.UTC(2026, 1, 1)), 5)).toBe(5);
    expect(await ledger.prune('p', new Date(Date.UTC(2026, 1, 1)), 5)).toBe(5);
    expect(await ledger.prune('p', new Date(Date.UTC(2026, 1, 1)), 5)).toBe(2);
    expect(await ledger.prune('p', new Date(Date.UTC(2026, 1, 1)), 5)).toBe(0);
    await ledger.close();
    const db = new Database(join(state, 'ledger.sqlite'), { readonly: true });
    const plan = db
      .prepare(
        "EXPLAIN QUERY PLAN SELECT pipeline, source, path, version FROM items WHERE pipeline = ? AND state = 'finalized' AND updated_at < ? ORDER BY updated_at LIMIT ?",
      )
      .all('p', 0, 5) as Array<{ detail: string }>;
    db.close();
    expect(plan.map((r) => r.detail).join('\n')).toMatch(/USING (COVERING )?INDEX items_by_state/);
  });

  it('a ledger written before `content` existed gains the column and keeps its rows', async () => {
    const state = join(dir, 'old');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(state, { recursive: true });
    const db = new Database(join(state, 'ledger.sqlite'));
    db.exec(`CREATE TABLE items (
      pipeline TEXT NOT NULL, source TEXT NOT NULL, path TEXT NOT NULL, version TEXT NOT NULL,
      state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, destinations TEXT NOT NULL DEFAULT '[]',
      error TEXT, updated_at INTEGER NOT NULL, PRIMARY KEY (pipeline, source, path, version)) WITHOUT ROWID;
      INSERT INTO items VALUES ('p', 's', 'a.csv', '3:1', 'finalized', 1, '[]', NULL, 1);`);
    db.close();
    const ledger = await SqliteLedger.open(state);
    expect(await ledger.doneByName('p', 's', 'a.csv')).toMatchObject({ version: '3:1', state: 'finalized' });
    ledger.record(
      'p',
      { source: 's', path: 'b.csv', version: '4:1' },
      { state: 'finalized', content: 'ab'.repeat(32) },
    );
    expect(await ledger.doneByContent('p', 'ab'.repeat(32))).toMatchObject({ path: 'b.csv' });
    await ledger.close();
  });
});
