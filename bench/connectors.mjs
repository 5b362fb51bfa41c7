#!/usr/bin/env node
// Connector benchmarks (issue 4): Sluice vs rclone against real servers started here.
//  1. N × 64 KiB files sftp → s3 (files/s)          N = 2,000 (quick 500)
//  2. one big file sftp → s3 (MB/s)                 1 GiB (quick 256 MiB)
//  3. M objects s3 → s3 date segregation (server-side copy + delete) vs `rclone move` of the
//     same objects to one flat prefix (rclone cannot segregate by a date parsed from the name)
//                                                   M = 5,000 (quick 1,000)
// Peak RSS of each process (bench/lib/measure.py). Same concurrency for both tools (16).
// Usage: npm run build && node bench/connectors.mjs [--quick]
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchDir, fmt, has, machine, measure, sluiceBin, writeSection } from './lib/common.mjs';
import { startS3rver, startSshd } from './lib/servers.mjs';

const quick = process.argv.includes('--quick');
const SMALL = quick ? 500 : 2000;
const BIG = (quick ? 256 : 1024) * 2 ** 20;
const SEGREGATE = quick ? 1000 : 5000;
const CONCURRENCY = 16;
const BUCKET = 'bench';
if (!has('rclone')) throw new Error('rclone is required (apt-get install rclone)');

const data = join(benchDir, 'data', 'connectors');
rmSync(data, { recursive: true, force: true });
mkdirSync(data, { recursive: true });
const s3 = await startS3rver();
const sshd = await startSshd();
await s3.createBucket(BUCKET);

const rcloneEnv = {
  RCLONE_CONFIG: '/dev/null',
  AWS_CA_BUNDLE: '',
  RCLONE_CONFIG_SRC_TYPE: 'sftp',
  RCLONE_CONFIG_SRC_HOST: sshd.host,
  RCLONE_CONFIG_SRC_PORT: String(sshd.port),
  RCLONE_CONFIG_SRC_USER: sshd.username,
  RCLONE_CONFIG_SRC_KEY_FILE: sshd.privateKeyFile,
  RCLONE_CONFIG_SRC_DISABLE_HASHCHECK: 'true',
  RCLONE_CONFIG_DST_TYPE: 's3',
  RCLONE_CONFIG_DST_PROVIDER: 'Other',
  RCLONE_CONFIG_DST_ENDPOINT: s3.endpoint,
  RCLONE_CONFIG_DST_ACCESS_KEY_ID: 'S3RVER',
  RCLONE_CONFIG_DST_SECRET_ACCESS_KEY: 'S3RVER',
  RCLONE_CONFIG_DST_REGION: 'us-east-1',
  RCLONE_CONFIG_DST_FORCE_PATH_STYLE: 'true',
};
const rclone = (...args) =>
  measure('rclone', [...args, '--transfers', String(CONCURRENCY), '--checkers', String(CONCURRENCY), '--retries', '1', '--no-check-dest'], {
    env: rcloneEnv,
  });

const s3Yaml = (prefix, extra = []) => [
  '  s3:',
  `    bucket: ${BUCKET}`,
  `    endpoint: ${s3.endpoint}`,
  '    access_key_id: S3RVER',
  '    secret_access_key: S3RVER',
  `    prefix: ${prefix}`,
  ...extra,
];
const sftpYaml = (path) => [
  '  sftp:',
  `    host: ${sshd.host}`,
  `    port: ${sshd.port}`,
  `    username: ${sshd.username}`,
  `    private_key_file: ${sshd.privateKeyFile}`,
  `    host_key_sha256: "${sshd.hostKeySha256}"`,
  `    path: ${path}`,
  `    max_connections: ${CONCURRENCY}`,
];
const pipeline = (name, lines) => {
  const file = join(data, `${name}.yaml`);
  writeFileSync(file, [`name: ${name}`, ...lines, 'policy:', `  concurrency: ${CONCURRENCY}`, ''].join('\n'));
  return file;
};
const sluice = (file) => measure('node', [sluiceBin, 'run', file, '--force', '--quiet', '--no-progress', '--log-format', 'json', '--state-dir', join(data, 'state')]);

/** Files as the SFTP user owns them (sshd serves them as that user). */
function writeRemote(dir, count, size, name = (i) => `f-${String(i).padStart(5, '0')}.bin`) {
  const abs = join(sshd.rootDir, dir);
  mkdirSync(abs, { recursive: true });
  chownSync(abs, sshd.uid, sshd.gid);
  const body = randomBytes(Math.min(size, 8 * 2 ** 20));
  for (let i = 0; i < count; i++) {
    const file = join(abs, name(i));
    if (size <= body.length) {
      body.writeUInt32BE(i, 0);
      writeFileSync(file, body.subarray(0, size));
    } else {
      writeFileSync(file, Buffer.alloc(0));
      for (let written = 0; written < size; written += body.length) writeFileSync(file, body.subarray(0, Math.min(body.length, size - written)), { flag: 'a' });
    }
  }
  return abs;
}

const rows = [];
const mb = (bytes) => bytes / 1e6;
const rss = (r) => `${fmt(r.max_rss_kib / 1024, 0)} MiB`;

// 1. many small files
{
  const dir = writeRemote('small', SMALL, 64 * 1024);
  const file = pipeline('small-sftp-s3', ['source:', ...sftpYaml(dir), 'sink:', ...s3Yaml('small-sluice/')]);
  const ours = sluice(file);
  const theirs = rclone('copy', `src:${dir}`, `dst:${BUCKET}/small-rclone`);
  const a = SMALL / ours.wall_s;
  const b = SMALL / theirs.wall_s;
  rows.push([`${SMALL.toLocaleString('en')} × 64 KiB, sftp → s3`, `${fmt(a, 0)} files/s`, `${fmt(b, 0)} files/s`, fmt(a / b), rss(ours), rss(theirs)]);
}

// 2. one big file
{
  const dir = writeRemote('big', 1, BIG, () => 'big.bin');
  const file = pipeline('big-sftp-s3', ['source:', ...sftpYaml(dir), 'sink:', ...s3Yaml('big-sluice/')]);
  const ours = sluice(file);
  const theirs = rclone('copy', `src:${dir}`, `dst:${BUCKET}/big-rclone`);
  const a = mb(BIG) / ours.wall_s;
  const b = mb(BIG) / theirs.wall_s;
  rows.push([`1 × ${BIG / 2 ** 20} MiB, sftp → s3`, `${fmt(a, 1)} MB/s`, `${fmt(b, 1)} MB/s`, fmt(a / b), rss(ours), rss(theirs)]);
}

// 3. s3 → s3 segregation (server-side copy + delete) vs rclone move (server-side copy + delete)
{
  const local = join(data, 'cdr');
  mkdirSync(local, { recursive: true });
  for (let i = 0; i < SEGREGATE; i++) {
    const day = String((i % 28) + 1).padStart(2, '0');
    const hour = String(i % 24).padStart(2, '0');
    writeFileSync(join(local, `CHARGINGCDR_node${i % 4}_01-202403${day}-${hour}_${i}.ccn`), randomBytes(2048));
  }
  const seed = (prefix) => measure('rclone', ['copy', local, `dst:${BUCKET}/${prefix}`, '--transfers', '32', '--no-check-dest'], { env: rcloneEnv });
  seed('incoming-sluice');
  seed('incoming-rclone');
  const file = pipeline('cdr-segregation', [
    'source:',
    ...s3Yaml('incoming-sluice/', ['    recursive: false', '    after_success: delete']),
    'steps:',
    '  - segregate:',
    '      date:',
    '        from: name',
    "        pattern: '^CHARGINGCDR_.*-(\\d{8})-?(\\d{2}).*'",
    "        format: '%Y%m%d%H'",
    '      to: "segregated/{date:%Y/%m/%d/%H}/{name}"',
    '      unmatched: "errors/{name}"',
    'sink:',
    ...s3Yaml(''),
  ]);
  const ours = sluice(file);
  const theirs = rclone('move', `dst:${BUCKET}/incoming-rclone`, `dst:${BUCKET}/moved-rclone`);
  const a = SEGREGATE / ours.wall_s;
  const b = SEGREGATE / theirs.wall_s;
  rows.push([
    `${SEGREGATE.toLocaleString('en')} objects s3 → s3, segregate by date (rclone: flat move)`,
    `${fmt(a, 0)} obj/s`,
    `${fmt(b, 0)} obj/s`,
    fmt(a / b),
    rss(ours),
    rss(theirs),
  ]);
}

await sshd.stop();
await s3.stop();
rmSync(data, { recursive: true, force: true });

const lines = [
  '## Connectors: Sluice vs rclone (issue 4)',
  '',
  `Machine: ${machine()}. ${quick ? 'Quick mode (500 files, 256 MiB, 1,000 objects), one round.' : 'One round.'} Servers on 127.0.0.1, started by the script: OpenSSH sshd (internal-sftp) and s3rver (one Node process, which both tools share as a bottleneck). Whole-process wall time and peak RSS by \`bench/lib/measure.py\`; Sluice \`run --force\` with concurrency ${CONCURRENCY}, rclone ${'`--transfers'} ${CONCURRENCY} --checkers ${CONCURRENCY} --no-check-dest\` (rclone ${String(measure('rclone', ['version']).code === 0 ? 'installed' : '?')}). Figures move with machine load: compare within a run.`,
  '',
  '| Case | Sluice | rclone | Sluice / rclone | Sluice peak RSS | rclone peak RSS |',
  '|---|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.join(' | ')} |`),
  '',
  'Where Sluice falls short (a `--cpu-prof` of the quick small-file case, 500 × 64 KiB, on this loaded 2-core machine): the Sluice process is CPU-bound — 97 % of its wall time on CPU, ~26 % of it in the AWS SDK v3 middleware stack (`@smithy/*`, `@aws-sdk/*`: per-request serialisation, signing, endpoint resolution), ~17 % in socket `writeBuffer`, ~5 % in ssh2, ~3 % cipher, ~3 % GC. The s3 sink sends two requests per file (PutObject, then HeadObject to learn the stored size for verify) where rclone sends one, and the segregation case adds a HeadObject per copy as well; on a 2-core machine shared with sshd, s3rver and rclone itself, per-request CPU cost is what decides. Likely gains: take the size from the upload instead of a HEAD (verify: size), reuse the `storedSize` answer of `if_exists`, and batch deletes (DeleteObjects) after a segregation pass.',
  '',
  'The segregation case is not like for like: Sluice parses a date from each name and copies it server-side to `segregated/YYYY/MM/DD/HH/`, then deletes the source; `rclone move` copies the same number of objects server-side to one flat prefix and deletes them (it has no way to derive folders from names). Both issue one CopyObject and one DeleteObject per object.',
];
writeSection('connectors', lines.join('\n'));
console.log(lines.join('\n'));
