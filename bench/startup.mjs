#!/usr/bin/env node
// Start-up cost of the CLI (issue 16.5): whole processes, `runs` times each, alternated, median
// wall time. `node -e 0` is the floor; `sluice --version`, `sluice validate` of a local pipeline
// and `sluice run` of an empty folder are what a user or a cron job pays before any file moves.
//
// Usage: node bench/startup.mjs [--runs 20] [--node /path/to/node] [--app DIR] [--cache on|off|both]
//   --node   the Node binary to measure with (default: the one running this script)
//   --app    a folder holding bin/ and dist/ (default: this repository), e.g. a copy whose
//            node_modules has native modules built for --node
//   --cache  the compile cache: `on` (default, what users get), `off` (NODE_DISABLE_COMPILE_CACHE=1)
//            or `both` (each Sluice case twice); a fresh cache folder is used and warmed first
// Prints a table; writes nothing into RESULTS.md (the numbers go there by hand, with the command).
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchDir, fmt, machine, median, repoDir } from './lib/common.mjs';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const runs = Number(opt('runs', '20'));
const node = opt('node', process.execPath);
const app = opt('app', repoDir);
const cacheMode = opt('cache', 'on');

const dir = join(benchDir, 'data', 'startup');
rmSync(dir, { recursive: true, force: true });
mkdirSync(join(dir, 'empty'), { recursive: true });
const pipeline = join(dir, 'empty.yaml');
writeFileSync(
  pipeline,
  `name: empty\nsource:\n  local: { path: ${join(dir, 'empty')} }\nsteps:\n  - filter: { include: '*.csv' }\nsink:\n  local: { path: ${join(dir, 'out')} }\n`,
);
const cacheHome = join(dir, 'xdg-cache');
const bin = join(app, 'bin', 'sluice.js');
const sluiceArgs = {
  '--version': ['--version'],
  validate: ['validate', pipeline],
  'run (empty folder)': [
    'run',
    pipeline,
    '--quiet',
    '--log-format',
    'json',
    '--state-dir',
    join(dir, 'state'),
  ],
};

/** Wall time of one whole process, in seconds; throws when it fails. */
function time(argv, env) {
  const t = process.hrtime.bigint();
  const r = spawnSync(node, argv, { env: { ...process.env, ...env }, encoding: 'utf8' });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`${node} ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return s;
}

const cases = { 'node -e 0': { argv: ['-e', '0'], env: {} } };
const modes = cacheMode === 'both' ? ['off', 'on'] : [cacheMode];
for (const [name, a] of Object.entries(sluiceArgs)) {
  for (const mode of modes) {
    const label = modes.length > 1 ? `sluice ${name}, compile cache ${mode}` : `sluice ${name}`;
    cases[label] = {
      argv: [bin, ...a],
      env: { XDG_CACHE_HOME: cacheHome, ...(mode === 'off' ? { NODE_DISABLE_COMPILE_CACHE: '1' } : {}) },
    };
  }
}
// Warm-up: page cache, and the compile cache is written on the first run.
for (const c of Object.values(cases)) time(c.argv, c.env);
const walls = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let i = 0; i < runs; i++) for (const [k, c] of Object.entries(cases)) walls[k].push(time(c.argv, c.env));
rmSync(dir, { recursive: true, force: true });

const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
const base = median(walls['node -e 0']);
console.log(`${machine()}; measured with Node ${version}, ${runs} runs each, medians`);
console.log('| what | median | ÷ `node -e 0` | over `node -e 0` |');
console.log('|---|---:|---:|---:|');
for (const [k, v] of Object.entries(walls)) {
  const m = median(v);
  console.log(`| ${k} | ${fmt(m * 1000, 0)} ms | ${fmt(m / base)} | +${fmt((m - base) * 1000, 0)} ms |`);
}
