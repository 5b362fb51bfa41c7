// Shared helpers for the benchmarks: run a command under bench/lib/measure.py, medians,
// machine description, and a marker-delimited section writer for bench/RESULTS.md.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');
export const repoDir = join(benchDir, '..');
export const sluiceBin = join(repoDir, 'bin', 'sluice.js');

/**
 * Runs `cmd args` under measure.py: { wall_s, max_rss_kib, code }. While the environment
 * variable BENCH_SLUICE_CPU_PROF names a folder, every `node bin/sluice.js …` run writes a
 * V8 CPU profile there (bench/peers.mjs --profile); other commands are left alone.
 */
export function measure(cmd, args, opts = {}) {
  const profileDir = process.env.BENCH_SLUICE_CPU_PROF;
  if (profileDir && cmd === 'node' && args[0] === sluiceBin)
    args = ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, ...args];
  const out = execFileSync('python3', [join(benchDir, 'lib', 'measure.py'), cmd, ...args], {
    encoding: 'utf8',
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    maxBuffer: 16 * 1024 * 1024,
  });
  const r = JSON.parse(out);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

/** `sluice run FILE --force` as a measured whole process, quiet, ledger under `stateDir`. */
export const runSluice = (file, stateDir) =>
  measure('node', [
    sluiceBin,
    'run',
    file,
    '--force',
    '--quiet',
    '--no-progress',
    '--log-format',
    'json',
    '--state-dir',
    stateDir,
  ]);

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export function has(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function machine() {
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}${sshCrypto() ? '' : ' (**ssh2 without its native crypto**: built for another Node; `npm rebuild ssh2`)'}, load avg at start ${load}`;
}

/**
 * Whether ssh2's native crypto binding loads in this Node. Built for another Node version (a
 * node_modules copied between versions), ssh2 falls back to JavaScript ciphers silently, and
 * every SFTP figure measures that fallback instead.
 */
function sshCrypto() {
  try {
    createRequire(import.meta.url)(
      join(repoDir, 'node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node'),
    );
    return true;
  } catch {
    return false;
  }
}

/** Replaces the section between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`. */
export function writeSection(name, markdown) {
  const file = join(benchDir, 'RESULTS.md');
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  let text = existsSync(file)
    ? readFileSync(file, 'utf8')
    : '# Benchmark results\n\nWritten by the bench scripts; each section is replaced by its own script.\n';
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  text =
    i >= 0 && j > i
      ? text.slice(0, i) + block + text.slice(j + end.length)
      : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
}

/** True when the module at `moduleUrl` is the script node was started with (not imported). */
export const isMain = (moduleUrl) =>
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(moduleUrl);

export const fmt = (n, d = 2) => Number(n).toFixed(d);

/** A CSV-like file of exactly `bytes` (compresses like real exports: ~2.7:1 with gzip -6). */
export function makeBigFile(path, bytes) {
  if (existsSync(path) && statSync(path).size === bytes) return;
  const fd = openSync(path, 'w');
  const line = (i) =>
    `${i},${(i * 7919) % 100000},customer-${i % 9973},${(i * 0.37).toFixed(2)},2024-03-${String((i % 28) + 1).padStart(2, '0')}T12:00:00Z\n`;
  let chunk = '';
  let i = 0;
  while (chunk.length < 4 * 2 ** 20) chunk += line(i++);
  const buf = Buffer.from(chunk);
  let written = 0;
  while (written < bytes) {
    const n = Math.min(buf.length, bytes - written);
    writeSync(fd, buf, 0, n);
    written += n;
  }
  closeSync(fd);
}
