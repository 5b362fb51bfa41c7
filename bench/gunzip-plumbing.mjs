#!/usr/bin/env node
/**
 * gunzip settings in one Node process, alternated: zlib chunkSize, the Gunzip stream's
 * highWaterMark (how far inflate may run ahead of the writer) and the read stream's, against
 * `pigz -dc > FILE`. Extra pass-through stages stand in for the runtime's and the plugin's
 * counters (HashTap, ByteCounter, EntryGuard).
 *
 *   node bench/gunzip-plumbing.mjs [--size-mib 256] [--rounds 5] [--all]
 *
 * Each round runs the variants in a new random order: a case that runs right after another
 * one wrote hundreds of MiB was measured up to 4× slower (page-cache write-back), whatever it
 * was. `--all` adds 4 MiB chunks (consistently 2–4× slower than 1 MiB here).
 *
 * Uses the input of bench/transforms.mjs (bench/data/transforms/data-SIZE.csv.gz).
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createGunzip } from 'node:zlib';
import { benchDir } from './lib/common.mjs';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '256' },
    rounds: { type: 'string', default: '5' },
    all: { type: 'boolean' },
  },
});
const data = join(benchDir, 'data', 'transforms');
const gz = join(data, `data-${values['size-mib']}.csv.gz`);
const out = join(data, 'gunzip-plumbing-out.csv');
const KiB = 1024;
const MiB = 1024 * KiB;

class Count extends Transform {
  constructor() {
    super({ highWaterMark: MiB });
    this.bytes = 0;
  }
  _transform(chunk, _e, cb) {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

function node({ read = MiB, chunk = MiB, hwm, stages = 3 }) {
  return () =>
    pipeline(
      createReadStream(gz, { highWaterMark: read }),
      ...(stages ? [new Count(), new Count()] : []),
      createGunzip({ chunkSize: chunk, ...(hwm ? { highWaterMark: hwm } : {}) }),
      ...(stages ? [new Count(), new Count()] : []),
      createWriteStream(out, { highWaterMark: MiB }),
    );
}

const variants = {
  'pigz -dc': () =>
    new Promise((resolve) =>
      spawn('sh', ['-c', `pigz -dc ${gz} > ${out}`], { stdio: 'ignore' }).on('close', resolve),
    ),
  'Sluice today (read 1 MiB, chunkSize 1 MiB, zlib hwm default)': node({}),
  'no counters': node({ stages: 0 }),
  'zlib hwm 4 MiB': node({ hwm: 4 * MiB }),
  'chunkSize 256 KiB': node({ chunk: 256 * KiB }),
  ...(process.argv.includes('--all')
    ? { 'chunkSize 4 MiB, read 4 MiB': node({ chunk: 4 * MiB, read: 4 * MiB }) }
    : {}),
  'read 256 KiB': node({ read: 256 * KiB }),
  'read 256 KiB, chunkSize 256 KiB': node({ read: 256 * KiB, chunk: 256 * KiB }),
  'read 64 KiB': node({ read: 64 * KiB }),
};

function childCpu() {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(f[13]) + Number(f[14])) / 100;
}
const rounds = Number(values.rounds);
const s = Object.fromEntries(Object.keys(variants).map((k) => [k, { wall: [], cpu: [] }]));
/** Each round in a new random order: whatever runs right after a big write pays for it. */
const shuffled = () => {
  const e = Object.entries(variants);
  for (let i = e.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [e[i], e[j]] = [e[j], e[i]];
  }
  return e;
};
for (let r = -1; r < rounds; r++) {
  for (const [k, fn] of shuffled()) {
    rmSync(out, { force: true });
    const c0 = process.cpuUsage();
    const k0 = childCpu();
    const t0 = performance.now();
    await fn();
    const wall = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    if (r < 0) continue;
    s[k].wall.push(wall);
    s[k].cpu.push((c.user + c.system) / 1e6 + childCpu() - k0);
  }
}
rmSync(out, { force: true });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(s['pigz -dc'].wall);
const order = Object.keys(variants);
console.log(`gunzip ${values['size-mib']} MiB, ${rounds} rounds, medians (CPU: this process + children)`);
console.log('| variant | wall | ratio vs pigz | CPU |');
console.log('|---|---:|---:|---:|');
for (const [k, v] of order.map((k) => [k, s[k]]))
  console.log(
    `| ${k} | ${median(v.wall).toFixed(2)} s | ${(base / median(v.wall)).toFixed(2)} | ${median(v.cpu).toFixed(2)} s |`,
  );
