import { describe, expect, it } from 'vitest';
import type { SluiceError } from '../../core/errors.js';
import { makePluginContext } from '../../test/helpers/context.js';
import { caught, runStep, testItem } from '../../test/helpers/core-steps-items.js';
import { setMetaPlugin } from './set-meta.js';

const setMeta = (config: Record<string, unknown>) => setMetaPlugin.create(config, makePluginContext());

describe('set_meta', () => {
  it('merges literal values into the meta, overwriting same keys', async () => {
    const step = await setMeta({ provider: 'acme', level: 2, urgent: true, tags: ['a'] });
    const item = testItem('a.csv', { meta: { provider: 'old', kept: 'yes' }, size: 3 });
    const out = await runStep(step, item);
    expect(out?.meta).toEqual({ provider: 'acme', kept: 'yes', level: 2, urgent: true, tags: ['a'] });
    expect(out?.size).toBe(3);
    expect(item.meta).toEqual({ provider: 'old', kept: 'yes' });
  });

  it('renders string values as templates against the incoming item', async () => {
    const step = await setMeta({
      original: '{path}',
      label: '{meta.provider}-{stem}',
      provider: 'new',
      day: '{date:%Y-%m-%d}',
      braces: '{{x}}',
      digest: '{sha256}',
    });
    const item = testItem('in/a.csv', {
      meta: { provider: 'acme' },
      mtime: new Date(Date.UTC(2024, 0, 2)),
      checksums: { sha256: 'ab' },
    });
    expect((await runStep(step, item))?.meta).toEqual({
      original: 'in/a.csv',
      label: 'acme-a',
      provider: 'new',
      day: '2024-01-02',
      braces: '{x}',
      digest: 'ab',
    });
  });

  it('fails an item missing a meta key the template reads', async () => {
    const step = await setMeta({ label: '{meta.provider}' });
    const err = (await caught(() => runStep(step, testItem('a.csv')))) as SluiceError;
    expect(err.code).toBe('SLUICE_E_TEMPLATE');
    expect(err.message).toContain('has no meta "provider"');
  });

  it('reports a bad template at its key', async () => {
    const err = (await caught(() => setMeta({ ok: 'x', bad: '{nam}' }))) as SluiceError;
    expect(err.code).toBe('SLUICE_E_CONFIG');
    expect(err.context.jsonPath).toBe('/bad');
  });
});
