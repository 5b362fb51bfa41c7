import { describe, expect, it } from 'vitest';
import { SluiceError } from '../errors.js';
import { safeDestination } from './destination.js';

/** What safeDestination answered before its fast path for already-normal names. */
function reference(dest: string): string {
  const segments = dest.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) throw new Error('escapes the sink root (`..`)');
  if (segments.length === 0) throw new Error('names no file');
  return segments.join('/');
}

const outcome = (f: () => string) => {
  try {
    return f();
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
};

describe('safeDestination', () => {
  const names = [
    'a.csv',
    'd0/f1.dat',
    'a/b/c.txt',
    '.hidden',
    '..a',
    'a..',
    'a/..b/c',
    'a/b../c',
    '...',
    'a/.../b',
    'a//b',
    'a/./b',
    './a',
    'a/',
    'a/.',
    '.',
    '..',
    'a/../b',
    '../a',
    'a/..',
    './',
    '././a',
  ];
  it.each(names)('%s: the same name, normalised or refused, as before', (name) => {
    const got = outcome(() => safeDestination(name));
    const want = outcome(() => reference(name));
    if (want.startsWith('error: ')) expect(got).toBe(`error: destination "${name}" ${want.slice(7)}`);
    else expect(got).toBe(want);
  });

  it('refuses what could escape the root, with the item in the context', () => {
    for (const bad of ['', '/etc/passwd', 'C:/x', 'a\\b', 'a\u0000b', 'a\nb']) {
      let err: unknown;
      try {
        safeDestination(bad, { item: 'in:x' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SluiceError);
      expect((err as SluiceError).code).toBe('SLUICE_E_DESTINATION');
      expect((err as SluiceError).context.item).toBe('in:x');
      expect((err as SluiceError).retryable).toBe(false);
    }
  });
});
