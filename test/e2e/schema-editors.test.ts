/**
 * The editor schemas accept every shipped pipeline and pipeline test, checked as the YAML
 * language server does: a standard JSON-Schema validator (ajv, strict off, no defaults filled,
 * no type coercion) on the parsed YAML before `${…}` is interpolated.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generatedFiles } from '../../core/generated.js';

const root = join(import.meta.dirname, '..', '..');
const shared = '/work/shared/examples';
const generated = generatedFiles();
const pipelineSchema = JSON.parse(generated['schemas/pipeline.schema.json']);
const testSchema = JSON.parse(generated['schemas/pipeline-test.schema.json']);

function validator(schema: object) {
  const ajv = new Ajv({ strict: false, allErrors: true });
  return ajv.compile(schema);
}

function yamlFiles(dir: string, test: boolean): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /\.ya?ml$/.test(n) && /\.test\.ya?ml$/.test(n) === test)
    .map((n) => join(dir, n));
}

function problems(validate: ReturnType<typeof validator>, file: string): string[] {
  const ok = validate(parse(readFileSync(file, 'utf8')));
  return ok ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`);
}

describe('editor schema of pipelines', () => {
  const validate = validator(pipelineSchema);
  const files = [...yamlFiles(join(root, 'pipelines'), false), ...yamlFiles(shared, false)];

  it('finds the shipped pipelines', () => {
    expect(files.length).toBeGreaterThanOrEqual(6);
  });

  for (const file of files) {
    it(`accepts ${file.replace(`${root}/`, '')}`, () => {
      expect(problems(validate, file)).toEqual([]);
    });
  }

  it('does not require keys that have defaults', () => {
    const minimal = {
      name: 'p',
      source: { local: { path: './in' } },
      steps: [{ segregate: { to: '{name}' } }],
      sink: { sftp: { host: 'h', username: 'u', password: 'p', path: '/x' } },
      policy: { retry: { max_attempts: 2 } },
    };
    expect(validate(minimal), JSON.stringify(validate.errors)).toBe(true);
  });

  it('accepts ${…} where a number, boolean or enum is expected, and still rejects a wrong literal', () => {
    const doc = (port: unknown, jitter: unknown) => ({
      name: 'p',
      source: { sftp: { host: 'h', port, username: 'u', password: 'p', path: '/x' } },
      sink: { local: { path: './out' } },
      policy: { concurrency: '${CONC:-4}', retry: { jitter } },
    });
    expect(validate(doc('${PORT:-22}', '${JITTER}')), JSON.stringify(validate.errors)).toBe(true);
    expect(validate(doc(22, 'none'))).toBe(true);
    expect(validate(doc('twenty-two', 'none'))).toBe(false);
    expect(validate(doc(22, 'some'))).toBe(false);
  });

  it('still rejects an unknown key and a missing required one', () => {
    expect(validate({ name: 'p', source: { local: { path: '.' } }, sink: { local: { pth: '.' } } })).toBe(
      false,
    );
    expect(validate({ name: 'p', source: { sftp: { path: '/x' } }, sink: { local: { path: '.' } } })).toBe(
      false,
    );
  });
});

describe('editor schema of pipeline tests', () => {
  const validate = validator(testSchema);
  const files = [...yamlFiles(join(root, 'pipelines'), true), ...yamlFiles(shared, true)];

  it('finds the shipped pipeline tests', () => {
    expect(files.length).toBeGreaterThanOrEqual(1);
  });

  for (const file of files) {
    it(`accepts ${file.replace(`${root}/`, '')}`, () => {
      expect(problems(validate, file)).toEqual([]);
    });
  }

  it('rejects an input without content and an unknown key', () => {
    expect(validate({ tests: [{ name: 'a', inputs: [{ path: 'x' }], expect: {} }] })).toBe(false);
    expect(
      validate({ tests: [{ name: 'a', inputs: [{ path: 'x', content: '' }], expect: { filez: [] } }] }),
    ).toBe(false);
  });
});
