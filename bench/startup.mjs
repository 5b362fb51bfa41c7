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
import { benchDir, fmt, machine, measure, median, repoDir } from './lib/common.mjs';

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

/** Wall and CPU time (user + system) of one whole process, in seconds; throws when it fails. */
const time = (argv, env) => measure(node, argv, { env });

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
const cpus = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let i = 0; i < runs; i++)
  for (const [k, c] of Object.entries(cases)) {
    const m = time(c.argv, c.env);
    walls[k].push(m.wall_s);
    cpus[k].push(m.cpu_s);
  }
rmSync(dir, { recursive: true, force: true });

const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
const base = median(walls['node -e 0']);
const baseCpu = median(cpus['node -e 0']);
console.log(`${machine()}; measured with Node ${version}, ${runs} runs each, medians`);
console.log('CPU time (user + system) is the steadier figure on a loaded machine.');
console.log('| what | wall | ÷ `node -e 0` | CPU | ÷ `node -e 0` |');
console.log('|---|---:|---:|---:|---:|');
for (const k of Object.keys(walls)) {
  const w = median(walls[k]);
  const c = median(cpus[k]);
  console.log(
    `| ${k} | ${fmt(w * 1000, 0)} ms | ${fmt(w / base)} | ${fmt(c * 1000, 0)} ms | ${fmt(c / baseCpu)} |`,
  );
}
