import { describe, expect, it } from 'vitest';
import { numberedName as numberedKey } from '../../core/if-exists.js';
import { displayKey, folderPrefix, joinKey, unsafeKeyReason } from './keys.js';

describe('object-store keys', () => {
  it('treats a prefix as a folder', () => {
    expect(folderPrefix(undefined)).toBe('');
    expect(folderPrefix('')).toBe('');
    expect(folderPrefix('/')).toBe('');
    expect(folderPrefix('incoming')).toBe('incoming/');
    expect(folderPrefix('/incoming/')).toBe('incoming/');
  });

  it('joins without normalising the key (a//b is its own key)', () => {
    expect(joinKey('out', 'a/b.txt')).toBe('out/a/b.txt');
    expect(joinKey('', '/a.txt')).toBe('a.txt');
    expect(joinKey('out/', 'a//b.txt')).toBe('out/a//b.txt');
  });

  it('numbers a name before its last extension', () => {
    expect(numberedKey('dir/report.csv', 1)).toBe('dir/report (1).csv');
    expect(numberedKey('dir/data.tar.gz', 2)).toBe('dir/data.tar (2).gz');
    expect(numberedKey('README', 3)).toBe('README (3)');
    expect(numberedKey('a.b/.env', 1)).toBe('a.b/.env (1)');
  });

  it('refuses keys that are not exactly one safe relative path', () => {
    for (const ok of ['a.txt', 'a/b.txt', 'a b/ü #1+2%.txt', '.env', 'a/..b/c..'])
      expect(unsafeKeyReason(ok)).toBeUndefined();
    expect(unsafeKeyReason('a//b.txt')).toMatch(/empty segment/);
    expect(unsafeKeyReason('/a.txt')).toMatch(/starts with/);
    expect(unsafeKeyReason('./a.txt')).toMatch(/"\." or "\.\."/);
    expect(unsafeKeyReason('x/../a.txt')).toMatch(/"\." or "\.\."/);
    expect(unsafeKeyReason('..\\..\\victim.txt')).toMatch(/backslash/);
    expect(unsafeKeyReason('a\nb.txt')).toMatch(/control character/);
    expect(unsafeKeyReason('a\u0000b')).toMatch(/control character/);
    expect(unsafeKeyReason('caf\ufffd.txt')).toMatch(/UTF-8/);
    expect(unsafeKeyReason('')).toMatch(/no name/);
  });

  it('displays a refused key on one line, not as the key it would be confused with', () => {
    expect(displayKey('a//b.txt')).toBe('a/%2Fb.txt');
    expect(displayKey('a///b.txt')).toBe('a/%2F%2Fb.txt');
    expect(displayKey('/a.txt')).toBe('%2Fa.txt');
    expect(displayKey('../x/./y')).toBe('%2E%2E/x/%2E/y');
    expect(displayKey('a\\b\n100%')).toBe('a%5Cb%0A100%25');
  });
});
