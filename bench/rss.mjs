#!/usr/bin/env node
// Peak memory of one file sftp → s3 (issue 16.8), with a breakdown: what loading the CLI, the
// AWS SDK and ssh2 costs before any byte moves, and where the peak of a transfer is
// (process.memoryUsage() sampled by bench/lib/mem-sampler.mjs: heap, external, array buffers).
// Servers (sshd, s3rver) are started here as in bench/connectors.mjs; the file is sparse.
//
// Usage: npm run build && node bench/rss.mjs [--sizes 64K,64M,256M,1G] [--rounds 1]
//          [--node /path/to/node] [--flags "--max-semi-space-size=2"] [--s3 "part_size: 8MiB"]
//          [--no-baseline] [--app DIR[,DIR2]]
//   --sizes    comma-separated file sizes (K, M, G suffixes: KiB, MiB, GiB)
//   --rounds   runs per size (the median of wall and peak RSS is printed)
//   --flags    extra Node flags for the Sluice process (e.g. V8 heap flags)
//   --s3       extra lines for the s3 sink's config, `;`-separated (e.g. "queue_size: 2")
//   --app      folders holding bin/ and dist/ (default: this repository); with two, each round
//              runs both, alternated (e.g. a build of the commit before a change, side by side)
// Prints a table; writes nothing into RESULTS.md.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startConnectorBench } from './connectors.mjs';
import { benchDir, fmt, machine, measure, median, repoDir, sluiceBin } from './lib/common.mjs';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const UNITS = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };
const parseSize = (s) => Number(s.slice(0, -1)) * UNITS[s.at(-1).toUpperCase()];
const sizes = opt('sizes', '64K,64M,256M,1G').split(',').map(parseSize);
const rounds = Number(opt('rounds', '1'));
const node = opt('node', process.execPath);
const flags = (opt('flags', '') || '').split(' ').filter(Boolean);
const s3Extra = (opt('s3', '') || '')
  .split(';')
  .filter(Boolean)
  .map((l) => `    ${l.trim()}`);
const apps = (opt('app', '') || repoDir).split(',');
const sampler = join(benchDir, 'lib', 'mem-sampler.mjs');
const memOut = join(benchDir, 'data', 'rss-mem.jsonl');
mkdirSync(join(benchDir, 'data'), { recursive: true });
const MiB = 2 ** 20;
const mib = (bytes) => `${fmt(bytes / MiB, 0)} MiB`;
const label = (bytes) =>
  bytes >= 2 ** 30 ? `${bytes / 2 ** 30} GiB` : bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes / 1024} KiB`;

/** measure() of `node argv` with the sampler preloaded: the measure result plus the sampler's peaks. */
function sampled(argv, env = {}) {
  rmSync(memOut, { force: true });
  const m = measure(node, [...flags, '--import', sampler, ...argv], {
    env: { BENCH_MEM_OUT: memOut, ...(process.env.BENCH_MEM_GC ? { BENCH_MEM_GC: '1' } : {}), ...env },
  });
  const line = readFileSync(memOut, 'utf8').trim().split('\n').at(-1);
  return { ...m, mem: JSON.parse(line) };
}

const row = (what, m, extra = '') => {
  const p = m.mem.peak;
  const a = m.mem.atPeak;
  console.log(
    `| ${what} | ${mib(m.max_rss_kib * 1024)}${m.mem.livePeak ? ` (after GC: rss ${mib(m.mem.livePeak.rss)}, arrayBuffers ${mib(m.mem.livePeak.arrayBuffers)}, heapUsed ${mib(m.mem.livePeak.heapUsed)})` : ''} | ${mib(p.heapUsed)} | ${mib(p.heapTotal)} | ${mib(p.external)} | ${mib(p.arrayBuffers)} | ${mib(a.heapTotal ?? 0)} / ${mib(a.external ?? 0)} | ${fmt(m.wall_s, 2)} s | ${fmt(m.cpu_s, 2)} s | ${extra} |`,
  );
};

console.log(
  `${machine()}; Node ${measure(node, ['-e', '0']) && node}; flags: ${flags.join(' ') || 'none'}; s3: ${s3Extra.join(',') || 'defaults'}`,
);
console.log(
  '| what | peak RSS (getrusage) | peak heapUsed | peak heapTotal | peak external | peak arrayBuffers | at RSS peak: heapTotal / external | wall | CPU | throughput |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');

if (!args.includes('--no-baseline')) {
  // Fixed costs: bare Node, the CLI bundle with every built-in plugin's module, + the AWS SDK, + ssh2.
  const cli = `import(${JSON.stringify(join(repoDir, 'dist', 'cli', 'sluice.js'))})`;
  const req = (m) => `import(${JSON.stringify(m)})`;
  const steps = {
    'node -e 0': 'setTimeout(() => {}, 100)',
    'CLI bundle': `${cli}.then(() => setTimeout(() => {}, 100))`,
    '+ @aws-sdk/client-s3': `${cli}.then(() => Promise.all([${req('@aws-sdk/client-s3')}])).then(() => setTimeout(() => {}, 100))`,
    '+ ssh2': `${cli}.then(() => Promise.all([${req('@aws-sdk/client-s3')}, ${req('ssh2')}])).then(() => setTimeout(() => {}, 100))`,
  };
  for (const [what, code] of Object.entries(steps)) {
    const ms = Array.from({ length: 3 }, () => sampled(['--input-type=module', '-e', code]));
    ms.sort((x, y) => x.max_rss_kib - y.max_rss_kib);
    row(what, ms[1]);
  }
}

const ctx = await startConnectorBench();
try {
  for (const bytes of sizes) {
    const tag = `rss-${bytes}`;
    const dir = ctx.writeRemote(tag, 1, bytes, { name: () => `${tag}.bin`, sparse: true });
    const file = ctx.pipeline(tag, [
      'source:',
      ...ctx.sftpYaml(dir),
      'sink:',
      ...ctx.s3Yaml(`${tag}/`, s3Extra),
    ]);
    const runs = apps.map(() => []);
    for (let r = 0; r < rounds; r++) {
      apps.forEach((app, i) => {
        runs[i].push(
          sampled([
            app === repoDir ? sluiceBin : join(app, 'bin', 'sluice.js'),
            'run',
            file,
            '--force',
            '--quiet',
            '--no-progress',
            '--log-format',
            'json',
            '--state-dir',
            join(benchDir, 'data', 'connectors', 'state'),
          ]),
        );
      });
    }
    apps.forEach((app, i) => {
      const ms = runs[i].sort((x, y) => x.max_rss_kib - y.max_rss_kib);
      const mid = ms[Math.floor(ms.length / 2)];
      const wall = median(ms.map((m) => m.wall_s));
      const who = apps.length > 1 ? ` (${app})` : '';
      row(
        `1 × ${label(bytes)} sftp → s3${who}`,
        mid,
        `${fmt(bytes / 1e6 / wall, 1)} MB/s (walls ${ms.map((m) => fmt(m.wall_s, 1)).join(', ')})`,
      );
    });
    rmSync(dir, { recursive: true, force: true });
  }
} finally {
  await ctx.stop();
}
