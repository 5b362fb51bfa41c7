/** `{match.NAME}` in segregate's templates: the chosen route's regex groups and date.pattern's. */
import { describe, expect, it } from 'vitest';
import { deriveItem } from '../../core/item.js';
import { makePluginContext } from '../../test/helpers/context.js';
import { runStep, testItem } from '../../test/helpers/core-steps-items.js';
import { segregatePlugin } from './segregate.js';

const create = (config: object) =>
  segregatePlugin.create({ timezone: 'UTC', ...config } as never, makePluginContext());

describe('segregate: named captures', () => {
  it('routes by the groups of the route that matched', async () => {
    const step = await create({
      routes: [
        {
          when: { regex: '^(?<provider>[a-z]+)_(?<kind>[a-z]+)_' },
          to: 'data/{match.kind}/{match.provider}/{name}',
        },
        { when: { regex_path: '^(?<folder>[^/]+)/' }, to: 'by-folder/{match.folder}/{name}' },
      ],
      default: 'other/{name}',
    });
    expect((await runStep(step, testItem('acme_sales_1.csv')))?.destination).toBe(
      'data/sales/acme/acme_sales_1.csv',
    );
    expect((await runStep(step, testItem('in/Report.pdf')))?.destination).toBe('by-folder/in/Report.pdf');
    expect((await runStep(step, testItem('Report.pdf')))?.destination).toBe('other/Report.pdf');
  });

  it('uses the groups of date.pattern, and a step `when`’s captures already on the item', async () => {
    const step = await create({
      date: { from: 'name', pattern: '^(?<region>[A-Z]{2})-(?<date>\\d{8})' },
      to: '{match.region}/{date:%Y/%m}/{match.provider}/{name}',
    });
    const item = deriveItem(testItem('EU-20240315-x.csv'), { match: { provider: 'acme' } });
    expect((await runStep(step, item))?.destination).toBe('EU/2024/03/acme/EU-20240315-x.csv');
  });
});
