import { describe, expect, it } from 'vitest';
import { createItem } from './item.js';
import { compileMatcher, groupNames } from './item-match.js';

const item = (path: string, size?: number) =>
  createItem({ source: 's', path, size, open: () => Promise.reject(new Error('not read')) });
const now = new Date();

describe('compileMatcher', () => {
  it('returns the named groups of name and path regexes, null when any condition fails', () => {
    const { match, groups } = compileMatcher(
      { regex: '^(?<provider>[a-z]+)_(?<kind>[a-z]+)_', regex_path: '^(?<folder>[^/]+)/', min_size: 1 },
      '/when',
    );
    expect([...groups]).toEqual(['provider', 'kind', 'folder']);
    expect(match(item('in/acme_sales_1.csv', 5), now)).toEqual({
      provider: 'acme',
      kind: 'sales',
      folder: 'in',
    });
    expect(match(item('in/acme_sales_1.csv', 0), now)).toBeNull();
    expect(match(item('in/ACME.csv', 5), now)).toBeNull();
  });

  it('gives {} for a match without named groups, and skips groups that did not take part', () => {
    expect(compileMatcher({ name: '*.csv' }, '').match(item('a.csv'), now)).toEqual({});
    expect(compileMatcher({ regex: '^(?<a>x)?b' }, '').match(item('b.csv'), now)).toEqual({});
  });

  it('reads group names, not lookbehinds', () => {
    expect(groupNames('(?<=a)(?<!b)(?<one>c)(?<two_2>d)')).toEqual(['one', 'two_2']);
  });
});
