/**
 * `move_to` onto another file system copies the file aside, so it reads it by path: a link put
 * at the aside name after the version check (while the target folder is made) must not be
 * followed. The other file system is simulated: rename into the move_to folder fails with EXDEV,
 * and making that folder swaps the aside file for a link to a file outside the source folder.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { makePluginContext } from '../../test/helpers/context.js';
import { codeOf, listAll } from '../../test/helpers/source-probe.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-move-across-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SECRET = 'secret bytes\n';
const attack = vi.hoisted(() => ({ swap: false }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const { readdirSync, rmSync, symlinkSync } = await import('node:fs');
  return {
    ...real,
    rename: async (from: string, to: string) => {
      if (String(from).includes('/in/') && /\/done2?\//.test(String(to)))
        throw Object.assign(new Error(`EXDEV: cross-device link, rename '${from}' -> '${to}'`), {
          code: 'EXDEV',
        });
      return real.rename(from, to);
    },
    mkdir: async (path: string, options?: Parameters<typeof real.mkdir>[1]) => {
      if (attack.swap && String(path).includes('/done')) {
        const inbox = join(dir, 'in');
        for (const name of readdirSync(inbox))
          if (name.includes('sluice-tidy')) {
            rmSync(join(inbox, name));
            symlinkSync(join(dir, 'secret.txt'), join(inbox, name));
          }
      }
      return real.mkdir(path, options);
    },
  };
});

const { localSource } = await import('./source.js');

describe('local move_to onto another file system', () => {
  it('moves the listed file (copy, verify, delete)', async () => {
    writeFileSync(join(dir, 'secret.txt'), SECRET);
    mkdirSync(join(dir, 'in'));
    writeFileSync(join(dir, 'in', 'a.txt'), 'x'.repeat(SECRET.length));
    const src = await localSource.create({ path: join(dir, 'in') } as never, makePluginContext());
    const [item] = await listAll(src);
    await src.move!(item!, join(dir, 'done'));
    expect(readdirSync(join(dir, 'done'))).toEqual(['a.txt']);
    expect(readdirSync(join(dir, 'in'))).toEqual([]);
    await src.close?.();
  });

  it('does not copy a link put at the aside name meanwhile', async () => {
    writeFileSync(join(dir, 'in', 'b.txt'), 'x'.repeat(SECRET.length));
    const src = await localSource.create({ path: join(dir, 'in') } as never, makePluginContext());
    const [item] = await listAll(src);
    attack.swap = true;
    expect(await codeOf(src.move!(item!, join(dir, 'done2')))).toBe('SLUICE_E_CHANGED');
    attack.swap = false;
    expect(readdirSync(join(dir, 'done2'))).toEqual([]);
    await src.close?.();
  });
});
