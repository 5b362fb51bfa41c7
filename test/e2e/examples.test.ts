/**
 * The reference pipelines in ../shared/examples (the YAML contract) and the runnable copies in
 * pipelines/ must validate, with every ${VAR} they name set to some value.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigErrors } from '../../core/config/load.js';
import { SluiceError } from '../../core/errors.js';
import { builtinRegistry, loadPipelineFile } from '../../core/sdk.js';

const root = join(import.meta.dirname, '..', '..');
const sharedExamples = join(root, '..', 'shared', 'examples');

/**
 * Plugins named by the examples that are not built yet. The test passes for an example only
 * if its sole problems are these unknown plugins — and fails as soon as one of them exists,
 * so that the example is then validated for real.
 */
const NOT_BUILT_YET: string[] = [];

/** The files of shared/examples/next/ whose keys exist now (SQL listing: issue 13; item keys: issue 14). */
const NEXT_LANDED = ['datahub-compress-sql.yaml', 'octo-mixed-drops.yaml'];

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f) && !/\.test\.ya?ml$/.test(f))
    .map((f) => join(dir, f));
}

function varsOf(file: string): Record<string, string> {
  const vars: Record<string, string> = {};
  // Any value of the right kind: a port must still be a number, a URL a URL.
  for (const m of readFileSync(file, 'utf8').matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) {
    const name = m[1];
    vars[name] = name.endsWith('PORT')
      ? '2222'
      : name.endsWith('_DB_URL')
        ? `postgres://user:password@${name.toLowerCase().replace(/_/g, '-')}.example:5432/db`
        : name.endsWith('_URL')
          ? `https://${name.toLowerCase().replace(/_/g, '-')}.example`
          : name.endsWith('_ENDPOINT')
            ? 'http://127.0.0.1:9000'
            : `value-of-${name.toLowerCase()}`;
  }
  return vars;
}

describe('reference pipelines validate', () => {
  it('finds the shared examples beside the repository', () => {
    expect(
      existsSync(sharedExamples),
      `${sharedExamples} is missing: CI clones main with shared/ beside it`,
    ).toBe(true);
  });

  it('lists only plugins that really do not exist yet', () => {
    const registry = builtinRegistry();
    for (const name of NOT_BUILT_YET) {
      const exists = ['source', 'sink', 'step'].some((r) => registry.get(r as 'step', name));
      expect(exists, `plugin "${name}" exists now: remove it from NOT_BUILT_YET`).toBe(false);
    }
  });

  const files = [
    ...(existsSync(sharedExamples) ? yamlFiles(sharedExamples) : []),
    // next/ holds the shapes of open issues; each is validated here once its issue has landed.
    ...NEXT_LANDED.map((f) => join(sharedExamples, 'next', f)).filter((f) => existsSync(f)),
    ...yamlFiles(join(root, 'pipelines')),
  ];
  for (const file of files) {
    it(file.slice(root.length - 4), async () => {
      try {
        await loadPipelineFile(file, { env: {}, vars: varsOf(file) });
      } catch (err) {
        const errors = err instanceof ConfigErrors ? err.errors : [err as SluiceError];
        const unexpected = errors.filter(
          (e) =>
            !(
              e instanceof SluiceError &&
              e.code === 'SLUICE_E_UNKNOWN_PLUGIN' &&
              NOT_BUILT_YET.some((n) => e.message.includes(`"${n}"`))
            ),
        );
        expect(unexpected.map((e) => (e instanceof SluiceError ? e.toUserString() : String(e)))).toEqual([]);
      }
    });
  }
});
