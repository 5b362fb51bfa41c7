import type { Static } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import type { Item } from '../../core/plugin-api.js';
import { makePluginContext } from '../../test/helpers/context.js';
import { caught, runStep, testItem } from '../../test/helpers/core-steps-items.js';
import { segregatePlugin } from './segregate.js';
import { setMetaPlugin } from './set-meta.js';

type SegregateConfig = Static<typeof segregatePlugin.config>;

async function segregate(config: Partial<SegregateConfig>) {
  return segregatePlugin.create({ timezone: 'UTC', ...config } as SegregateConfig, makePluginContext());
}

async function destinationOf(config: Partial<SegregateConfig>, item: Item): Promise<string | undefined> {
  const out = await runStep(await segregate(config), item);
  return out?.destination;
}

const MTIME = new Date(Date.UTC(2023, 10, 20, 13, 14, 15));

describe('segregate: CDR hourly folders (cdr-s3-segregation.yaml)', () => {
  const cdr: Partial<SegregateConfig> = {
    date: { from: 'name', pattern: '^CHARGINGCDR_.*-(\\d{8})-?(\\d{2}).*', format: '%Y%m%d%H' },
    to: 'segregated/{date:%Y/%m/%d/%H}/{name}',
    unmatched: 'errors/{name}',
  };

  it.each([
    [
      'CHARGINGCDR_node1_01-20240315-07_1234.ccn',
      'segregated/2024/03/15/07/CHARGINGCDR_node1_01-20240315-07_1234.ccn',
    ],
    [
      'CHARGINGCDR_node1_01-2024031507_1234.ccn',
      'segregated/2024/03/15/07/CHARGINGCDR_node1_01-2024031507_1234.ccn',
    ],
    ['CHARGINGCDR_a-b-20231231-23.ccn', 'segregated/2023/12/31/23/CHARGINGCDR_a-b-20231231-23.ccn'],
    ['CHARGINGCDR_node1_01-20241315-07_1234.ccn', 'errors/CHARGINGCDR_node1_01-20241315-07_1234.ccn'],
    ['CHARGINGCDR_node1_01-20240230-07.ccn', 'errors/CHARGINGCDR_node1_01-20240230-07.ccn'],
    ['CHARGINGCDR_node1_01-20240315-25.ccn', 'errors/CHARGINGCDR_node1_01-20240315-25.ccn'],
    ['readme.txt', 'errors/readme.txt'],
  ])('%s → %s', async (name, expected) => {
    expect(await destinationOf(cdr, testItem(`${name}`, { mtime: MTIME }))).toBe(expected);
  });

  it('sets the parsed date on the item, and leaves it alone when unmatched', async () => {
    const step = await segregate(cdr);
    const dated = await runStep(step, testItem('CHARGINGCDR_n-20240315-07_1.ccn', { mtime: MTIME }));
    expect(dated?.date).toEqual(new Date(Date.UTC(2024, 2, 15, 7)));
    const undated = await runStep(step, testItem('x.txt', { mtime: MTIME }));
    expect(undated?.date).toBeUndefined();
  });

  it('fails an unmatched item when there is no `unmatched`, saying what to add', async () => {
    const step = await segregate({ ...cdr, unmatched: undefined });
    const err = (await caught(() => runStep(step, testItem('in/readme.txt')))) as SluiceError;
    expect(err).toBeInstanceOf(SluiceError);
    expect(err.code).toBe('SLUICE_E_TEMPLATE');
    expect(err.retryable).toBe(false);
    expect(err.message).toBe(
      'no date for "in/readme.txt": name "readme.txt" does not match pattern /^CHARGINGCDR_.*-(\\d{8})-?(\\d{2}).*/, and destination "segregated/{date:%Y/%m/%d/%H}/{name}" uses {date}',
    );
    expect(err.context.hint).toContain('add `unmatched:');
    const invalid = (await caught(() =>
      runStep(step, testItem('CHARGINGCDR_n-20241399-07.ccn')),
    )) as SluiceError;
    expect(invalid.message).toContain('"2024139907" (from name) is not a valid date for format %Y%m%d%H');
  });
});

describe('segregate: routes (local-demo.yaml, octo-sftp-to-s3.yaml)', () => {
  const demo: Partial<SegregateConfig> = {
    date: { from: 'name', pattern: '(\\d{4})-?(\\d{2})-?(\\d{2})', format: '%Y%m%d' },
    routes: [
      { when: { name: ['*.csv', '*.tsv'] }, to: 'tables/{date:%Y/%m}/{name}' },
      { when: { name: '*.pdf' }, to: 'documents/{name}' },
    ],
    default: 'other/{name}',
    unmatched: 'undated/{name}',
  };

  it.each([
    ['sales-2024-03-15.csv', 'tables/2024/03/sales-2024-03-15.csv'],
    ['deep/dir/stock_20231101.tsv', 'tables/2023/11/stock_20231101.tsv'],
    ['nodate.csv', 'undated/nodate.csv'],
    ['report-2024-01-02.pdf', 'documents/report-2024-01-02.pdf'],
    ['manual.pdf', 'documents/manual.pdf'],
    ['notes.txt', 'other/notes.txt'],
    ['bad-2024-13-01.csv', 'undated/bad-2024-13-01.csv'],
  ])('%s → %s', async (path, expected) => {
    expect(await destinationOf(demo, testItem(path, { mtime: MTIME }))).toBe(expected);
  });

  it('takes the first matching route', async () => {
    const config: Partial<SegregateConfig> = {
      routes: [
        { when: { name: 'big*' }, to: 'first/{name}' },
        { when: { name: '*.csv' }, to: 'second/{name}' },
      ],
    };
    expect(await destinationOf(config, testItem('big.csv'))).toBe('first/big.csv');
    expect(await destinationOf(config, testItem('small.csv'))).toBe('second/small.csv');
  });

  it('keeps the item’s destination when no route matches and there is no default', async () => {
    const step = await segregate({ routes: [{ when: { name: '*.csv' }, to: 'csv/{name}' }] });
    const out = await runStep(step, testItem('a/x.bin', { mtime: MTIME }));
    expect(out?.destination).toBeUndefined();
    expect(out?.path).toBe('a/x.bin');
    expect(out?.date).toEqual(MTIME);
  });

  it('routes by provider meta set earlier, dating by mtime', async () => {
    const setMeta = await setMetaPlugin.create({ provider: 'acme' }, makePluginContext());
    const step = await segregate({
      routes: [
        { when: { name: '*.csv' }, to: 'data/csv/{meta.provider}/{date:%Y/%m}/{name}' },
        { when: { name: '*.pdf' }, to: 'data/pdf/{meta.provider}/{name}' },
      ],
      default: 'data/other/{meta.provider}/{name}',
    });
    const route = async (path: string) =>
      (await runStep(step, (await runStep(setMeta, testItem(path, { mtime: MTIME })))!))?.destination;
    expect(await route('in/a.csv')).toBe('data/csv/acme/2023/11/a.csv');
    expect(await route('b.pdf')).toBe('data/pdf/acme/b.pdf');
    expect(await route('c.bin')).toBe('data/other/acme/c.bin');
    // Without set_meta the missing key is a template error naming it.
    const err = (await caught(() => runStep(step, testItem('a.csv')))) as SluiceError;
    expect(err.code).toBe('SLUICE_E_TEMPLATE');
    expect(err.message).toContain('no meta "provider"');
  });

  it('matches routes on path, regex, ext, size and meta', async () => {
    const step = await segregate({
      routes: [
        { when: { path: 'inbox/urgent/**' }, to: 'urgent/{name}' },
        { when: { regex: '^INV\\d+' }, to: 'invoices/{name}' },
        { when: { ext: ['tar.gz', 'ZIP'] }, to: 'archives/{name}' },
        { when: { min_size: '1KiB', max_size: 2048 }, to: 'medium/{name}' },
        { when: { meta: { kind: ['a', 'b'], level: 2 } }, to: 'kinds/{meta.kind}/{name}' },
      ],
      default: 'rest/{name}',
    });
    const dest = async (path: string, fields = {}) =>
      (await runStep(step, testItem(path, fields)))?.destination;
    expect(await dest('inbox/urgent/x/y.txt')).toBe('urgent/y.txt');
    expect(await dest('inbox/normal/y.txt')).toBe('rest/y.txt');
    expect(await dest('INV0001.pdf')).toBe('invoices/INV0001.pdf');
    expect(await dest('x/INVOICE.pdf')).toBe('rest/INVOICE.pdf');
    expect(await dest('backup.TAR.GZ')).toBe('archives/backup.TAR.GZ');
    expect(await dest('photos.zip')).toBe('archives/photos.zip');
    expect(await dest('m.bin', { size: 1500 })).toBe('medium/m.bin');
    expect(await dest('m.bin', { size: 4096 })).toBe('rest/m.bin');
    expect(await dest('m.bin')).toBe('rest/m.bin');
    expect(await dest('k.bin', { meta: { kind: 'b', level: 2 } })).toBe('kinds/b/k.bin');
    expect(await dest('k.bin', { meta: { kind: 'b', level: 3 } })).toBe('rest/k.bin');
    expect(await dest('k.bin', { meta: { kind: 'c', level: 2 } })).toBe('rest/k.bin');
  });

  it('uses the date only where the chosen template needs it', async () => {
    // A pdf without a date in its name still goes to documents/ (tested above); without
    // `unmatched`, a route that does not need the date works for undated items too.
    const step = await segregate({ ...demo, unmatched: undefined });
    expect((await runStep(step, testItem('manual.pdf')))?.destination).toBe('documents/manual.pdf');
    await expect(runStep(step, testItem('nodate.csv'))).rejects.toThrow('uses {date}');
  });
});

describe('segregate: date rules', () => {
  it('dates by mtime (partner-ftp-to-azure.yaml)', async () => {
    const item = testItem('exports/2023/a.csv', { source: 'partner_a', mtime: MTIME });
    expect(
      await destinationOf({ date: { from: 'mtime' }, to: '{source}/{date:%Y/%m/%d}/{path}' }, item),
    ).toBe('partner_a/2023/11/20/exports/2023/a.csv');
  });

  it('falls back to the clock without mtime, and for from: now', async () => {
    const before = new Date();
    const out = await runStep(
      await segregate({ date: { from: 'mtime' }, to: '{date:%Y}/{name}' }),
      testItem('a'),
    );
    expect(out!.date!.getTime()).toBeGreaterThanOrEqual(before.getTime());
    const now = await runStep(
      await segregate({ date: { from: 'now' }, to: '{name}' }),
      testItem('a', { mtime: MTIME }),
    );
    expect(now!.date!.getTime()).toBeGreaterThanOrEqual(before.getTime());
  });

  it('without a date rule keeps an earlier date, else uses the mtime', async () => {
    const step = await segregate({ to: '{date:%Y%m%d}/{name}' });
    const earlier = new Date(Date.UTC(2001, 0, 2));
    expect((await runStep(step, testItem('a', { date: earlier, mtime: MTIME })))?.destination).toBe(
      '20010102/a',
    );
    expect((await runStep(step, testItem('a', { mtime: MTIME })))?.destination).toBe('20231120/a');
  });

  it('prefers a named group `date` over other groups', async () => {
    const config: Partial<SegregateConfig> = {
      date: { from: 'name', pattern: '^(v\\d+)_(?<date>\\d{8})', format: '%Y%m%d' },
      to: '{date:%Y-%m-%d}/{name}',
    };
    expect(await destinationOf(config, testItem('v2_20240101_x.csv'))).toBe('2024-01-01/v2_20240101_x.csv');
  });

  it('parses the path, and the whole match when the pattern has no groups', async () => {
    const config: Partial<SegregateConfig> = {
      date: { from: 'path', pattern: '\\d{4}/\\d{2}/\\d{2}', format: '%Y/%m/%d' },
      to: '{date:%Y%m%d}/{name}',
    };
    expect(await destinationOf(config, testItem('logs/2024/02/29/app.log'))).toBe('20240229/app.log');
  });

  it('reads a meta value (text or Date) with from: meta', async () => {
    const config: Partial<SegregateConfig> = {
      date: { from: 'meta', key: 'day' },
      to: '{date:%Y/%m/%d}/{name}',
    };
    expect(await destinationOf(config, testItem('a', { meta: { day: '2024-05-06' } }))).toBe('2024/05/06/a');
    expect(await destinationOf(config, testItem('a', { meta: { day: 20240507 } }))).toBe('2024/05/07/a');
    expect(
      await destinationOf(config, testItem('a', { meta: { day: new Date(Date.UTC(2024, 4, 8)) } })),
    ).toBe('2024/05/08/a');
    const err = (await caught(async () => destinationOf(config, testItem('a')))) as SluiceError;
    expect(err.message).toContain('the item has no meta "day"');
  });

  it.each([
    ['20240315', '2024-03-15 00:00'],
    ['2024031507', '2024-03-15 07:00'],
    ['202403150708', '2024-03-15 07:08'],
    ['20240315070809', '2024-03-15 07:08'],
    ['2024-03-15', '2024-03-15 00:00'],
    ['2024-03-15T07:08', '2024-03-15 07:08'],
    ['2024-03-15T07:08:09', '2024-03-15 07:08'],
    ['2024-03-15T07:08:09.123Z', '2024-03-15 07:08'],
    ['2024-03-15T07:08:09+02:00', '2024-03-15 05:08'],
    ['2024-03-15 07:08:09', '2024-03-15 07:08'],
  ])('parses %s without a format (digit count or ISO)', async (text, expected) => {
    const config: Partial<SegregateConfig> = {
      date: { from: 'meta', key: 'd' },
      to: '{date:%Y-%m-%d %H:%M}',
    };
    expect(await destinationOf(config, testItem('a', { meta: { d: text } }))).toBe(expected);
  });

  it('applies an offset', async () => {
    const config: Partial<SegregateConfig> = {
      date: { from: 'name', pattern: '(\\d{8})', format: '%Y%m%d', offset: '-1d' },
      to: '{date:%Y%m%d}/{name}',
    };
    expect(await destinationOf(config, testItem('drop_20240301.csv'))).toBe('20240229/drop_20240301.csv');
    const later: Partial<SegregateConfig> = { date: { from: 'mtime', offset: '+90m' }, to: '{date:%H:%M}' };
    expect(await destinationOf(later, testItem('a', { mtime: MTIME }))).toBe('14:44');
  });

  it('reads and writes dates in the configured timezone', async () => {
    const config: Partial<SegregateConfig> = {
      date: { from: 'name', pattern: '(\\d{10})', format: '%Y%m%d%H' },
      to: '{date:%Y/%m/%d/%H}/{name}',
      timezone: 'Europe/Paris',
    };
    const out = await runStep(await segregate(config), testItem('cdr_2024031500.ccn'));
    expect(out?.date).toEqual(new Date(Date.UTC(2024, 2, 14, 23)));
    expect(out?.destination).toBe('2024/03/15/00/cdr_2024031500.ccn');
  });
});

describe('segregate: config errors', () => {
  async function configError(config: Partial<SegregateConfig>): Promise<SluiceError> {
    const err = await caught(() => segregate(config));
    expect(err).toBeInstanceOf(SluiceError);
    expect((err as SluiceError).code).toBe('SLUICE_E_CONFIG');
    return err as SluiceError;
  }

  it('reports an invalid regex at /date/pattern with the engine message', async () => {
    const err = await configError({ date: { from: 'name', pattern: '(\\d{8}' }, to: '{name}' });
    expect(err.context.jsonPath).toBe('/date/pattern');
    expect(err.message).toBe(
      'invalid regular expression at /date/pattern: Invalid regular expression: /(\\d{8}/: Unterminated group',
    );
  });

  it('reports an invalid format at /date/format', async () => {
    const err = await configError({
      date: { from: 'name', pattern: '(\\d+)', format: '%Y%q' },
      to: '{name}',
    });
    expect(err.context.jsonPath).toBe('/date/format');
    expect(err.message).toContain('unknown format token "%q" at offset 2');
  });

  it('reports bad templates at their own path', async () => {
    expect((await configError({ to: 'x/{nmae}' })).context.jsonPath).toBe('/to');
    const routes = [
      { when: { name: '*.a' }, to: '{name}' },
      { when: { name: '*.b' }, to: '{name}' },
      { when: { name: '*.c' }, to: '{date:%Y%Q}' },
    ];
    expect((await configError({ routes })).context.jsonPath).toBe('/routes/2/to');
    expect((await configError({ routes: [], default: '{x' })).context.jsonPath).toBe('/default');
    expect((await configError({ to: '{name}', unmatched: 'a}' })).context.jsonPath).toBe('/unmatched');
  });

  it('reports a bad route condition at its path', async () => {
    const regex = await configError({ routes: [{ when: { regex: '[' }, to: '{name}' }] });
    expect(regex.context.jsonPath).toBe('/routes/0/when/regex');
    const nameGlob = await configError({ routes: [{ when: { name: 'a/*.csv' }, to: '{name}' }] });
    expect(nameGlob.context.jsonPath).toBe('/routes/0/when/name');
    expect(nameGlob.message).toContain('use `path`');
  });

  it('rejects inconsistent options', async () => {
    expect((await configError({ to: '{name}', routes: [] })).context.jsonPath).toBe('/routes');
    expect((await configError({ to: '{name}', default: '{name}' })).context.jsonPath).toBe('/default');
    expect((await configError({ date: { from: 'mtime', pattern: 'x' } })).context.jsonPath).toBe(
      '/date/pattern',
    );
    expect((await configError({ date: { from: 'meta' } })).context.jsonPath).toBe('/date/key');
    expect((await configError({ date: { from: 'name', key: 'k' } })).context.jsonPath).toBe('/date/key');
    expect((await configError({ date: { from: 'mtime', offset: 'yesterday' } })).context.jsonPath).toBe(
      '/date/offset',
    );
    const tz = await configError({ to: '{name}', timezone: 'Mars/Base' });
    expect(tz.context.jsonPath).toBe('/timezone');
    expect(tz.message).toBe('unknown timezone "Mars/Base" (use UTC or an IANA name such as Europe/Paris)');
  });
});
