#!/usr/bin/env node
// Core benchmarks (issue 2): Sluice local → local against peers measured in the same run.
//  1. one 1 GiB file: Sluice vs a hand-written stream.pipeline copy (whole processes)
//  2. 20,000 × 4 KiB files in 100 folders: Sluice vs `cp -r` and `rclone copy` (if installed)
//  3. peak RSS of Sluice for a 2 GiB file
// Usage: node bench/core.mjs [--quick]   (quick: 256 MiB / 5,000 files / 512 MiB, 1 round)
import { existsSync, linkSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchDir, fmt, has, machine, makeBigFile, measure, median, sluiceBin, writeSection } from './lib/common.mjs';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 3;
const BIG = (quick ? 256 : 1024) * 2 ** 20;
const HUGE = (quick ? 512 : 2048) * 2 ** 20;
const SMALL_FILES = quick ? 5000 : 20000;
const data = join(benchDir, 'data', 'core');
mkdirSync(data, { recursive: true });

function makeSmallFiles(dir, n) {
  if (existsSync(join(dir, 'd99'))) return;
  for (let d = 0; d < 100; d++) mkdirSync(join(dir, `d${d}`), { recursive: true });
  const body = Buffer.alloc(4096, 'x');
  for (let i = 0; i < n; i++) {
    body.write(String(i).padStart(8, '0'));
    writeFileSync(join(dir, `d${i % 100}`, `f${i}.dat`), body);
  }
}

function pipelineFile(name, from, to, concurrency) {
  const file = join(data, `${name}.yaml`);
  writeFileSync(file, `name: ${name}\nsource:\n  local: { path: ${from} }\nsink:\n  local: { path: ${to} }\npolicy:\n  concurrency: ${concurrency}\n`);
  return file;
}

let fresh = 0;
const freshDir = (tag) => {
  const d = join(data, 'out', `${tag}-${++fresh}`);
  rmSync(d, { recursive: true, force: true });
  return d;
};
const sluice = (pipeline) => measure('node', [sluiceBin, 'run', pipeline, '--force', '--quiet', '--log-format', 'json', '--state-dir', join(data, 'state')]);

const lines = [`## Core: local → local (issue 2)`, '', `Machine: ${machine()}. ${quick ? 'Quick mode (smaller inputs, 1 round).' : `Median of ${ROUNDS} alternated rounds after a warm-up.`} Whole-process wall time, measured by \`bench/lib/measure.py\`.`, ''];

// 1. one big file
const big = join(data, 'big.csv');
makeBigFile(big, BIG);
rmSync(join(data, 'out'), { recursive: true, force: true });
const bigIn = join(data, 'big-in');
mkdirSync(bigIn, { recursive: true });
rmSync(join(bigIn, 'big.csv'), { force: true });
linkSync(big, join(bigIn, 'big.csv'));
// In the same process, as the issue asks: the hand-written copy and Sluice's runtime alternate.
const { runPipelineFile } = await import(join(benchDir, '..', 'dist', 'core', 'runtime', 'run-file.js'));
const { pipeline } = await import('node:stream/promises');
const { createReadStream, createWriteStream } = await import('node:fs');
const bigPipeline = (verify) => {
  const file = join(data, `big-${verify}.yaml`);
  writeFileSync(file, `name: big-${verify}\nsource:\n  local: { path: ${bigIn} }\nsink:\n  local: { path: ${join(data, 'out', 'big')}, verify: ${verify} }\n`);
  return file;
};
const timed = async (fn) => {
  rmSync(join(data, 'out'), { recursive: true, force: true });
  mkdirSync(join(data, 'out'), { recursive: true });
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
};
const copyRaw = () =>
  pipeline(createReadStream(big, { highWaterMark: 1 << 20 }), createWriteStream(join(data, 'out', 'raw.csv'), { highWaterMark: 1 << 20 }));
const viaSluice = (verify) => async () => {
  const s = await runPipelineFile(bigPipeline(verify), { force: true, stateDir: join(data, 'state') });
  if (s.ok !== 1) throw new Error(`sluice run failed: ${JSON.stringify(s.failures)}`);
};
const times = { raw: [], size: [], sha256: [] };
await timed(copyRaw);
await timed(viaSluice('size'));
for (let r = 0; r < ROUNDS; r++) {
  times.raw.push(await timed(copyRaw));
  times.size.push(await timed(viaSluice('size')));
  times.sha256.push(await timed(viaSluice('sha256')));
}
const mib = BIG / 2 ** 20;
const rawT = median(times.raw);
lines.push(`### One ${mib} MiB file, in one process`, '', '| what | time | MiB/s | ratio to raw |', '|---|---|---|---|');
lines.push(`| hand-written \`stream.pipeline\` copy (1 MiB buffers) | ${fmt(rawT)} s | ${fmt(mib / rawT, 0)} | 1.00 |`);
lines.push(`| Sluice local → local, \`verify: size\` (default) | ${fmt(median(times.size))} s | ${fmt(mib / median(times.size), 0)} | **${fmt(rawT / median(times.size))}** (target ≥ 0.9) |`);
lines.push(`| Sluice, \`verify: sha256\` (hash while streaming + re-read) | ${fmt(median(times.sha256))} s | ${fmt(mib / median(times.sha256), 0)} | ${fmt(rawT / median(times.sha256))} |`, '');
const cold = median([0, 1, 2].map(() => measure('node', [sluiceBin, '--version']).wall_s));
const nodeCold = median([0, 1, 2].map(() => measure('node', ['-e', '0']).wall_s));
lines.push(`Cold start: \`sluice --version\` ${fmt(cold * 1000, 0)} ms vs \`node -e 0\` ${fmt(nodeCold * 1000, 0)} ms (whole processes below include it).`, '');

// 2. many small files
const smallIn = join(data, `small-${SMALL_FILES}`);
makeSmallFiles(smallIn, SMALL_FILES);
const cpT = [];
const rcT = [];
const slS = [];
const slRss = [];
const rcRss = [];
const withRclone = has('rclone');
const runCp = () => measure('cp', ['-r', smallIn, freshDir('cp')]);
const runRclone = () =>
  measure('rclone', ['copy', '--transfers', '16', '--checkers', '16', smallIn, freshDir('rclone')], { env: { RCLONE_CONFIG: '/dev/null' } });
const runSluiceSmall = () => sluice(pipelineFile('small', smallIn, freshDir('sluice-small'), 16));
runCp();
runSluiceSmall();
if (withRclone) runRclone();
for (let r = 0; r < ROUNDS; r++) {
  cpT.push(runCp().wall_s);
  if (withRclone) {
    const m = runRclone();
    rcT.push(m.wall_s);
    rcRss.push(m.max_rss_kib);
  }
  const m = runSluiceSmall();
  slS.push(m.wall_s);
  slRss.push(m.max_rss_kib);
}
const rate = (t) => SMALL_FILES / t;
lines.push(`### ${SMALL_FILES.toLocaleString('en')} × 4 KiB files in 100 folders`, '', '| what | files/s | peak RSS | ratio to rclone |', '|---|---|---|---|');
lines.push(`| \`cp -r\` | ${fmt(rate(median(cpT)), 0)} | | |`);
if (withRclone) lines.push(`| \`rclone copy --transfers 16 --checkers 16\` | ${fmt(rate(median(rcT)), 0)} | ${fmt(median(rcRss) / 1024, 0)} MiB | 1.00 |`);
lines.push(
  `| Sluice, concurrency 16 (size verify, ledger) | ${fmt(rate(median(slS)), 0)} | ${fmt(median(slRss) / 1024, 0)} MiB | ${withRclone ? `**${fmt(median(rcT) / median(slS))}** (target ≥ 1.0)` : 'rclone not installed'} |`,
  '',
);

// 3. peak RSS for a huge file
const huge = join(data, 'huge.csv');
makeBigFile(huge, HUGE);
const hugeIn = join(data, 'huge-in');
mkdirSync(hugeIn, { recursive: true });
rmSync(join(hugeIn, 'huge.csv'), { force: true });
linkSync(huge, join(hugeIn, 'huge.csv'));
const hugeRun = sluice(pipelineFile('huge', hugeIn, freshDir('sluice-huge'), 1));
const bigRss = sluice(pipelineFile('big', bigIn, freshDir('sluice-big'), 1)).max_rss_kib;
lines.push(`### Memory`, '', '| input | Sluice peak RSS |', '|---|---|');
lines.push(`| ${mib} MiB file | ${fmt(bigRss / 1024, 0)} MiB |`);
lines.push(`| ${HUGE / 2 ** 20} MiB file | **${fmt(hugeRun.max_rss_kib / 1024, 0)} MiB** (target < 150 MiB) |`, '');
lines.push('Reproduce: `npm run bench` (or `node bench/core.mjs [--quick]` after `npm run build`).');

rmSync(join(data, 'out'), { recursive: true, force: true });
writeSection('core', lines.join('\n'));
console.log(lines.join('\n'));
