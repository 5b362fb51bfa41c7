/**
 * The ledger never moves an item backwards (issue 11, #14): in both stores, an update ranking
 * below the stored state (seen = failed < committed < finalized) is ignored, whether it meets
 * the stored row or an update still waiting in the same batch; equal ranks replace each other.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisHandle, startRedis } from '../../test/servers/redis.js';
import type { ItemIdentity } from '../plugin-api.js';
import type { Ledger, LedgerUpdate } from './ledger.js';
import { RedisLedger } from './redis.js';
import { SqliteLedger } from './sqlite.js';

let redis: RedisHandle;
const stateDirs: string[] = [];
const ledgers: Ledger[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.allSettled(ledgers.map((l) => l.close()));
  await redis?.stop();
  for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });
});

let n = 0;
const stores: Array<[string, () => Promise<Ledger>]> = [
  [
    'sqlite',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-ledger-order-'));
      stateDirs.push(dir);
      const ledger = await SqliteLedger.open(dir);
      ledgers.push(ledger);
      return ledger;
    },
  ],
  [
    'redis',
    async () => {
      const ledger = RedisLedger.connect(redis.url);
      ledgers.push(ledger);
      return ledger;
    },
  ],
];

describe.each(stores)('%s ledger: monotonic records', (_store, open) => {
  const item = (): ItemIdentity => ({
    source: 'in',
    path: `dir/file-${++n}.txt`,
    version: '10:1700000000000',
  });

  /** Records `updates`, each in its own batch (flushed) or all in one batch. */
  async function apply(ledger: Ledger, id: ItemIdentity, updates: LedgerUpdate[], batched: boolean) {
    for (const u of updates) {
      ledger.record('p', id, u);
      if (!batched) await ledger.flush();
    }
    await ledger.flush();
    return ledger.get('p', id);
  }

  for (const batched of [false, true]) {
    const how = batched ? 'in one batch' : 'one write at a time';

    it(`a late failed never replaces finalized or committed (${how})`, async () => {
      const ledger = await open();
      const a = item();
      const finalized = await apply(
        ledger,
        a,
        [
          { state: 'seen', attempts: 1 },
          { state: 'committed', attempts: 1, destinations: ['out/a.txt'] },
          { state: 'finalized', attempts: 1 },
          { state: 'failed', attempts: 3, error: 'could not renew lock' },
          { state: 'seen', attempts: 1 },
        ],
        batched,
      );
      expect(finalized).toMatchObject({ state: 'finalized', attempts: 1, destinations: ['out/a.txt'] });
      expect(finalized?.error).toBeUndefined();

      const b = item();
      const committed = await apply(
        ledger,
        b,
        [
          { state: 'committed', attempts: 2, destinations: ['out/b.txt'] },
          { state: 'failed', attempts: 2, error: 'EXDEV' },
          { state: 'seen', attempts: 3 },
        ],
        batched,
      );
      expect(committed).toMatchObject({ state: 'committed', attempts: 2, destinations: ['out/b.txt'] });
      expect(committed?.error).toBeUndefined();
      // A committed record can still be finalized, and a finalized one not be made committed.
      expect(
        await apply(
          ledger,
          b,
          [
            { state: 'finalized', attempts: 3 },
            { state: 'committed', attempts: 4, destinations: ['out/b (1).txt'] },
          ],
          batched,
        ),
      ).toMatchObject({ state: 'finalized', attempts: 3, destinations: ['out/b.txt'] });
    });

    it(`equal ranks replace each other (${how})`, async () => {
      const ledger = await open();
      const a = item();
      expect(
        await apply(
          ledger,
          a,
          [
            { state: 'seen', attempts: 1 },
            { state: 'failed', attempts: 1, error: 'boom' },
          ],
          batched,
        ),
      ).toMatchObject({
        state: 'failed',
        error: 'boom',
      });
      const retried = await apply(ledger, a, [{ state: 'seen', attempts: 1 }], batched);
      expect(retried?.state).toBe('seen');
      expect(retried?.error).toBeUndefined();

      const b = item();
      expect(
        await apply(
          ledger,
          b,
          [
            { state: 'committed', attempts: 1, destinations: ['out/b.txt'] },
            { state: 'committed', attempts: 2, destinations: ['out/b2.txt'] },
            { state: 'finalized', attempts: 2 },
            { state: 'finalized', attempts: 5 },
          ],
          batched,
        ),
      ).toMatchObject({ state: 'finalized', attempts: 5, destinations: ['out/b2.txt'] });
    });
  }

  it('a pending lower update does not hide the stored record from get()', async () => {
    const ledger = await open();
    const a = item();
    ledger.record('p', a, { state: 'finalized', attempts: 1, destinations: ['out/a.txt'] });
    await ledger.flush();
    ledger.record('p', a, { state: 'failed', attempts: 1, error: 'late' });
    expect(await ledger.get('p', a)).toMatchObject({ state: 'finalized', destinations: ['out/a.txt'] });
    await ledger.flush();
    expect(await ledger.get('p', a)).toMatchObject({ state: 'finalized', destinations: ['out/a.txt'] });
    expect(await ledger.history('p', { state: 'failed' })).toEqual([]);
  });
});

describe('redis ledger: two writers racing on one item', () => {
  it('a failed from one worker and finalized from another end finalized, in either order', async () => {
    const one = RedisLedger.connect(redis.url);
    const two = RedisLedger.connect(redis.url);
    ledgers.push(one, two);
    for (let i = 0; i < 50; i++) {
      const id: ItemIdentity = { source: 'in', path: `race-${i}.txt`, version: '1:1' };
      const [first, second] = i % 2 ? [one, two] : [two, one];
      first.record('p', id, { state: 'committed', attempts: 1, destinations: ['out/x'] });
      second.record('p', id, { state: 'failed', attempts: 1, error: 'fenced' });
      first.record('p', id, { state: 'finalized', attempts: 1 });
      await Promise.all([one.flush(), two.flush()]);
      expect(await one.get('p', id)).toMatchObject({ state: 'finalized', destinations: ['out/x'] });
    }
  });
});

describe.each(stores)('%s ledger: done by name, by content, re-opened failures', (_store, open) => {
  it('finds a finalized record of any version of a path, and of the same bytes under any path', async () => {
    const ledger = await open();
    const pipeline = `lookup-${++n}`;
    const sha = 'cd'.repeat(32);
    ledger.record(
      pipeline,
      { source: 's', path: 'a.csv', version: '1:1' },
      { state: 'committed', content: sha },
    );
    await ledger.flush();
    // Committed is not done: neither lookup finds it yet.
    expect(await ledger.doneByName(pipeline, 's', 'a.csv')).toBeUndefined();
    expect(await ledger.doneByContent(pipeline, sha)).toBeUndefined();
    ledger.record(
      pipeline,
      { source: 's', path: 'a.csv', version: '1:1' },
      { state: 'finalized', content: sha },
    );
    ledger.record(
      pipeline,
      { source: 's', path: 'b.csv', version: '1:1' },
      { state: 'failed', error: 'bad' },
    );
    await ledger.flush();
    expect(await ledger.doneByName(pipeline, 's', 'a.csv')).toMatchObject({ version: '1:1', content: sha });
    expect(await ledger.doneByName(pipeline, 's', 'b.csv')).toBeUndefined();
    expect(await ledger.doneByName(pipeline, 'other', 'a.csv')).toBeUndefined();
    expect(await ledger.doneByContent(pipeline, sha)).toMatchObject({ path: 'a.csv' });
    expect(await ledger.doneByContent(pipeline, 'ef'.repeat(32))).toBeUndefined();
  });

  it('finds a finalized record still waiting in its batch, with the destinations recorded before', async () => {
    const ledger = await open();
    const pipeline = `batched-${++n}`;
    const sha = '12'.repeat(32);
    const id = { source: 's', path: 'late.csv', version: '2:2' };
    ledger.record(pipeline, id, { state: 'committed', destinations: ['/out/late.csv'], content: sha });
    await ledger.flush();
    ledger.record(pipeline, id, { state: 'finalized', content: sha });
    expect(await ledger.doneByName(pipeline, 's', 'late.csv')).toMatchObject({
      state: 'finalized',
      destinations: ['/out/late.csv'],
    });
    expect(await ledger.doneByContent(pipeline, sha)).toMatchObject({
      path: 'late.csv',
      destinations: ['/out/late.csv'],
    });
  });

  it('a failed (parked) record is re-opened by `seen` (sluice retry) and stays below committed', async () => {
    const ledger = await open();
    const pipeline = `reopen-${++n}`;
    const id = { source: 's', path: 'x.csv', version: '1:1' };
    ledger.record(pipeline, id, { state: 'failed', error: 'tampered' });
    await ledger.flush();
    ledger.record(pipeline, id, { state: 'seen' });
    await ledger.flush();
    expect(await ledger.get(pipeline, id)).toMatchObject({ state: 'seen' });
    expect((await ledger.get(pipeline, id))?.error).toBeUndefined();
  });
});
