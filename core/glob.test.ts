import picomatch from 'picomatch';
import { describe, expect, it } from 'vitest';
import { compileGlobs, compileIncludeExclude } from './glob.js';

describe('compileGlobs', () => {
  it('matches a pattern without a slash against the file name at any depth', () => {
    const csv = compileGlobs('*.csv');
    expect(csv('x.csv')).toBe(true);
    expect(csv('a/b/x.csv')).toBe(true);
    expect(csv('a/b/x.csv.gz')).toBe(false);
    expect(csv('x.csv/y.txt')).toBe(false);
  });

  it('matches a pattern with a slash against the whole relative path', () => {
    const inCsv = compileGlobs('in/*.csv');
    expect(inCsv('in/x.csv')).toBe(true);
    expect(inCsv('in/sub/x.csv')).toBe(false);
    expect(inCsv('other/in/x.csv')).toBe(false);
  });

  it('supports ** across folders, including the root', () => {
    const all = compileGlobs('**/*');
    expect(all('x')).toBe(true);
    expect(all('a/b/c.txt')).toBe(true);
    const tmp = compileGlobs('**/tmp/**');
    expect(tmp('tmp/x')).toBe(true);
    expect(tmp('a/tmp/b/x')).toBe(true);
    expect(tmp('a/tmpx/b')).toBe(false);
    const deepCsv = compileGlobs('data/**/*.csv');
    expect(deepCsv('data/x.csv')).toBe(true);
    expect(deepCsv('data/2024/03/x.csv')).toBe(true);
    expect(deepCsv('other/x.csv')).toBe(false);
  });

  it('lets * match dotfiles', () => {
    expect(compileGlobs('*')('.hidden')).toBe(true);
    expect(compileGlobs('*.csv')('a/.x.csv')).toBe(true);
    expect(compileGlobs('**/*')('.git/config')).toBe(true);
  });

  it('anchors a leading / or ./ at the root', () => {
    const rootOnly = compileGlobs('/x.csv');
    expect(rootOnly('x.csv')).toBe(true);
    expect(rootOnly('a/x.csv')).toBe(false);
    expect(compileGlobs('./*.csv')('a/x.csv')).toBe(false);
    expect(compileGlobs('./*.csv')('x.csv')).toBe(true);
  });

  it('matches any of several patterns, with braces and classes', () => {
    const tables = compileGlobs(['*.csv', '*.tsv']);
    expect(tables('a/x.tsv')).toBe(true);
    expect(tables('x.txt')).toBe(false);
    expect(compileGlobs('*.{gpg,pgp}')('x.pgp')).toBe(true);
    expect(compileGlobs('file[0-9].txt')('file7.txt')).toBe(true);
    expect(compileGlobs('file[0-9].txt')('filex.txt')).toBe(false);
    expect(compileGlobs('?.txt')('a.txt')).toBe(true);
    expect(compileGlobs([])('x')).toBe(false);
  });

  it('is case-sensitive', () => {
    expect(compileGlobs('*.csv')('X.CSV')).toBe(false);
  });
});

describe('compileIncludeExclude', () => {
  it('includes everything without lists', () => {
    expect(compileIncludeExclude()('a/b')).toBe(true);
    expect(compileIncludeExclude([], [])('a/b')).toBe(true);
  });

  it('takes included files that are not excluded', () => {
    const take = compileIncludeExclude(['*.gpg', '*.pgp'], ['*.sig', 'archive/**']);
    expect(take('x.gpg')).toBe(true);
    expect(take('sub/x.pgp')).toBe(true);
    expect(take('x.gpg.sig')).toBe(false);
    expect(take('archive/x.gpg')).toBe(false);
    expect(take('x.txt')).toBe(false);
    expect(compileIncludeExclude(undefined, '*.gz')('a/x.gz')).toBe(false);
    expect(compileIncludeExclude(undefined, '*.gz')('a/x.csv')).toBe(true);
  });
});

describe('compileGlobs answers exactly as picomatch', () => {
  // The predicates test picomatch's regex directly (its matcher builds an object per call):
  // every pattern and path below gets picomatch's own answer, escapes and the empty path included.
  const patterns = [
    '*.csv',
    'in/*.csv',
    '/in/*.csv',
    './x.csv',
    '**/tmp/**',
    'data/**/*.csv',
    '*.{csv,tsv}',
    '.~*',
    '*.part',
    'a\\*b',
    '[ab]?.txt',
    '!(*.csv)',
    'report-+([0-9]).txt',
    '*',
    '**',
  ];
  const paths = [
    '',
    'x.csv',
    'in/x.csv',
    'a/b/x.csv',
    'a/tmp/b',
    'tmp/x',
    'data/2024/x.csv',
    'y.tsv',
    '.~lock.x#',
    'f.part',
    'a*b',
    'a\\*b',
    'ab.txt',
    'b1.txt',
    'x.txt',
    'report-42.txt',
    'report-x.txt',
    '.hidden',
    'd/.hidden.csv',
    '*.csv',
    'in/*.csv',
  ];
  it.each(patterns)('%s', (pattern) => {
    const anchored = pattern.replace(/^(\.\/|\/)+/, '');
    const own = picomatch(anchored, { dot: true, posix: true });
    const byName = !anchored.includes('/') && anchored === pattern;
    const predicate = compileGlobs(pattern);
    for (const path of paths)
      expect([path, predicate(path)]).toEqual([
        path,
        own(byName ? path.slice(path.lastIndexOf('/') + 1) : path),
      ]);
  });

  it('refuses an empty pattern with picomatch’s message', () => {
    expect(() => compileGlobs('')).toThrow(/Expected pattern to be a non-empty string/);
  });
});
