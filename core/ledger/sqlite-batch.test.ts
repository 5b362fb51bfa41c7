/**
 * The SQLite ledger's batches (issue 16.4): an item that ends before its `seen` is due is
 * written once, as the state it reached; `seen` waits past the batch timer, never past an
 * explicit flush; nothing else waits; the rank rule and what the upsert keeps (destinations,
 * content) hold inside one batch exactly as across batches. Read from a second connection:
 * what is on disk, not what get() merges from the batch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { ItemIdentity } from '../plugin-api.js';
import { SqliteLedger } from './sqlite.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function open() {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ledger-batch-'));
  dirs.push(dir);
  const ledger = await SqliteLedger.open(dir);
  const disk = new Database(join(dir, 'ledger.sqlite'), { readonly: true });
  /** The row as stored, or undefined. */
  const stored = (id: ItemIdentity) =>
    disk
      .prepare('SELECT state, attempts, destinations, error, content FROM items WHERE path = ?')
      .get(id.path) as
      | {
          state: string;
          attempts: number;
          destinations: string;
          error: string | null;
          content: string | null;
        }
      | undefined;
  const close = async () => {
    disk.close();
    await ledger.close();
  };
  return { ledger, stored, close };
}

let n = 0;
const item = (): ItemIdentity => ({ source: 'in', path: `f-${++n}.txt`, version: '4:1700000000000' });
/** Past the batch timer (25 ms), well short of the hold of a `seen` (1 s). */
const pastTimer = () => new Promise((r) => setTimeout(r, 150));

describe('SqliteLedger batches', () => {
  it('writes no `seen` row for an item that ends before it is due: one row, the final state', async () => {
    const { ledger, stored, close } = await open();
    const a = item();
    ledger.record('p', a, { state: 'seen', attempts: 1 });
    await pastTimer();
    // The batch timer ran: the seen is still waiting, nothing on disk.
    expect(stored(a)).toBeUndefined();
    expect(await ledger.get('p', a)).toMatchObject({ state: 'seen' });
    ledger.record('p', a, { state: 'committed', attempts: 1, destinations: ['out/a.txt'] });
    ledger.record('p', a, { state: 'finalized', attempts: 1 });
    await pastTimer();
    expect(stored(a)).toMatchObject({ state: 'finalized', destinations: '["out/a.txt"]' });
    await close();
  });

  it('an explicit flush writes a waiting `seen` (reserved names, a source about to change)', async () => {
    const { ledger, stored, close } = await open();
    const a = item();
    ledger.record('p', a, { state: 'seen', attempts: 1, destinations: ['reserved:0:x.csv'] });
    await ledger.flush();
    expect(stored(a)).toMatchObject({ state: 'seen', destinations: '["reserved:0:x.csv"]' });
    await close();
  });

  it('a `seen` still waiting after its hold is written by a later batch', async () => {
    const { ledger, stored, close } = await open();
    const a = item();
    ledger.record('p', a, { state: 'seen', attempts: 2 });
    await pastTimer();
    expect(stored(a)).toBeUndefined();
    const until = Date.now() + 5_000;
    while (!stored(a) && Date.now() < until) await pastTimer();
    expect(stored(a)).toMatchObject({ state: 'seen', attempts: 2 });
    await close();
  });

  it('close writes a waiting `seen`', async () => {
    const { ledger, close } = await open();
    const a = item();
    ledger.record('p', a, { state: 'seen', attempts: 1 });
    await close();
    const again = await SqliteLedger.open(dirs.at(-1)!);
    expect(await again.get('p', a)).toMatchObject({ state: 'seen' });
    await again.close();
  });

  it('a `failed` (what parks an item) does not wait: the next batch writes it', async () => {
    const { ledger, stored, close } = await open();
    const a = item();
    ledger.record('p', a, { state: 'seen', attempts: 1 });
    await pastTimer();
    ledger.record('p', a, { state: 'failed', attempts: 1, error: 'boom' });
    await pastTimer();
    expect(stored(a)).toMatchObject({ state: 'failed', error: 'boom' });
    await close();
  });

  it('the rank rule holds inside one batch: a `failed` after `committed` is ignored, a flush between keeps order', async () => {
    const { ledger, stored, close } = await open();
    const a = item();
    ledger.record('p', a, { state: 'seen', attempts: 1 });
    ledger.record('p', a, { state: 'committed', attempts: 1, destinations: ['out/a.txt'] });
    ledger.record('p', a, { state: 'failed', attempts: 1, error: 'lost the lock' });
    await pastTimer();
    expect(stored(a)).toMatchObject({ state: 'committed', destinations: '["out/a.txt"]', error: null });

    const b = item();
    ledger.record('p', b, { state: 'committed', attempts: 1, destinations: ['out/b.txt'] });
    await ledger.flush();
    ledger.record('p', b, { state: 'seen', attempts: 2 });
    ledger.record('p', b, { state: 'failed', attempts: 2, error: 'late' });
    await ledger.flush();
    expect(stored(b)).toMatchObject({ state: 'committed', attempts: 1, error: null });
    ledger.record('p', b, { state: 'finalized', attempts: 1 });
    await ledger.flush();
    expect(stored(b)).toMatchObject({ state: 'finalized', destinations: '["out/b.txt"]' });
    await close();
  });

  it('keeps the content hash of `committed` when `finalized` joins it in the batch without one', async () => {
    const { ledger, stored, close } = await open();
    const a = item();
    const sha = 'ab'.repeat(32);
    ledger.record('p', a, { state: 'committed', attempts: 1, destinations: ['out/a.txt'], content: sha });
    ledger.record('p', a, { state: 'finalized', attempts: 1 });
    await ledger.flush();
    expect(stored(a)).toMatchObject({ state: 'finalized', content: sha });
    expect(await ledger.doneByContent('p', sha)).toMatchObject({ path: a.path });
    await close();
  });
  it('flushes asked for together share one transaction, each resolving with its records on disk', async () => {
    const { ledger, stored, close } = await open();
    const internals = ledger as unknown as { writeBatch: (rows: unknown[]) => void };
    const write = internals.writeBatch;
    let transactions = 0;
    internals.writeBatch = (rows) => {
      transactions++;
      write(rows);
    };
    const ids = [item(), item(), item()];
    const flushes = ids.map((id, i) => {
      ledger.record('p', id, { state: 'committed', attempts: 1, destinations: [`out/${i}`] });
      return ledger.flush().then(() => stored(id)?.state);
    });
    expect(await Promise.all(flushes)).toEqual(['committed', 'committed', 'committed']);
    expect(transactions).toBe(1);
    // A flush asked for after that write gets its own.
    const late = item();
    ledger.record('p', late, { state: 'finalized', attempts: 1 });
    await ledger.flush();
    expect(stored(late)?.state).toBe('finalized');
    expect(transactions).toBe(2);
    await close();
  });
});
