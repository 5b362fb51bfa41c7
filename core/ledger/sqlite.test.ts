/**
 * A read-only ledger (plan, history, dry runs) writes nothing at all: no state folder, no ledger
 * file, no `-wal`/`-shm` beside a closed ledger, and it still sees what was recorded (issue 11, #13).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteLedger } from './sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-ledger-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const id = { source: 'local', path: 'a.csv', version: '3:1' };

describe('SqliteLedger read-only', () => {
  it('a missing ledger reads as empty and nothing is created', async () => {
    const state = join(dir, 'none', '.sluice');
    const ledger = await SqliteLedger.open(state, { readOnly: true });
    expect(await ledger.get('p', id)).toBeUndefined();
    expect(await ledger.history('p')).toEqual([]);
    expect(() => ledger.record('p', id, { state: 'seen' })).toThrow(/read-only/);
    await ledger.close();
    expect(existsSync(join(dir, 'none'))).toBe(false);
  });

  it('a closed ledger is read without a byte or a file changing beside it', async () => {
    const state = join(dir, 'closed');
    const writer = await SqliteLedger.open(state);
    writer.record('p', id, { state: 'finalized', destinations: ['out/a.csv'] });
    await writer.close();
    const before = readdirSync(state).map((f) => [f, readFileSync(join(state, f)).toString('base64')]);
    const ledger = await SqliteLedger.open(state, { readOnly: true });
    expect((await ledger.get('p', id))?.state).toBe('finalized');
    await ledger.close();
    expect(readdirSync(state).map((f) => [f, readFileSync(join(state, f)).toString('base64')])).toEqual(
      before,
    );
  });

  it('a ledger another process has open is read in place, with its latest writes', async () => {
    const state = join(dir, 'open');
    const writer = await SqliteLedger.open(state);
    writer.record('p', id, { state: 'committed', destinations: ['out/a.csv'] });
    await writer.flush();
    const names = readdirSync(state).sort();
    const ledger = await SqliteLedger.open(state, { readOnly: true });
    expect((await ledger.get('p', id))?.state).toBe('committed');
    await ledger.close();
    expect(readdirSync(state).sort()).toEqual(names);
    await writer.close();
  });
});
