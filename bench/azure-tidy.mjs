#!/usr/bin/env node
/**
 * azure_blob after_success tidy-up, whole `sluice run` processes side by side: N small blobs
 * delivered to a local folder and then deleted (or moved to done/), against Azurite behind a
 * counting HTTP proxy (requests by kind). Compares builds: each `--bin name=path/to/bin/sluice.js`
 * is timed on its own fresh container, alternating, `--rounds` times.
 *
 *   node bench/azure-tidy.mjs --blobs 2000 --rounds 1 --batch-bins batched \
 *     --bin single=bin/sluice.js --bin batched=bin/sluice.js
 *
 * `--concurrency N` sets the pipeline's policy.concurrency; `--prof-dir D` writes a CPU profile
 * of each run there.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BlobServiceClient } from '@azure/storage-blob';

const { values } = parseArgs({
  options: {
    blobs: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '2' },
    bin: { type: 'string', multiple: true, default: [`after=${resolve('bin/sluice.js')}`] },
    modes: { type: 'string', default: 'delete,move' },
    concurrency: { type: 'string' },
    'prof-dir': { type: 'string' },
    /** Builds (by name) whose runs set `batch_deletes: true` (a build without the option rejects it). */
    'batch-bins': { type: 'string', default: '' },
  },
});
const BLOBS = Number(values.blobs);
const ROUNDS = Number(values.rounds);
const BINS = values.bin.map((b) => {
  const [name, path] = b.split('=');
  return { name, path: resolve(path) };
});
const MODES = values.modes.split(',');
const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const freePort = () =>
  new Promise((res) => {
    const s = netServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

async function waitFor(url) {
  for (let i = 0; i < 300; i++) {
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} did not answer`);
}

const port = await freePort();
const azurite = spawn(
  process.execPath,
  [
    realpathSync('node_modules/.bin/azurite-blob'),
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(port),
    '--inMemoryPersistence',
    '--skipApiVersionCheck',
    '--disableTelemetry',
    '--silent',
  ],
  { stdio: 'ignore' },
);
process.on('exit', () => azurite.kill('SIGKILL'));
await waitFor(`http://127.0.0.1:${port}/`);

// The counting proxy: requests by kind since the last reset.
let counts = {};
const kind = (method, url) => {
  if (method === 'POST' && /[?&]comp=batch/.test(url)) return 'batch';
  if (method === 'DELETE') return 'delete';
  if (method === 'PUT') return 'put/copy';
  if (method === 'GET' && /[?&]comp=list/.test(url)) return 'list';
  return method.toLowerCase();
};
const proxy = createServer((req, res) => {
  const k = kind(req.method, req.url);
  counts[k] = (counts[k] ?? 0) + 1;
  const up = request(
    { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers },
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    },
  );
  up.on('error', () => res.destroy());
  req.pipe(up);
});
await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
const proxyPort = proxy.address().port;
const direct = `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};BlobEndpoint=http://127.0.0.1:${port}/${ACCOUNT};`;
const viaProxy = direct.replace(`:${port}/`, `:${proxyPort}/`);
const service = BlobServiceClient.fromConnectionString(direct);

async function fill(container) {
  const c = service.getContainerClient(container);
  await c.create();
  const body = Buffer.alloc(1024, 'x');
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < BLOBS) {
        const i = next++;
        await c.getBlockBlobClient(`in/f-${String(i).padStart(5, '0')}.dat`).upload(body, body.length);
      }
    }),
  );
}

async function count(container, prefix) {
  let n = 0;
  for await (const _ of service.getContainerClient(container).listBlobsFlat({ prefix })) n++;
  return n;
}

function run(bin, file, cwd) {
  return new Promise((res, rej) => {
    const started = process.hrtime.bigint();
    // /usr/bin/time: the process's CPU (user + system) besides its wall time.
    const prof = values['prof-dir'] ? ['--cpu-prof', `--cpu-prof-dir=${resolve(values['prof-dir'])}`] : [];
    const child = spawn('/usr/bin/time', ['-f', 'cpu %U %S', process.execPath, ...prof, bin, 'run', file], {
      cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
      },
    });
    let err = '';
    child.stderr.on('data', (c) => {
      err += c;
    });
    child.on('exit', (code) => {
      const s = Number(process.hrtime.bigint() - started) / 1e9;
      const cpu = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(err);
      if (code !== 0) rej(new Error(`exit ${code}: ${err.slice(-2000)}`));
      else res({ seconds: s, cpu: cpu ? (Number(cpu[1]) + Number(cpu[2])).toFixed(2) : '?' });
    });
  });
}

const rows = [];
let serial = 0;
for (let round = 1; round <= ROUNDS; round++) {
  for (const mode of MODES) {
    for (const { name, path } of round % 2 ? BINS : [...BINS].reverse()) {
      const container = `tidy${++serial}${mode}`;
      await fill(container);
      const ws = mkdtempSync(join(tmpdir(), 'sluice-azure-tidy-'));
      const tidy = [
        mode === 'delete' ? 'after_success: delete' : 'after_success: { move_to: done/ }',
        ...(values['batch-bins'].split(',').includes(name) ? ['batch_deletes: true'] : []),
      ].join('\n    ');
      writeFileSync(
        join(ws, 'p.yaml'),
        `name: tidy\nsource:\n  azure_blob:\n    connection_string: "${viaProxy}"\n    container: ${container}\n    prefix: in/\n    ${tidy}\nsink:\n  local: { path: ./out }\n${values.concurrency ? `policy:\n  concurrency: ${values.concurrency}\n` : ''}`,
      );
      counts = {};
      const { seconds, cpu } = await run(path, 'p.yaml', ws);
      const seen = { ...counts };
      const left = await count(container, 'in/');
      const delivered = readdirSync(join(ws, 'out')).length;
      const moved = mode === 'move' ? await count(container, 'done/') : undefined;
      rmSync(ws, { recursive: true, force: true });
      await service.getContainerClient(container).delete();
      if (left !== 0 || delivered !== BLOBS || (moved !== undefined && moved !== BLOBS)) {
        throw new Error(`${name} ${mode}: left ${left}, delivered ${delivered}, moved ${moved}`);
      }
      rows.push({ round, mode, build: name, seconds: seconds.toFixed(2), cpu, ...seen });
      console.log(JSON.stringify(rows.at(-1)));
    }
  }
}
console.table(rows);
proxy.close();
azurite.kill('SIGTERM');
process.exit(0);
