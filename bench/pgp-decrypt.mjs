#!/usr/bin/env node
/**
 * PGP decrypt throughput of the `pgp_decrypt` plugin (compiled, from dist/) with each engine
 * against standalone `gpg --decrypt -o /dev/null`, on a generated CSV-like plaintext encrypted by
 * gpg twice: zlib-compressed (gpg's default) and uncompressed. Each run is a whole process;
 * runs alternate after a warm-up, and the median is reported with the peak RSS.
 *
 *   npm run build && node bench/pgp-decrypt.mjs [--size-mib 256] [--rounds 3]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const dist = process.env.SLUICE_DIST ?? join(here, '..', 'dist');
const cache = join(tmpdir(), 'sluice-bench-pgp');
const home = join(cache, 'gnupg');
const keyFile = join(cache, 'key.asc');

if (process.argv[2] === '--child') {
  await decryptThroughPlugin(process.argv[3], process.argv[4]);
  process.exit(0);
}

const { values } = parseArgs({
  options: { 'size-mib': { type: 'string', default: '256' }, rounds: { type: 'string', default: '3' } },
});
const sizeBytes = Number(values['size-mib']) * 1024 * 1024;
const rounds = Number(values.rounds);
if (!existsSync(join(dist, 'plugins', 'pgp', 'decrypt.js')))
  throw new Error(`${dist} lacks the plugin: run \`npm run build\``);

const messages = await prepare();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(
  `plaintext: ${(sizeBytes / 1e6).toFixed(0)} MB CSV-like, RSA-2048 (gpg ${gpgVersion()}), ${rounds} rounds\n`,
);
console.log('| message | engine | median time | throughput (plaintext) | peak RSS |');
console.log('|---|---|---|---|---|');
for (const [kind, file] of Object.entries(messages)) {
  const engines = {
    'gpg --decrypt -o /dev/null': [
      'gpg',
      ['--homedir', home, '--batch', '--quiet', '--decrypt', '-o', '/dev/null', file],
    ],
    'pgp_decrypt engine gpg': [process.execPath, [fileURLToPath(import.meta.url), '--child', 'gpg', file]],
    'pgp_decrypt engine openpgp': [
      process.execPath,
      [fileURLToPath(import.meta.url), '--child', 'openpgp', file],
    ],
  };
  for (const [, [command, args]] of Object.entries(engines)) run(command, args); // warm-up
  const samples = Object.fromEntries(Object.keys(engines).map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const [name, [command, args]] of Object.entries(engines)) samples[name].push(run(command, args));
  }
  for (const [name, runs] of Object.entries(samples)) {
    const seconds = median(runs.map((r) => r.seconds));
    const rss = Math.max(...runs.map((r) => r.maxRssKiB));
    console.log(
      `| ${kind} (${(statSync(file).size / 1e6).toFixed(0)} MB) | ${name} | ${seconds.toFixed(2)} s | ${(sizeBytes / 1e6 / seconds).toFixed(0)} MB/s | ${(rss / 1024).toFixed(0)} MiB |`,
    );
  }
}
execFileSync('gpgconf', ['--homedir', home, '--kill', 'all']);

function gpgVersion() {
  return execFileSync('gpg', ['--version']).toString().split('\n')[0].split(' ').at(-1);
}

function run(command, args) {
  const start = process.hrtime.bigint();
  const result = spawnSync('/usr/bin/time', ['-f', '%M', command, ...args], { encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}`);
  return { seconds, maxRssKiB: Number(result.stderr.trim().split('\n').at(-1)) };
}

/** Key, plaintext and the two messages, cached across runs in the temp folder. */
async function prepare() {
  const plain = join(cache, `plain-${values['size-mib']}MiB.csv`);
  const files = { 'zlib-compressed': `${plain}.zlib.gpg`, uncompressed: `${plain}.none.gpg` };
  if (existsSync(files.uncompressed) && existsSync(files['zlib-compressed'])) return files;
  rmSync(cache, { recursive: true, force: true });
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const gpg = (...args) => execFileSync('gpg', ['--homedir', home, '--batch', '--yes', ...args]);
  writeFileSync(
    join(cache, 'params'),
    '%no-protection\nKey-Type: RSA\nKey-Length: 2048\nSubkey-Type: RSA\nSubkey-Length: 2048\nName-Email: bench@example.com\nExpire-Date: 0\n%commit\n',
  );
  gpg('--gen-key', join(cache, 'params'));
  writeFileSync(keyFile, gpg('--armor', '--export-secret-keys', 'bench@example.com'));
  console.error(`generating ${plain} …`);
  const lines = [];
  for (let i = 0; i < 20000; i++) {
    lines.push(
      `${i},${((i * 2654435761) % 4294967296).toString(36)},customer-${(i * 7919) % 100003},${(((i * 31) % 1000003) / 100).toFixed(2)},2024-${String((i % 12) + 1).padStart(2, '0')},${['open', 'paid', 'late', 'void'][i % 4]}\n`,
    );
  }
  const block = Buffer.from(lines.join(''));
  const out = createWriteStream(plain);
  for (let written = 0, n = 0; written < sizeBytes; n++) {
    if (out.writableNeedDrain) await once(out, 'drain');
    // Vary each block a little so it is not a pure repetition for zlib.
    const piece = Buffer.from(block.subarray(0, Math.min(block.length, sizeBytes - written)));
    piece.write(String(n).padStart(8, '0'), 0);
    out.write(piece);
    written += piece.length;
  }
  out.end();
  await finished(out);
  gpg('--trust-model', 'always', '-r', 'bench@example.com', '-o', files['zlib-compressed'], '-e', plain);
  gpg(
    '--trust-model',
    'always',
    '-r',
    'bench@example.com',
    '--compress-algo',
    'none',
    '-o',
    files.uncompressed,
    '-e',
    plain,
  );
  return files;
}

async function decryptThroughPlugin(engine, file) {
  const { pgpDecryptPlugin } = await import(pathToFileURL(join(dist, 'plugins', 'pgp', 'decrypt.js')).href);
  const { createItem } = await import(pathToFileURL(join(dist, 'core', 'item.js')).href);
  const silent = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
  const base = mkdtempSync(join(tmpdir(), 'sluice-bench-ctx-'));
  const ctx = {
    pipeline: 'bench',
    stepId: 'steps[0].pgp_decrypt',
    log: silent,
    tempDir: join(base, 'tmp'),
    stateDir: join(base, 'state'),
    baseDir: base,
    signal: new AbortController().signal,
  };
  const step = await pgpDecryptPlugin.create({ engine, private_key_file: keyFile }, ctx);
  const item = createItem({
    source: 'bench',
    path: 'plain.csv.gpg',
    open: async () => createReadStream(file, { highWaterMark: 1024 * 1024 }),
  });
  const out = await step.process(item, { ...ctx, openSibling: async () => null, report() {} });
  const discard = new Writable({ highWaterMark: 1024 * 1024, write: (_chunk, _enc, cb) => cb() });
  await pipeline(await out.open(), discard);
  await step.close();
  rmSync(base, { recursive: true, force: true });
}
