/**
 * `--set PATH=VALUE`: a pipeline key changed for one run without editing the file, validated
 * like the file, a bad value named by its flag. Loader-level cases, then `run`, `plan`,
 * `validate` and `test` with the real binary.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConfigErrors } from '../../core/config/load.js';
import { loadPipelineFile } from '../../core/sdk.js';
import { SLUICE_BIN } from '../helpers/sluice-process.js';
import { makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-set-');
afterAll(() => ws.cleanup());

const PIPELINE = `name: setme
source:
  local:
    path: ./in
steps:
  - filter:
      min_size: 1KiB
sink:
  local:
    path: ./out
policy:
  concurrency: 2
`;
const file = ws.pipeline(PIPELINE);

function sluice(args: string[]) {
  const r = spawnSync(process.execPath, [SLUICE_BIN, ...args], {
    cwd: ws.dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function loadError(set: string[]): Promise<string> {
  try {
    await loadPipelineFile(file, { set });
  } catch (err) {
    return (err as ConfigErrors).toUserString().replaceAll(`${ws.dir}/`, '');
  }
  throw new Error('expected the load to fail');
}

describe('--set in the loader', () => {
  it('overrides a key by path; the value is YAML', async () => {
    const def = await loadPipelineFile(file, {
      set: ['policy.concurrency=50', 'steps[0].filter.min_size=5MiB', 'policy.retry.max_attempts=7'],
    });
    expect(def.policy.concurrency).toBe(50);
    expect((def.steps[0].config as { min_size: unknown }).min_size).toBe('5MiB');
    expect(def.policy.retry.maxAttempts).toBe(7);
    const plain = await loadPipelineFile(file, {});
    expect(plain.policy.concurrency).toBe(2);
    // The overridden file is a different version (cluster workers load it from its text).
    expect(def.hash).not.toBe(plain.hash);
    expect(def.text).toContain('concurrency: 50');
  });

  it('sets a list, and creates the maps on the way', async () => {
    const def = await loadPipelineFile(file, { set: ['source.local.include=["*.csv", "*.tsv"]'] });
    expect((def.sources[0].config as { include: string[] }).include).toEqual(['*.csv', '*.tsv']);
  });

  it('validates the value like the file, the error naming the flag', async () => {
    expect(await loadError(['policy.concurrency=lots'])).toBe(
      'pipeline.yaml (--set policy.concurrency=lots): /policy/concurrency: must be integer, got string "lots"',
    );
    expect(await loadError(['steps[0].filter.min_size=5 parsecs'])).toMatch(
      /^pipeline\.yaml \(--set steps\[0\]\.filter\.min_size=5 parsecs\): \[steps\[0\]\.filter\] \/steps\/0\/filter\/min_size: "5 parsecs" is not valid here/,
    );
    expect(await loadError(['policy.concurency=8'])).toMatch(
      /\(--set policy\.concurency=8\): \/policy\/concurency: unknown key "concurency" — did you mean "concurrency"\?/,
    );
  });

  it('refuses a path that does not fit the file, and a malformed flag', async () => {
    expect(await loadError(['steps[3].filter.min_size=1'])).toBe(
      '--set steps[3].filter.min_size=1: steps has 1 item; there is no [3]',
    );
    expect(await loadError(['name.first=x'])).toBe('--set name.first=x: name is not a map');
    expect(await loadError(['policy.concurrency'])).toMatch(
      /^--set policy\.concurrency: expected PATH=VALUE/,
    );
  });
});

describe('--set on the command line', () => {
  it('validate, plan and run take it; run uses the overridden value', () => {
    ws.write('in/small.txt', 'x'.repeat(100));
    ws.write('in/big.txt', 'x'.repeat(3000));
    expect(sluice(['validate', 'pipeline.yaml', '--set', 'policy.concurrency=9']).code).toBe(0);
    const bad = sluice(['validate', 'pipeline.yaml', '--set', 'policy.concurrency=-1']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('pipeline.yaml (--set policy.concurrency=-1): /policy/concurrency:');
    const plan = sluice(['plan', 'pipeline.yaml', '--set', 'steps[0].filter.min_size=10']);
    expect(plan.stdout).toContain('small.txt → ');
    const run = sluice([
      'run',
      'pipeline.yaml',
      '--set',
      'steps[0].filter.min_size=2KiB',
      '--log-format',
      'json',
    ]);
    expect(run.code).toBe(0);
    expect(ws.files('out')).toEqual(['big.txt']);
  });

  it('test takes it', () => {
    ws.write(
      'pipeline.test.yaml',
      `tests:
  - name: small files pass once the threshold is lowered
    inputs:
      - { path: a.txt, content: "tiny" }
    expect:
      files:
        - { path: a.txt, content: "tiny" }
`,
    );
    expect(sluice(['test', 'pipeline.yaml']).code).toBe(1);
    const r = sluice(['test', 'pipeline.yaml', '--set', 'steps[0].filter.min_size=0']);
    expect(r.stdout).toContain('PASS');
    expect(r.code).toBe(0);
  });
});
