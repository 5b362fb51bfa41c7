/**
 * The precompiled (standalone) validators the build puts into the CLI must behave exactly as
 * ajv compiling the same schema at run time: same verdict, same errors (with the schema and
 * data that error messages quote), same defaults filled in and types coerced.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { builtinPlugins } from '../../plugins/index.js';
import { PipelineShape } from './schema.js';
import {
  precompiledValidatorsCode,
  preloadValidators,
  usePrecompiledValidators,
  type Validator,
  validateAgainst,
  validatorName,
} from './validate.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-validators-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes the standalone module of `schema` and imports it, as the bundle would. */
async function standaloneModule(schema: TSchema): Promise<{ file: string; validator: Validator }> {
  const name = validatorName(schema);
  const file = join(dir, `${name}.mjs`);
  // In the CLI, esbuild resolves these require() calls; here Node does, from the repo.
  const requireShim = `import { createRequire } from 'node:module';\nconst require = createRequire(${JSON.stringify(import.meta.url)});\n`;
  writeFileSync(file, requireShim + precompiledValidatorsCode([schema]));
  const mod = (await import(pathToFileURL(file).href)) as Record<string, Validator>;
  return { file, validator: mod[name] };
}

/** Values that exercise most keywords of a config schema: empty, examples, wrong types, unknown keys. */
function samples(schema: TSchema, examples: string[] = []): unknown[] {
  const keys = Object.keys((schema.properties as Record<string, unknown> | undefined) ?? {});
  return [
    {},
    null,
    'text',
    ...examples.map((yaml) => parse(yaml) as unknown),
    Object.fromEntries(keys.map((k) => [k, [[1]]])),
    Object.fromEntries(keys.map((k) => [k, '12'])),
    Object.fromEntries(keys.map((k) => [k, { nested: true }])),
    Object.fromEntries([...keys.map((k) => [k, 'true']), ['unknwn', 1]]),
  ];
}

const asJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

const schemas: Array<[string, TSchema, string[]]> = [
  ['pipeline shape', PipelineShape, []],
  ...builtinPlugins.map((p): [string, TSchema, string[]] => [
    `${p.kind} ${p.name}`,
    p.config,
    (p.examples ?? []).map((e) => e.yaml),
  ]),
];

describe('precompiled validators', () => {
  const runtime = new Ajv({
    allErrors: true,
    useDefaults: true,
    coerceTypes: true,
    strict: false,
    verbose: true,
  });
  runtime.addKeyword({ keyword: 'x-secret', schemaType: 'boolean' });

  for (const [label, schema, examples] of schemas) {
    it(`${label}: same verdicts, errors, defaults and coercions as ajv at run time`, async () => {
      const { validator } = await standaloneModule(schema);
      const compiled = runtime.compile(schema);
      for (const sample of samples(schema, examples)) {
        const a = structuredClone(sample);
        const b = structuredClone(sample);
        expect(validator(a)).toBe(compiled(b));
        // The standalone code quotes schemas as JSON literals, so TypeBox's symbol keys are gone.
        expect(asJson(validator.errors ?? null)).toEqual(asJson(compiled.errors ?? null));
        expect(a).toEqual(b);
      }
    });
  }

  it('validateAgainst uses a registered validator when the schema is the same, and ajv otherwise', async () => {
    const plugin = builtinPlugins.find((p) => p.name === 'segregate')!;
    const bad = { routes: [{ when: { name: 3 }, to: 5 }], defualt: 'x/{name}' };
    const expected = validateAgainst(plugin.config, structuredClone(bad));
    expect(expected.map((p) => p.message)).toContain('unknown key "defualt"');

    const { file } = await standaloneModule(plugin.config);
    let loads = 0;
    usePrecompiledValidators({
      [validatorName(plugin.config)]: () => {
        loads++;
        return import(pathToFileURL(file).href);
      },
    });
    // A copy: same JSON, hence the same validator name, but not yet seen by validateAgainst.
    const copy = structuredClone(plugin.config);
    const other = structuredClone(builtinPlugins.find((p) => p.name === 'rename')!.config);
    await preloadValidators([copy, other]);
    expect(loads).toBe(1);
    expect(validateAgainst(copy, structuredClone(bad))).toEqual(expected);
    // No precompiled module for `other`: compiled by ajv, same answers as ever.
    expect(validateAgainst(other, { to: 3, extra: 1 }).map((p) => p.message)).toEqual([
      'unknown key "extra"',
    ]);
  });
});
