import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { StepPlugin } from '../../core/plugin-api.js';
import { makePluginContext } from '../../test/helpers/context.js';
import { filterPlugin } from './filter.js';
import { renamePlugin } from './rename.js';
import { segregatePlugin } from './segregate.js';
import { setMetaPlugin } from './set-meta.js';

const plugins: StepPlugin[] = [filterPlugin, renamePlugin, segregatePlugin, setMetaPlugin];

const ajv = new Ajv({ useDefaults: true, coerceTypes: true, allErrors: true, strict: false });

/** Validates like the loader does (defaults, coercion), then builds the step. */
async function validateAndCreate(plugin: StepPlugin, config: unknown) {
  const validate = ajv.compile(plugin.config);
  const copy = structuredClone(config);
  expect(validate(copy), JSON.stringify(validate.errors)).toBe(true);
  return plugin.create(copy, makePluginContext());
}

describe('core step schemas', () => {
  for (const plugin of plugins) {
    it(`${plugin.name}: every documented example validates and builds`, async () => {
      expect(plugin.examples?.length).toBeGreaterThan(0);
      for (const example of plugin.examples ?? []) await validateAndCreate(plugin, parse(example.yaml));
    });
  }

  // The step configs of shared/examples/*.yaml, copied: those keys must keep validating.
  it.each([
    [
      'segregate',
      "date: {from: name, pattern: '^CHARGINGCDR_.*-(\\d{8})-?(\\d{2}).*', format: '%Y%m%d%H'}\nto: 'segregated/{date:%Y/%m/%d/%H}/{name}'\nunmatched: 'errors/{name}'",
    ],
    [
      'segregate',
      "date: {from: name, pattern: '(\\d{4})-?(\\d{2})-?(\\d{2})', format: '%Y%m%d'}\nroutes:\n  - when: { name: ['*.csv', '*.tsv'] }\n    to: 'tables/{date:%Y/%m}/{name}'\n  - when: { name: '*.pdf' }\n    to: 'documents/{name}'\ndefault: 'other/{name}'\nunmatched: 'undated/{name}'",
    ],
    ['segregate', "date: { from: mtime }\nto: 'processed-data/monthly/{date:%Y/%m}/{name}'"],
    [
      'segregate',
      "routes:\n  - when: { name: '*.csv' }\n    to: 'data/csv/{meta.provider}/{date:%Y/%m}/{name}'\ndefault: 'data/other/{meta.provider}/{name}'",
    ],
    ['segregate', "date: { from: mtime }\nto: '{source}/{date:%Y/%m/%d}/{path}'"],
    ['filter', "min_size: 1MiB\nexclude: ['*.gz']"],
    ['set_meta', 'provider: acme'],
  ])('accepts the reference pipeline config of %s: %s', async (name, yaml) => {
    const plugin = plugins.find((p) => p.name === name)!;
    await validateAndCreate(plugin, parse(yaml));
  });

  it('rejects unknown keys', async () => {
    expect(ajv.validate(segregatePlugin.config, { to: '{name}', unmached: 'x' })).toBe(false);
    expect(ajv.validate(filterPlugin.config, { min_sise: 1 })).toBe(false);
    expect(ajv.validate(setMetaPlugin.config, { 'bad key': 1 })).toBe(false);
    expect(ajv.validate(segregatePlugin.config, { routes: [{ when: { nam: '*.csv' }, to: 'x' }] })).toBe(
      false,
    );
  });
});
