#!/usr/bin/env node
// Transform benchmarks (issue 3), whole pipelines through the `sluice` binary against the
// standard tools, all whole processes writing their output to disk, alternated in one run:
//  - gunzip: Sluice (local → decompress → local) vs `pigz -dc`, `gzip -dc`, a raw Node zlib pipeline
//  - gzip -6: Sluice compress vs `gzip -6`, `pigz -6`; zstd: Sluice vs `zstd -3`
//  - pgp_decrypt, compressed and uncompressed messages: gpg and openpgp engines vs `gpg --decrypt`
//  - peak RSS of decrypt + gunzip for a small and a large input (must stay flat)
// Usage: node bench/transforms.mjs [--quick]   (after `npm run build`)
// bench/peers.mjs imports gunzipCases, gzipCases, pgpCases and compare.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
  writeSection,
} from './lib/common.mjs';

const data = join(benchDir, 'data', 'transforms');
const out = join(data, 'out');

const sh = (cmd) => measure('sh', ['-c', cmd]);
const freshOut = () => {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
};
/** Removes the outputs the cases left behind. */
export const cleanOutputs = () => rmSync(out, { recursive: true, force: true });
const MiB = (b) => b / 2 ** 20;

/** A folder holding just `file` (hard link), as a source for a pipeline. */
function inbox(name, file) {
  const dir = join(data, `in-${name}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('ln', [file, join(dir, file.split('/').pop())]);
  return dir;
}

function pipeline(name, dir, steps) {
  const file = join(data, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}\nsource:\n  local: { path: ${dir} }\nsteps:\n${steps}\nsink:\n  local: { path: ${out} }\n`,
  );
  return file;
}

const sluice = (file) => runSluice(file, join(data, 'state'));

/**
 * Runs each case once as a warm-up, then `rounds` alternated rounds; medians of wall time and
 * RSS (MiB). Each round starts one case further on: the case that runs right after another one
 * wrote hundreds of MiB was measured up to 4× slower (bench/gunzip-plumbing.mjs), so no case
 * should always follow the same one.
 */
export function compare(cases, rounds) {
  const results = Object.fromEntries(Object.keys(cases).map((k) => [k, { wall: [], rss: [] }]));
  const entries = Object.entries(cases);
  for (let r = -1; r < rounds; r++) {
    const start = Math.max(r, 0) % entries.length;
    for (const [k, run] of [...entries.slice(start), ...entries.slice(0, start)]) {
      freshOut();
      const m = run();
      if (r >= 0) {
        results[k].wall.push(m.wall_s);
        results[k].rss.push(m.max_rss_kib);
      }
    }
  }
  return Object.fromEntries(
    Object.entries(results).map(([k, v]) => [k, { wall: median(v.wall), rss: median(v.rss) / 1024 }]),
  );
}

function table(title, bytes, results, base, target) {
  const rows = [
    `### ${title}`,
    '',
    '| what | time | MB/s (output) | peak RSS | ratio |',
    '|---|---|---|---|---|',
  ];
  for (const [k, v] of Object.entries(results)) {
    const ratio = results[base].wall / v.wall;
    const mark = k.startsWith('Sluice') && target ? ` (target ≥ ${target} vs ${base})` : '';
    rows.push(
      `| ${k} | ${fmt(v.wall)} s | ${fmt(bytes / 1e6 / v.wall, 0)} | ${fmt(v.rss, 0)} MiB | ${k.startsWith('Sluice') ? `**${fmt(ratio)}**` : fmt(ratio)}${mark} |`,
    );
  }
  return [...rows, ''];
}

/** The inputs of the compression cases, made once per size and kept in bench/data. */
function csvOf(bytes) {
  mkdirSync(data, { recursive: true });
  const csv = join(data, `data-${MiB(bytes)}.csv`);
  makeBigFile(csv, bytes);
  const gz = `${csv}.gz`;
  if (!existsSync(gz)) execFileSync('sh', ['-c', `pigz -6 -c ${csv} > ${gz}.part && mv ${gz}.part ${gz}`]);
  return { csv, gz };
}

/** Cases for gunzip of a `bytes`-sized CSV: pigz, gzip, raw Node zlib, Sluice decompress. */
export function gunzipCases(bytes) {
  const { gz } = csvOf(bytes);
  const gunzipPipeline = pipeline('gunzip', inbox('gunzip', gz), '  - decompress: {}');
  return {
    compressedBytes: statSync(gz).size,
    cases: {
      'pigz -dc': () => sh(`pigz -dc ${gz} > ${out}/data.csv`),
      'gzip -dc': () => sh(`gzip -dc ${gz} > ${out}/data.csv`),
      'Node zlib pipeline (chunkSize 1 MiB)': () =>
        measure('node', [join(benchDir, 'baselines', 'gunzip.mjs'), gz, join(out, 'data.csv')]),
      'Sluice decompress': () => sluice(gunzipPipeline),
    },
  };
}

/** Cases for compressing a `bytes`-sized CSV (gzip -6, pigz -6, Sluice) and, with zstd, zstd -3. */
export function gzipCases(bytes) {
  const { csv } = csvOf(bytes);
  const csvIn = inbox('compress', csv);
  const gzipPipeline = pipeline('gzip6', csvIn, '  - compress: { format: gzip, level: 6 }');
  const zstdPipeline = pipeline('zstd3', csvIn, '  - compress: { format: zstd, level: 3 }');
  return {
    gzip: {
      'gzip -6': () => sh(`gzip -6 -c ${csv} > ${out}/data.csv.gz`),
      'pigz -6': () => sh(`pigz -6 -c ${csv} > ${out}/data.csv.gz`),
      'Sluice compress gzip 6': () => sluice(gzipPipeline),
    },
    zstd: has('zstd')
      ? {
          'zstd -3': () => sh(`zstd -q -3 -c ${csv} > ${out}/data.csv.zst`),
          'Sluice compress zstd 3': () => sluice(zstdPipeline),
        }
      : null,
  };
}

const home = join(data, 'gnupg');
const keyFile = join(data, 'secret.asc');

/** An RSA-3072 key pair in bench/data (made once), as gpg 2.2 users have them. */
function ensureKey() {
  if (existsSync(keyFile)) return;
  rmSync(home, { recursive: true, force: true });
  mkdirSync(home, { recursive: true, mode: 0o700 });
  writeFileSync(
    join(data, 'key.params'),
    'Key-Type: RSA\nKey-Length: 3072\nSubkey-Type: RSA\nSubkey-Length: 3072\nName-Real: Bench\nName-Email: bench@example.com\nExpire-Date: 0\n%no-protection\n%commit\n',
  );
  execFileSync('gpg', ['--homedir', home, '--batch', '--gen-key', join(data, 'key.params')], {
    stdio: 'ignore',
  });
  execFileSync('sh', [
    '-c',
    `gpg --homedir ${home} --batch --armor --export-secret-keys bench@example.com > ${keyFile}`,
  ]);
}

/** Encrypts `plain` to `recipient` (a key in the bench home) into `out`, gpg's zlib unless `algo`. */
function encryptTo(recipient, plain, out, algo = 'zlib') {
  const args = ['--batch', '--yes', '--trust-model', 'always', '--compress-algo', algo, '-r', recipient];
  execFileSync('gpg', ['--homedir', home, ...args, '-o', out, '--encrypt', plain], { stdio: 'ignore' });
}

/**
 * Cases for pgp_decrypt of a `bytes`-sized plaintext, `kind` 'compressed' (gpg's default zlib)
 * or 'uncompressed': `gpg --decrypt` and Sluice with each engine in `engines`.
 */
export function pgpCases(bytes, kind, engines = ['gpg', 'openpgp']) {
  mkdirSync(data, { recursive: true });
  ensureKey();
  const msg = join(data, `pgp-${MiB(bytes)}-${kind}.csv.gpg`);
  if (!existsSync(msg)) {
    const plain = join(data, `pgp-${MiB(bytes)}.csv`);
    makeBigFile(plain, bytes);
    const algo = kind === 'compressed' ? 'zlib' : 'none';
    encryptTo('bench@example.com', plain, `${msg}.part`, algo);
    execFileSync('mv', [`${msg}.part`, msg]);
  }
  const dir = inbox(`pgp-${kind}`, msg);
  const cases = {
    'gpg --decrypt': () =>
      measure('gpg', [
        '--homedir',
        home,
        '--batch',
        '--quiet',
        '--yes',
        '-o',
        join(out, 'pgp.csv'),
        '--decrypt',
        msg,
      ]),
  };
  for (const engine of engines) {
    const file = pipeline(
      `pgp-${engine}-${kind}`,
      dir,
      `  - pgp_decrypt: { private_key_file: ${keyFile}, engine: ${engine} }`,
    );
    cases[`Sluice pgp_decrypt, ${engine} engine`] = () => sluice(file);
  }
  return cases;
}

const passKeyFile = join(data, 'secret-pass.asc');
const PASSPHRASE = 'bench-passphrase';

/** A passphrase-protected RSA-3072 key in the same home (made once): how partners' keys come. */
function ensurePassKey() {
  ensureKey();
  if (existsSync(passKeyFile)) return;
  writeFileSync(
    join(data, 'pass-key.params'),
    `Key-Type: RSA\nKey-Length: 3072\nSubkey-Type: RSA\nSubkey-Length: 3072\nName-Real: Bench Pass\nName-Email: bench-pass@example.com\nExpire-Date: 0\nPassphrase: ${PASSPHRASE}\n%commit\n`,
  );
  const loopback = ['--homedir', home, '--batch', '--pinentry-mode', 'loopback'];
  execFileSync('gpg', [...loopback, '--gen-key', join(data, 'pass-key.params')], { stdio: 'ignore' });
  const key = execFileSync('gpg', [
    ...loopback,
    '--passphrase',
    PASSPHRASE,
    '--armor',
    '--export-secret-keys',
    'bench-pass@example.com',
  ]);
  writeFileSync(`${passKeyFile}.part`, key);
  execFileSync('mv', [`${passKeyFile}.part`, passKeyFile]);
}

/**
 * Cases for `count` small (4 KiB) PGP messages in one folder through pgp_decrypt with a
 * passphrase-protected RSA-3072 key, one Sluice run per engine in `engines`: what per-file
 * costs weigh (a gpg process and a key unlock per file; an RSA decryption in JS).
 */
export function pgpSmallCases(count, engines = ['gpg', 'openpgp']) {
  mkdirSync(data, { recursive: true });
  ensurePassKey();
  const dir = join(data, `pgp-small-${count}`);
  const made = `${dir}.made`; // beside the folder: everything inside it is an item
  if (!existsSync(made)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const plain = join(data, 'pgp-small.csv');
    makeBigFile(plain, 4096);
    const one = join(data, 'pgp-small.csv.gpg');
    encryptTo('bench-pass@example.com', plain, one);
    // One message under many names: encryption is not what is measured, each file is decrypted on its own.
    for (let i = 0; i < count; i++)
      execFileSync('ln', [one, join(dir, `f${String(i).padStart(5, '0')}.csv.gpg`)]);
    writeFileSync(made, '');
  }
  const cases = {};
  for (const engine of engines) {
    const file = pipeline(
      `pgp-small-${engine}`,
      dir,
      `  - pgp_decrypt: { private_key_file: ${passKeyFile}, passphrase: ${PASSPHRASE}, engine: ${engine} }`,
    );
    cases[`Sluice pgp_decrypt, ${engine} engine`] = () => sluice(file);
  }
  return cases;
}

function main() {
  const quick = process.argv.includes('--quick');
  const ROUNDS = quick ? 1 : 3;
  const SIZE = (quick ? 256 : 1024) * 2 ** 20;
  const PGP_SIZE = (quick ? 128 : 512) * 2 ** 20;
  const RSS_SIZES = quick ? [64 * 2 ** 20, 512 * 2 ** 20] : [256 * 2 ** 20, 2048 * 2 ** 20];
  mkdirSync(data, { recursive: true });
  const lines = [
    '## Transforms through the runtime (issue 3)',
    '',
    `Machine: ${machine()}. ${quick ? 'Quick mode (smaller inputs, 1 round).' : `Median of ${ROUNDS} alternated rounds after a warm-up.`} Whole processes (Sluice includes its ~0.3–0.5 s start-up), every output written to disk. Ratios are throughput relative to the named base.`,
    '',
  ];

  const gunzip = gunzipCases(SIZE);
  lines.push(
    ...table(
      `gunzip ${fmt(MiB(SIZE), 0)} MiB (${fmt(MiB(gunzip.compressedBytes), 0)} MiB compressed)`,
      SIZE,
      compare(gunzip.cases, ROUNDS),
      'pigz -dc',
      '1.0',
    ),
  );
  const compress = gzipCases(SIZE);
  lines.push(
    ...table(`gzip -6 of ${fmt(MiB(SIZE), 0)} MiB`, SIZE, compare(compress.gzip, ROUNDS), 'gzip -6', '1.4'),
  );
  if (compress.zstd)
    lines.push(
      ...table(`zstd -3 of ${fmt(MiB(SIZE), 0)} MiB`, SIZE, compare(compress.zstd, ROUNDS), 'zstd -3'),
    );
  for (const kind of ['compressed', 'uncompressed']) {
    const results = compare(pgpCases(PGP_SIZE, kind), ROUNDS);
    lines.push(
      ...table(
        `pgp_decrypt of ${fmt(MiB(PGP_SIZE), 0)} MiB, ${kind} message`,
        PGP_SIZE,
        results,
        'gpg --decrypt',
        kind === 'compressed' ? '0.8' : '0.5',
      ),
    );
  }

  // --- flat memory: decrypt + gunzip
  lines.push(
    '### Peak RSS of pgp_decrypt (gpg engine) + decompress',
    '',
    '| input (plaintext) | peak RSS |',
    '|---|---|',
  );
  const rss = [];
  for (const size of RSS_SIZES) {
    const file = join(data, `rss-${MiB(size)}.csv`);
    const msg = `${file}.gz.gpg`;
    if (!existsSync(msg)) {
      makeBigFile(file, size);
      execFileSync('sh', [
        '-c',
        `pigz -6 -c ${file} | gpg --homedir ${home} --batch --yes --trust-model always --compress-algo none -r bench@example.com -o ${msg} --encrypt`,
      ]);
      rmSync(file);
    }
    const dir = inbox(`rss-${MiB(size)}`, msg);
    freshOut();
    const m = sluice(
      pipeline(
        `rss-${MiB(size)}`,
        dir,
        `  - pgp_decrypt: { private_key_file: ${keyFile}, engine: gpg }\n  - decompress: {}`,
      ),
    );
    rss.push(m.max_rss_kib / 1024);
    lines.push(`| ${fmt(MiB(size), 0)} MiB | ${fmt(m.max_rss_kib / 1024, 0)} MiB |`);
  }
  lines.push(
    '',
    `Difference: ${fmt((Math.abs(rss[1] - rss[0]) / rss[0]) * 100, 1)}% (target < 20%, both < 150 MiB).`,
    '',
  );
  lines.push('Reproduce: `npm run build && node bench/transforms.mjs [--quick]`.');

  cleanOutputs();
  writeSection('transforms', lines.join('\n'));
  console.log(lines.join('\n'));
}

if (isMain(import.meta.url)) main();
