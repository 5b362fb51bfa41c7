import { describe, expect, it } from 'vitest';
import { folderPrefix, joinKey, numberedKey } from './keys.js';

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
});
