#!/usr/bin/env node
/**
 * Where pgp_decrypt's (gpg engine) time goes once Sluice has started: the same message
 * decrypted in one Node process through several ways of wiring the `gpg` child, alternated,
 * against `gpg --decrypt -o FILE` (the peer of bench:peers). Each variant writes the plaintext
 * to a file, as the local sink does. Wall time, this process's CPU, and how many chunks (and of
 * what size) the main thread handled.
 *
 *   node bench/pgp-plumbing.mjs [--size-mib 128] [--rounds 5] [--kind uncompressed|compressed]
 *
 * Uses the key and messages of bench/transforms.mjs (bench/data/transforms; run
 * `node bench/peers.mjs --quick --only pgp` once to make them).
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  existsSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { pipeline, Transform, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { benchDir } from './lib/common.mjs';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '128' },
    rounds: { type: 'string', default: '5' },
    kind: { type: 'string', default: 'uncompressed' },
    only: { type: 'string' },
  },
});
const data = join(benchDir, 'data', 'transforms');
const home = join(data, 'gnupg');
const msg = join(data, `pgp-${values['size-mib']}-${values.kind}.csv.gpg`);
if (!existsSync(msg)) throw new Error(`${msg} missing: run bench/peers.mjs --quick --only pgp first`);
const out = join(data, 'plumbing-out.csv');
const MiB = 1024 * 1024;

const gpgArgs = ['--homedir', home, '--batch', '--yes', '--no-tty', '--status-fd', '2', '--skip-verify'];

/** Counts bytes (and optionally chunks) like the runtime's HashTap(null). */
class Tap extends Transform {
  constructor(stats, hash) {
    super({ highWaterMark: MiB });
    this.stats = stats;
    this.bytes = 0;
    this.hash = hash ? createHash(hash) : null;
  }
  _transform(chunk, _e, cb) {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
    if (this.stats) {
      this.stats.chunks++;
      this.stats.bytes += chunk.length;
    }
    cb(null, chunk);
  }
}

function spawnGpg(args, stdin) {
  const child = spawn('gpg', [...gpgArgs, ...args], { stdio: [stdin, 'pipe', 'pipe', 'pipe'] });
  child.stdio[3].end();
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (t) => {
    stderr += t;
  });
  const done = new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr })));
  return { child, done };
}

/** Joins small chunks into pieces of at least `size` bytes. */
class Coalesce extends Transform {
  constructor(size) {
    super({ highWaterMark: MiB });
    this.size = size;
    this.parts = [];
    this.length = 0;
  }
  _transform(chunk, _e, cb) {
    this.parts.push(chunk);
    this.length += chunk.length;
    if (this.length >= this.size) {
      const joined = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.length);
      this.parts = [];
      this.length = 0;
      cb(null, joined);
    } else cb();
  }
  _flush(cb) {
    if (this.length > 0) this.push(Buffer.concat(this.parts, this.length));
    cb();
  }
}

let coalesce = 0;
/** The runtime's HashTap hashes (sha256) only when a sink verifies by sha256 or needs the digest. */
let sha256 = false;

/** gpg's stdout → gate → count → file; resolves when the file is written and gpg exited 0. */
function drainToFile(child, done, stats, hwm = MiB) {
  return new Promise((resolve, reject) => {
    const gate = coalesce ? new Coalesce(coalesce) : new Tap(null);
    const count = new Tap(stats, sha256 ? 'sha256' : null);
    const file = createWriteStream(out, { highWaterMark: hwm });
    pipeline(child.stdout, gate, count, file, (err) => (err ? reject(err) : resolve()));
  }).then(async () => {
    const r = await done;
    if (r.code !== 0) throw new Error(`gpg exited ${r.code}: ${r.stderr}`);
  });
}

/** Node reads the file and writes it into gpg's stdin (what pgp_decrypt does today). */
async function throughStdin(stats, readHwm = MiB) {
  const { child, done } = spawnGpg(['--decrypt'], 'pipe');
  const size = statSync(msg).size;
  const src = createReadStream(msg, { highWaterMark: Math.min(size + 1, readHwm) });
  const root = new Tap(null);
  pipeline(src, root, child.stdin, () => {});
  await drainToFile(child, done, stats);
}

/** gpg reads the file itself through an inherited descriptor as its stdin. */
async function fdStdin(stats) {
  const fd = openSync(msg, 'r');
  try {
    const { child, done } = spawnGpg(['--decrypt'], fd);
    await drainToFile(child, done, stats);
  } finally {
    closeSync(fd);
  }
}

/** gpg opens the file by path. */
async function pathArg(stats) {
  const { child, done } = spawnGpg(['--decrypt', msg], 'ignore');
  await drainToFile(child, done, stats);
}

/** gpg reads the file itself and writes straight into the output file: the upper bound. */
async function gpgToFile() {
  const { child, done } = spawnGpg(['-o', out, '--decrypt', msg], 'ignore');
  child.stdout.resume();
  const r = await done;
  if (r.code !== 0) throw new Error(r.stderr);
}

/** The peer: a separate `gpg --decrypt -o FILE` (no status fd), as bench:peers runs it. */
async function peer() {
  const child = spawn(
    'gpg',
    ['--homedir', home, '--batch', '--quiet', '--yes', '-o', out, '--decrypt', msg],
    {
      stdio: 'ignore',
    },
  );
  await new Promise((resolve) => child.once('close', resolve));
}

/** stdout read into a discarding sink (no file): what the pipe alone costs. */
async function fdStdinDiscard(stats) {
  const fd = openSync(msg, 'r');
  try {
    const { child, done } = spawnGpg(['--decrypt'], fd);
    await new Promise((resolve, reject) =>
      pipeline(
        child.stdout,
        new Tap(stats),
        new Writable({ highWaterMark: MiB, write: (_c, _e, cb) => cb() }),
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    await done;
  } finally {
    closeSync(fd);
  }
}

/** `-o -&1`: gpg writes its 8 KiB iobuf blocks to fd 1 instead of 4 KiB stdio writes. */
const SPECIAL = ['--enable-special-filenames', '-o', '-&1'];

async function throughStdinSpecial(stats) {
  const { child, done } = spawnGpg([...SPECIAL, '--decrypt'], 'pipe');
  const size = statSync(msg).size;
  const src = createReadStream(msg, { highWaterMark: Math.min(size + 1, MiB) });
  pipeline(src, new Tap(null), child.stdin, () => {});
  await drainToFile(child, done, stats);
}

async function fdStdinSpecial(stats) {
  const fd = openSync(msg, 'r');
  try {
    const { child, done } = spawnGpg([...SPECIAL, '--decrypt'], fd);
    await drainToFile(child, done, stats);
  } finally {
    closeSync(fd);
  }
}

/** gpg's stdout a real pipe (a FIFO) instead of Node's socket pair, read by `how`. */
const fifo = join(data, 'plumbing.fifo');
async function fifoStdout(stats, how, special) {
  rmSync(fifo, { force: true });
  execFileSync('mkfifo', ['-m', '600', fifo]);
  const rw = openSync(fifo, constants.O_RDWR);
  const rd = openSync(
    fifo,
    how === 'socket' ? constants.O_RDONLY | constants.O_NONBLOCK : constants.O_RDONLY,
  );
  const input = openSync(msg, 'r');
  const child = spawn('gpg', [...gpgArgs, ...(special ? SPECIAL : []), '--decrypt'], {
    stdio: [input, rw, 'pipe', 'pipe'],
  });
  closeSync(rw);
  closeSync(input);
  child.stdio[3].end();
  child.stderr.resume();
  const done = new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr: '' })));
  const stdout =
    how === 'socket'
      ? new net.Socket({ fd: rd, readable: true, writable: false })
      : createReadStream(null, { fd: rd, highWaterMark: MiB });
  await drainToFile({ stdout }, done, stats);
}

const variants = {
  'gpg --decrypt -o FILE (peer)': peer,
  'gpg -o FILE, status fd (upper bound)': gpgToFile,
  'stdin via Node, stdout via Node (today)': throughStdin,
  'stdin = file fd, stdout via Node': fdStdin,
  'stdin = path arg, stdout via Node': pathArg,
  'stdin = file fd, stdout discarded in Node': fdStdinDiscard,
  'today + -o -&1': throughStdinSpecial,
  'stdin = file fd + -o -&1': fdStdinSpecial,
  'today + -o -&1 + coalesce 256 KiB': async (s) => {
    coalesce = 256 * 1024;
    await throughStdinSpecial(s).finally(() => {
      coalesce = 0;
    });
  },
  'stdin = file fd + -o -&1 + coalesce 256 KiB': async (s) => {
    coalesce = 256 * 1024;
    await fdStdinSpecial(s).finally(() => {
      coalesce = 0;
    });
  },
  'today + -o -&1, sha256 tap (verify: sha256)': async (s) => {
    sha256 = true;
    await throughStdinSpecial(s).finally(() => {
      sha256 = false;
    });
  },
  'FIFO stdout, epoll': (s) => fifoStdout(s, 'socket', false),
  'FIFO stdout, epoll, -o -&1': (s) => fifoStdout(s, 'socket', true),
  'FIFO stdout, fs.read 1 MiB, -o -&1': (s) => fifoStdout(s, 'fs', true),
};
const chosen = values.only
  ? Object.fromEntries(
      Object.entries(variants).filter(([k]) =>
        values.only
          .split(',')
          .filter(Boolean)
          .some((o) => k.includes(o)),
      ),
    )
  : variants;

/** CPU seconds of this process's reaped children (cutime + cstime of /proc/self/stat). */
function childCpu() {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

const rounds = Number(values.rounds);
const samples = Object.fromEntries(
  Object.keys(chosen).map((k) => [k, { wall: [], cpu: [], kids: [], chunks: 0, bytes: 0 }]),
);
for (let r = -1; r < rounds; r++) {
  for (const [name, fn] of Object.entries(chosen)) {
    rmSync(out, { force: true });
    const stats = { chunks: 0, bytes: 0 };
    const kids0 = childCpu();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await fn(stats);
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const kids = childCpu() - kids0;
    if (r < 0) continue;
    const s = samples[name];
    s.wall.push(wall);
    s.cpu.push((cpu.user + cpu.system) / 1e6);
    s.kids.push(kids);
    s.chunks += stats.chunks;
    s.bytes += stats.bytes;
  }
}
rmSync(out, { force: true });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const plain = Number(values['size-mib']) * MiB;
const peerWall = median(samples[Object.keys(samples)[0]].wall);
console.log(`${values['size-mib']} MiB ${values.kind}, ${rounds} rounds, medians`);
console.log('| variant | wall | MB/s | ratio vs first | node CPU | gpg CPU | chunks/MiB (avg KiB) |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const [name, s] of Object.entries(samples)) {
  const w = median(s.wall);
  const per = s.chunks
    ? `${((s.chunks / s.bytes) * MiB).toFixed(1)} (${(s.bytes / s.chunks / 1024).toFixed(0)})`
    : '—';
  console.log(
    `| ${name} | ${w.toFixed(2)} s | ${(plain / 1e6 / w).toFixed(0)} | ${(peerWall / w).toFixed(2)} | ${median(s.cpu).toFixed(2)} s | ${median(s.kids).toFixed(2)} s | ${per} |`,
  );
}
