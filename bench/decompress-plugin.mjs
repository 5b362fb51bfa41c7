#!/usr/bin/env node
/**
 * Gunzip throughput of the `decompress` plugin (compiled, from dist/) against `gzip -dc` and
 * `pigz -dc`, on a generated ~1 GiB CSV-like file compressed with gzip -6. Each run is a whole
 * process writing nowhere; runs alternate after a warm-up, and the median is reported.
 *
 *   npm run build && node bench/decompress-plugin.mjs [--size-mib 1024] [--rounds 3]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'dist', 'plugins', 'archive', 'decompress.js');

if (process.argv[2] === '--child') {
  await gunzipThroughPlugin(process.argv[3]);
  process.exit(0);
}

const { values } = parseArgs({
  options: { 'size-mib': { type: 'string', default: '1024' }, rounds: { type: 'string', default: '3' } },
});
const sizeBytes = Number(values['size-mib']) * 1024 * 1024;
const rounds = Number(values.rounds);
if (!existsSync(dist)) throw new Error(`${dist} is missing: run \`npm run build\` first`);

const cache = join(tmpdir(), 'sluice-bench');
mkdirSync(cache, { recursive: true });
const gz = join(cache, `table-${values['size-mib']}MiB.csv.gz`);
if (!existsSync(gz)) makeInput(gz, sizeBytes);

const engines = {
  'gzip -dc': ['sh', ['-c', `gzip -dc '${gz}' > /dev/null`]],
  'pigz -dc': ['sh', ['-c', `pigz -dc '${gz}' > /dev/null`]],
  'decompress plugin (Node)': [process.execPath, [fileURLToPath(import.meta.url), '--child', gz]],
};

for (const [, [command, args]] of Object.entries(engines)) run(command, args); // warm-up: page cache, JIT
const samples = Object.fromEntries(Object.keys(engines).map((name) => [name, []]));
for (let round = 0; round < rounds; round++) {
  for (const [name, [command, args]] of Object.entries(engines)) samples[name].push(run(command, args));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(
  `input: ${(statSync(gz).size / 1e6).toFixed(0)} MB gzip -6 of ${(sizeBytes / 1e6).toFixed(0)} MB, ${rounds} rounds\n`,
);
console.log('| engine | median time | throughput (out) | peak RSS |');
console.log('|---|---|---|---|');
for (const [name, runs] of Object.entries(samples)) {
  const seconds = median(runs.map((r) => r.seconds));
  const rss = Math.max(...runs.map((r) => r.maxRssKiB));
  console.log(
    `| ${name} | ${seconds.toFixed(2)} s | ${(sizeBytes / 1e6 / seconds).toFixed(0)} MB/s | ${(rss / 1024).toFixed(0)} MiB |`,
  );
}

function run(command, args) {
  const start = process.hrtime.bigint();
  const result = spawnSync('/usr/bin/time', ['-f', '%M', command, ...args], { encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}`);
  return { seconds, maxRssKiB: Number(result.stderr.trim().split('\n').at(-1)) };
}

/** CSV-like rows with varying numbers, ids and dates (gzip -6 ≈ 2.5-3×, like real exports). */
function makeInput(path, bytes) {
  console.error(`generating ${path} …`);
  const script = `
    let written = 0; let i = 0;
    const target = ${bytes};
    function more() {
      while (written < target) {
        let chunk = '';
        for (let k = 0; k < 20000; k++, i++) {
          chunk += i + ',' + (i * 2654435761 % 4294967296).toString(36) + ',customer-' + (i * 7919 % 100003) + ',' +
            ((i * 31) % 1000003 / 100).toFixed(2) + ',2024-' + String(i % 12 + 1).padStart(2, '0') + '-' +
            String(i % 28 + 1).padStart(2, '0') + ',' + ['open', 'paid', 'late', 'void'][i % 4] + '\\n';
        }
        const buf = Buffer.from(chunk).subarray(0, target - written);
        written += buf.length;
        if (!process.stdout.write(buf)) return process.stdout.once('drain', more);
      }
    }
    more();`;
  execFileSync(
    'sh',
    ['-c', `"${process.execPath}" -e "$SCRIPT" | pigz -6 > '${path}.part' && mv '${path}.part' '${path}'`],
    {
      env: { ...process.env, SCRIPT: script },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
}

async function gunzipThroughPlugin(file) {
  const { decompressPlugin } = await import(pathToFileURL(dist).href);
  const { createItem } = await import(pathToFileURL(join(here, '..', 'dist', 'core', 'item.js')).href);
  const { createReadStream } = await import('node:fs');
  const { Writable } = await import('node:stream');
  const { pipeline } = await import('node:stream/promises');
  const silent = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
  const base = mkdtempSync(join(tmpdir(), 'sluice-bench-ctx-'));
  const ctx = {
    pipeline: 'bench',
    stepId: 'steps[0].decompress',
    log: silent,
    tempDir: join(base, 'tmp'),
    stateDir: join(base, 'state'),
    baseDir: base,
    signal: new AbortController().signal,
  };
  const step = await decompressPlugin.create({}, ctx);
  const item = createItem({
    source: 'bench',
    path: 'table.csv.gz',
    open: async () => createReadStream(file, { highWaterMark: 1024 * 1024 }),
  });
  const out = await step.process(item, { ...ctx, openSibling: async () => null, report() {} });
  const discard = new Writable({ highWaterMark: 1024 * 1024, write: (_chunk, _enc, cb) => cb() });
  await pipeline(await out.open(), discard);
  rmSync(base, { recursive: true, force: true });
}
