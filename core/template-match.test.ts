import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { SluiceError } from './errors.js';
import { createItem, deriveItem } from './item.js';
import { compileTemplate } from './template.js';

const now = new Date(Date.UTC(2025, 0, 2));
const base = createItem({ source: 's', path: 'in/acme_sales.csv', open: async () => Readable.from([]) });

describe('{match.NAME}', () => {
  it('renders the route’s captures first, then the item’s (a step `when`)', () => {
    const template = compileTemplate('data/{match.kind}/{match.provider}/{name}');
    const captured = deriveItem(base, { match: { provider: 'acme', kind: 'step' } });
    expect(template.render(captured, { now })).toBe('data/step/acme/acme_sales.csv');
    expect(template.render(captured, { now, match: { kind: 'sales' } })).toBe(
      'data/sales/acme/acme_sales.csv',
    );
  });

  it('fails the item, not retryable, when no regex captured the group', () => {
    let err: SluiceError | undefined;
    try {
      compileTemplate('{match.provider}/{name}').render(base, { now });
    } catch (e) {
      err = e as SluiceError;
    }
    expect(err?.code).toBe('SLUICE_E_TEMPLATE');
    expect(err?.retryable).toBe(false);
    expect(err?.message).toContain('uses {match.provider} but no regex captured "provider"');
  });
});
