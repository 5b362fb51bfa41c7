import type { Static } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import type { SluiceError } from '../../core/errors.js';
import { makePluginContext } from '../../test/helpers/context.js';
import { caught, runStep, type TestItemFields, testItem } from '../../test/helpers/core-steps-items.js';
import { filterPlugin } from './filter.js';

type FilterConfig = Static<typeof filterPlugin.config>;

async function kept(config: FilterConfig, path: string, fields: TestItemFields = {}): Promise<boolean> {
  const step = await filterPlugin.create(config, makePluginContext());
  const item = testItem(path, fields);
  const out = await runStep(step, item);
  if (out !== null) expect(out).toBe(item);
  return out !== null;
}

const MiB = 1024 * 1024;
const ago = (ms: number) => new Date(Date.now() - ms);

describe('filter', () => {
  it('keeps files over 1 MiB that are not gzipped (datahub-compress.yaml)', async () => {
    const config: FilterConfig = { min_size: '1MiB', exclude: ['*.gz'] };
    expect(await kept(config, 'big.csv', { size: 2 * MiB })).toBe(true);
    expect(await kept(config, 'exact.csv', { size: MiB })).toBe(true);
    expect(await kept(config, 'small.csv', { size: MiB - 1 })).toBe(false);
    expect(await kept(config, 'dir/big.csv.gz', { size: 2 * MiB })).toBe(false);
    expect(await kept(config, 'unknown-size.csv')).toBe(false);
  });

  it('applies include and exclude globs to the path', async () => {
    const config: FilterConfig = { include: ['reports/**/*.csv', '*.tsv'], exclude: 'reports/tmp/**' };
    expect(await kept(config, 'reports/2024/a.csv')).toBe(true);
    expect(await kept(config, 'a/b/c.tsv')).toBe(true);
    expect(await kept(config, 'reports/tmp/a.csv')).toBe(false);
    expect(await kept(config, 'other/a.csv')).toBe(false);
    expect(await kept({}, 'anything/at/all')).toBe(true);
  });

  it('matches regex on the name and regex_path on the path', async () => {
    expect(await kept({ regex: '^\\d{8}_' }, 'in/20240101_a.csv')).toBe(true);
    expect(await kept({ regex: '^\\d{8}_' }, '20240101/a.csv')).toBe(false);
    expect(await kept({ regex_path: '^\\d{8}/' }, '20240101/a.csv')).toBe(true);
    expect(await kept({ regex_path: '^\\d{8}/' }, 'x/20240101/a.csv')).toBe(false);
  });

  it('bounds size and age', async () => {
    expect(await kept({ max_size: '1KiB' }, 'a', { size: 1024 })).toBe(true);
    expect(await kept({ max_size: '1KiB' }, 'a', { size: 1025 })).toBe(false);
    expect(await kept({ min_size: 10, max_size: 20 }, 'a', { size: 15 })).toBe(true);
    expect(await kept({ min_age: '1h' }, 'a', { mtime: ago(2 * 3_600_000) })).toBe(true);
    expect(await kept({ min_age: '1h' }, 'a', { mtime: ago(60_000) })).toBe(false);
    expect(await kept({ max_age: '7d' }, 'a', { mtime: ago(86_400_000) })).toBe(true);
    expect(await kept({ max_age: '7d' }, 'a', { mtime: ago(8 * 86_400_000) })).toBe(false);
    expect(await kept({ max_age: '7d' }, 'a')).toBe(false);
  });

  it('matches ext and meta, and ANDs everything', async () => {
    expect(await kept({ ext: 'csv' }, 'A.CSV')).toBe(true);
    expect(await kept({ ext: '.csv' }, 'a.csv')).toBe(true);
    expect(await kept({ ext: 'csv' }, 'csv')).toBe(false);
    expect(await kept({ meta: { provider: 'acme' } }, 'a', { meta: { provider: 'acme' } })).toBe(true);
    expect(await kept({ meta: { provider: 'acme' } }, 'a', { meta: { provider: 'other' } })).toBe(false);
    expect(await kept({ meta: { provider: 'acme' } }, 'a')).toBe(false);
    const all: FilterConfig = { include: '*.csv', min_size: 10, regex: '^r' };
    expect(await kept(all, 'r.csv', { size: 10 })).toBe(true);
    expect(await kept(all, 'x.csv', { size: 10 })).toBe(false);
    expect(await kept(all, 'r.csv', { size: 9 })).toBe(false);
    expect(await kept(all, 'r.tsv', { size: 10 })).toBe(false);
  });

  it('reports an invalid regex at its path', async () => {
    const err = (await caught(() =>
      filterPlugin.create({ regex_path: '*x' }, makePluginContext()),
    )) as SluiceError;
    expect(err.code).toBe('SLUICE_E_CONFIG');
    expect(err.context.jsonPath).toBe('/regex_path');
    expect(err.message).toBe(
      'invalid regular expression at /regex_path: Invalid regular expression: /*x/: Nothing to repeat',
    );
  });

  it('with action: fail, fails a non-matching item (not retryable) naming the rule it broke', async () => {
    const step = await filterPlugin.create({ min_size: '100KiB', action: 'fail' }, makePluginContext());
    const big = testItem('big.csv', { size: 200 * 1024 });
    expect(await runStep(step, big)).toBe(big);
    const err = (await caught(() => runStep(step, testItem('tiny.csv', { size: 2 })))) as SluiceError;
    expect(err.retryable).toBe(false);
    expect(err.message).toBe('fails the filter: min_size: 100KiB (size 2 B)');
    const glob = await filterPlugin.create({ include: ['*.csv'], action: 'fail' }, makePluginContext());
    const pdf = (await caught(() => runStep(glob, testItem('a.pdf', { size: 2 })))) as SluiceError;
    expect(pdf.message).toBe('fails the filter: include: ["*.csv"]');
  });
});
