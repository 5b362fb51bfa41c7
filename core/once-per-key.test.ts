import { describe, expect, it } from 'vitest';
import { oncePerKey } from './once-per-key.js';

describe('oncePerKey', () => {
  it('runs the work once per key for callers at once and later, and again after a failure', async () => {
    const once = oncePerKey<string>();
    let runs = 0;
    const work = (fail: boolean) => async () => {
      runs++;
      if (fail) throw new Error('no');
      return 'made';
    };
    const [a, b] = await Promise.all([once('x', work(false)), once('x', work(false))]);
    expect([a, b, await once('x', work(false)), runs]).toEqual(['made', 'made', 'made', 1]);
    await expect(once('y', work(true))).rejects.toThrow('no');
    expect(await once('y', work(false))).toBe('made');
    expect(runs).toBe(3);
  });
});
