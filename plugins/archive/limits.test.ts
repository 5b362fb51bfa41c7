import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { crc32, RATIO_GRACE_BYTES, tableCrc32, UnpackBudget } from './limits.js';

const limits = { maxEntries: 2, maxRatio: 10, maxTotalSize: 100 * RATIO_GRACE_BYTES };

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof SluiceError ? err.code : 'not a SluiceError';
  }
  return undefined;
}

describe('UnpackBudget', () => {
  it('stops at max_entries, counting nested archives in the outer one', () => {
    const outer = new UnpackBudget(limits, 'x.zip');
    const inner = new UnpackBudget(limits, 'x/inner.zip', outer);
    outer.addEntry('a');
    inner.addEntry('b');
    expect(codeOf(() => inner.addEntry('c'))).toBe('SLUICE_E_LIMIT');
  });

  it('judges the ratio only past the grace size', () => {
    const budget = new UnpackBudget(limits, 'x.gz');
    budget.bytesIn = 10;
    expect(codeOf(() => budget.addOutput(RATIO_GRACE_BYTES))).toBeUndefined();
    expect(codeOf(() => budget.addOutput(1))).toBe('SLUICE_E_LIMIT');
    budget.bytesIn = RATIO_GRACE_BYTES;
    expect(codeOf(() => budget.addOutput(1))).toBeUndefined();
  });

  it('sums total size across nesting levels', () => {
    const outer = new UnpackBudget({ ...limits, maxRatio: 1e9 }, 'x.zip');
    const inner = new UnpackBudget({ ...limits, maxRatio: 1e9 }, 'x/in.gz', outer);
    outer.bytesIn = inner.bytesIn = 1;
    outer.addOutput(60 * RATIO_GRACE_BYTES);
    expect(codeOf(() => inner.addOutput(50 * RATIO_GRACE_BYTES))).toBe('SLUICE_E_LIMIT');
  });

  it('checks entry sizes only when max_entry_size is set', () => {
    expect(codeOf(() => new UnpackBudget(limits, 'x').checkEntrySize('a', 1e12))).toBeUndefined();
    expect(codeOf(() => new UnpackBudget({ ...limits, maxEntrySize: 5 }, 'x').checkEntrySize('a', 6))).toBe(
      'SLUICE_E_LIMIT',
    );
  });
});

describe('crc32', () => {
  it.each([
    ['native or fallback', crc32],
    ['table fallback', tableCrc32],
  ])('%s matches the standard check value, also in pieces', (_name, fn) => {
    expect(fn(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(fn(Buffer.from('6789'), fn(Buffer.from('12345')))).toBe(0xcbf43926);
  });
});
