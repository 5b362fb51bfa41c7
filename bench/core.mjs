#!/usr/bin/env node
// Core benchmarks (issue 2): Sluice local → local against peers measured in the same run.
//  1. one 1 GiB file: Sluice vs a hand-written stream.pipeline copy (in one process)
//  2. 20,000 × 4 KiB files in 100 folders: Sluice vs `cp -r` and `rclone copy` (if installed)
//  3. peak RSS of Sluice for a 2 GiB file
// Usage: node bench/core.mjs [--quick]   (quick: 256 MiB / 5,000 files / 512 MiB, 1 round)
// bench/peers.mjs imports bigFileInProcess and smallFilesVsRclone.
import {
  createReadStream,
  createWriteStream,
  existsSync,
  linkSync,
  mkdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  benchDir,
  fmt,
  has,
  isMain,
  machine,
  makeBigFile,
  measure,
  median,
  runSluice,
  sluiceBin,
  writeSection,
} from './lib/common.mjs';

const data = join(benchDir, 'data', 'core');

function makeSmallFiles(dir, n) {
  if (existsSync(join(dir, 'd99'))) return;
  for (let d = 0; d < 100; d++) mkdirSync(join(dir, `d${d}`), { recursive: true });
  const body = Buffer.alloc(4096, 'x');
  for (let i = 0; i < n; i++) {
    body.write(String(i).padStart(8, '0'));
    writeFileSync(join(dir, `d${i % 100}`, `f${i}.dat`), body);
  }
}

function pipelineFile(name, from, to, concurrency, threads) {
  const file = join(data, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}\nsource:\n  local: { path: ${from} }\nsink:\n  local: { path: ${to} }\npolicy:\n  concurrency: ${concurrency}\n${threads === undefined ? '' : `  threads: ${threads}\n`}`,
  );
  return file;
}

let fresh = 0;
const freshDir = (tag) => {
  const d = join(data, 'out', `${tag}-${++fresh}`);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(join(data, 'out'), { recursive: true });
  return d;
};
const sluice = (pipeline) => runSluice(pipeline, join(data, 'state'));

/** A folder holding just a hard link to `file`, as a pipeline source. */
function inboxOf(file, name) {
  const dir = join(data, `${name}-in`);
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, `${name}.csv`), { force: true });
  linkSync(file, join(dir, `${name}.csv`));
  return dir;
}

/**
 * One `bytes`-sized file copied in this process by a hand-written stream.pipeline and by
 * Sluice's runtime (verify size, and sha256), alternated after a warm-up of each.
 * Returns median seconds: { raw, size, sha256 }.
 */
export async function bigFileInProcess({ bytes, rounds }) {
  mkdirSync(data, { recursive: true });
  const big = join(data, bytes === 2 ** 30 ? 'big.csv' : `big-${bytes / 2 ** 20}.csv`);
  makeBigFile(big, bytes);
  rmSync(join(data, 'out'), { recursive: true, force: true });
  const bigIn = inboxOf(big, 'big');
  const { runPipelineFile } = await import(join(benchDir, '..', 'dist', 'core', 'sdk.js'));
  const bigPipeline = (verify) => {
    const file = join(data, `big-${verify}.yaml`);
    writeFileSync(
      file,
      `name: big-${verify}\nsource:\n  local: { path: ${bigIn} }\nsink:\n  local: { path: ${join(data, 'out', 'big')}, verify: ${verify} }\n`,
    );
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
    pipeline(
      createReadStream(big, { highWaterMark: 1 << 20 }),
      createWriteStream(join(data, 'out', 'raw.csv'), { highWaterMark: 1 << 20 }),
    );
  const viaSluice = (verify) => async () => {
    const s = await runPipelineFile(bigPipeline(verify), { force: true, stateDir: join(data, 'state') });
    if (s.ok !== 1) throw new Error(`sluice run failed: ${JSON.stringify(s.failures)}`);
  };
  const times = { raw: [], size: [], sha256: [] };
  await timed(copyRaw);
  await timed(viaSluice('size'));
  for (let r = 0; r < rounds; r++) {
    times.raw.push(await timed(copyRaw));
    times.size.push(await timed(viaSluice('size')));
    times.sha256.push(await timed(viaSluice('sha256')));
  }
  rmSync(join(data, 'out'), { recursive: true, force: true });
  return { raw: median(times.raw), size: median(times.size), sha256: median(times.sha256) };
}

/**
 * `count` × 4 KiB files in 100 folders, local → local, whole processes alternated after a
 * warm-up: `cp -r`, `rclone copy --transfers 16 --checkers 16` (when installed), Sluice with
 * concurrency 16. Medians: { cp, rclone, sluice } in seconds (rclone null when missing) and
 * { rcloneRssKib, sluiceRssKib }.
 */
export function smallFilesVsRclone({ count, rounds }) {
  mkdirSync(data, { recursive: true });
  const smallIn = join(data, `small-${count}`);
  makeSmallFiles(smallIn, count);
  const withRclone = has('rclone');
  const runCp = () => measure('cp', ['-r', smallIn, freshDir('cp')]);
  const runRclone = () =>
    measure('rclone', ['copy', '--transfers', '16', '--checkers', '16', smallIn, freshDir('rclone')], {
      env: { RCLONE_CONFIG: '/dev/null' },
    });
  const runSluice = () => sluice(pipelineFile('small', smallIn, freshDir('sluice-small'), 16));
  // The same run on a pool of 2 threads (`threads: 2`), beside the default (`auto`: one thread
  // below 4 cores): what the pool gives on this machine.
  const runSluiceOne = () => sluice(pipelineFile('small-2', smallIn, freshDir('sluice-small-2'), 16, 2));
  const t = { cp: [], rclone: [], sluice: [], sluiceOne: [], rcloneRss: [], sluiceRss: [], sluiceOneRss: [] };
  runCp();
  runSluice();
  runSluiceOne();
  if (withRclone) runRclone();
  for (let r = 0; r < rounds; r++) {
    t.cp.push(runCp().wall_s);
    if (withRclone) {
      const m = runRclone();
      t.rclone.push(m.wall_s);
      t.rcloneRss.push(m.max_rss_kib);
    }
    const m = runSluice();
    t.sluice.push(m.wall_s);
    t.sluiceRss.push(m.max_rss_kib);
    const one = runSluiceOne();
    t.sluiceOne.push(one.wall_s);
    t.sluiceOneRss.push(one.max_rss_kib);
  }
  rmSync(join(data, 'out'), { recursive: true, force: true });
  return {
    cp: median(t.cp),
    rclone: withRclone ? median(t.rclone) : null,
    sluice: median(t.sluice),
    sluiceOne: median(t.sluiceOne),
    rcloneRssKib: withRclone ? median(t.rcloneRss) : null,
    sluiceRssKib: median(t.sluiceRss),
    sluiceOneRssKib: median(t.sluiceOneRss),
  };
}

async function main() {
  const quick = process.argv.includes('--quick');
  const ROUNDS = quick ? 1 : 3;
  const BIG = (quick ? 256 : 1024) * 2 ** 20;
  const HUGE = (quick ? 512 : 2048) * 2 ** 20;
  const SMALL_FILES = quick ? 5000 : 20000;
  mkdirSync(data, { recursive: true });
  const lines = [
    `## Core: local → local (issue 2)`,
    '',
    `Machine: ${machine()}. ${quick ? 'Quick mode (smaller inputs, 1 round).' : `Median of ${ROUNDS} alternated rounds after a warm-up.`} Whole-process wall time, measured by \`bench/lib/measure.py\`.`,
    '',
  ];

  // 1. one big file, in the same process as the issue asks
  const times = await bigFileInProcess({ bytes: BIG, rounds: ROUNDS });
  const mib = BIG / 2 ** 20;
  lines.push(
    `### One ${mib} MiB file, in one process`,
    '',
    '| what | time | MiB/s | ratio to raw |',
    '|---|---|---|---|',
  );
  lines.push(
    `| hand-written \`stream.pipeline\` copy (1 MiB buffers) | ${fmt(times.raw)} s | ${fmt(mib / times.raw, 0)} | 1.00 |`,
  );
  lines.push(
    `| Sluice local → local, \`verify: size\` (default) | ${fmt(times.size)} s | ${fmt(mib / times.size, 0)} | **${fmt(times.raw / times.size)}** (target ≥ 0.9) |`,
  );
  lines.push(
    `| Sluice, \`verify: sha256\` (hash while streaming + re-read) | ${fmt(times.sha256)} s | ${fmt(mib / times.sha256, 0)} | ${fmt(times.raw / times.sha256)} |`,
    '',
  );
  const cold = median([0, 1, 2].map(() => measure('node', [sluiceBin, '--version']).wall_s));
  const nodeCold = median([0, 1, 2].map(() => measure('node', ['-e', '0']).wall_s));
  lines.push(
    `Cold start: \`sluice --version\` ${fmt(cold * 1000, 0)} ms vs \`node -e 0\` ${fmt(nodeCold * 1000, 0)} ms (whole processes below include it).`,
    '',
  );

  // 2. many small files
  const small = smallFilesVsRclone({ count: SMALL_FILES, rounds: ROUNDS });
  const rate = (t) => SMALL_FILES / t;
  lines.push(
    `### ${SMALL_FILES.toLocaleString('en')} × 4 KiB files in 100 folders`,
    '',
    '| what | files/s | peak RSS | ratio to rclone |',
    '|---|---|---|---|',
  );
  lines.push(`| \`cp -r\` | ${fmt(rate(small.cp), 0)} | | |`);
  if (small.rclone)
    lines.push(
      `| \`rclone copy --transfers 16 --checkers 16\` | ${fmt(rate(small.rclone), 0)} | ${fmt(small.rcloneRssKib / 1024, 0)} MiB | 1.00 |`,
    );
  lines.push(
    `| Sluice, concurrency 16 (size verify, ledger) | ${fmt(rate(small.sluice), 0)} | ${fmt(small.sluiceRssKib / 1024, 0)} MiB | ${small.rclone ? `**${fmt(small.rclone / small.sluice)}** (target ≥ 1.0)` : 'rclone not installed'} |`,
    '',
  );

  // 3. peak RSS for a huge file
  const huge = join(data, 'huge.csv');
  makeBigFile(huge, HUGE);
  const hugeRun = sluice(pipelineFile('huge', inboxOf(huge, 'huge'), freshDir('sluice-huge'), 1));
  const big = join(data, BIG === 2 ** 30 ? 'big.csv' : `big-${mib}.csv`);
  const bigRss = sluice(pipelineFile('big', inboxOf(big, 'big'), freshDir('sluice-big'), 1)).max_rss_kib;
  lines.push(`### Memory`, '', '| input | Sluice peak RSS |', '|---|---|');
  lines.push(`| ${mib} MiB file | ${fmt(bigRss / 1024, 0)} MiB |`);
  lines.push(
    `| ${HUGE / 2 ** 20} MiB file | **${fmt(hugeRun.max_rss_kib / 1024, 0)} MiB** (target < 150 MiB) |`,
    '',
  );
  lines.push('Reproduce: `npm run bench` (or `node bench/core.mjs [--quick]` after `npm run build`).');

  rmSync(join(data, 'out'), { recursive: true, force: true });
  writeSection('core', lines.join('\n'));
  console.log(lines.join('\n'));
}

if (isMain(import.meta.url)) await main();
