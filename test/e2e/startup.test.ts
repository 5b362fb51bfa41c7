/**
 * The built CLI (bin/sluice.js → the esbuild bundle in dist/cli/) starts on precompiled
 * validators: validating a pipeline of built-in plugins never loads ajv's compiler, while a
 * third-party plugin's schema, which the build cannot know, is still compiled and checked.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeWorkspace } from '../helpers/workspace.js';

const root = join(import.meta.dirname, '..', '..');
const ws = makeWorkspace('sluice-startup-');
afterAll(() => ws.cleanup());

// Preloaded into the CLI process: reports every require() of ajv's main module on stderr.
const tracer = join(ws.dir, 'trace-ajv.cjs');
writeFileSync(
  tracer,
  `const Module = require('node:module');
const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === 'ajv') process.stderr.write('loaded ajv\\n');
  return load.call(this, request, ...rest);
};
`,
);

function validate(file: string) {
  const r = spawnSync(
    process.execPath,
    ['--require', tracer, join(root, 'bin', 'sluice.js'), 'validate', file],
    {
      cwd: ws.dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('CLI start-up', () => {
  it('validates built-in plugin configs with the precompiled validators (ajv is not loaded)', () => {
    writeFileSync(
      join(ws.dir, 'good.yaml'),
      'name: good\nsource:\n  local: { path: ./in }\nsteps:\n  - decompress: {}\nsink:\n  local: { path: ./out }\n',
    );
    const ok = validate('good.yaml');
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe('ok  good.yaml (good: 1 source(s), 1 step(s), 1 sink(s))\n');
    expect(ok.code).toBe(0);

    writeFileSync(
      join(ws.dir, 'bad.yaml'),
      'name: bad\nsource:\n  local: { path: ./in, recursive: maybe }\nsink:\n  local: { path: ./out }\n',
    );
    const bad = validate('bad.yaml');
    expect(bad.stderr).toBe(
      'bad.yaml:3:35: [source.local] /source/local/recursive: must be boolean, got string "maybe"\n',
    );
    expect(bad.code).toBe(2);
  });

  it('compiles the schema of a third-party plugin when a pipeline names one', () => {
    const shout = join(root, 'test', 'plugins', 'shout.mjs');
    writeFileSync(
      join(ws.dir, 'loud.yaml'),
      `name: loud\nplugins: [${JSON.stringify(shout)}]\nsource:\n  local: { path: ./in }\nsteps:\n  - shout: { sufix: .x }\nsink:\n  local: { path: ./out }\n`,
    );
    const r = validate('loud.yaml');
    expect(r.stderr).toBe(
      'loaded ajv\nloud.yaml:6:14: [steps[0].shout] /steps/0/shout/sufix: unknown key "sufix" — did you mean "suffix"?\n',
    );
    expect(r.code).toBe(2);
  });
});
