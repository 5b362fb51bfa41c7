// SFTP over a link with latency (issue 16.2): Sluice and rclone both reach sshd through the
// same user-space delay proxy (bench/delay-proxy.mjs, 25 ms each way = a 50 ms round trip),
// on the servers startConnectorBench (connectors.mjs) started. bench/peers.mjs runs the cases.
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDelayProxy } from './delay-proxy.mjs';
import { benchDir, measure } from './lib/common.mjs';

export const ONE_WAY_DELAY_MS = 25;
/** The bucket startConnectorBench creates. */
const BUCKET = 'bench';
const CONCURRENCY = 16;

/**
 * Runs `work(sftpLines, rclone)` with sshd behind the delay proxy, then stops the proxy:
 * `sftpLines(path)` is an sftp source or sink block reaching sshd through it, `rclone(...)` a
 * measured rclone whose `src:` remote does.
 */
async function overLatency(ctx, work) {
  const proxy = await startDelayProxy({ target: ctx.sshd, delayMs: ONE_WAY_DELAY_MS });
  try {
    const sftpLines = (path) => [
      '  sftp:',
      ...ctx.sshd.sftpYaml(proxy),
      `    path: ${path}`,
      `    max_connections: ${CONCURRENCY}`,
    ];
    const env = {
      ...ctx.rcloneEnv,
      RCLONE_CONFIG_SRC_HOST: proxy.host,
      RCLONE_CONFIG_SRC_PORT: String(proxy.port),
    };
    const rclone = (...args) =>
      measure(
        'rclone',
        [...args, '--transfers', String(CONCURRENCY), '--checkers', String(CONCURRENCY), '--retries', '1'],
        { env },
      );
    return work(sftpLines, rclone);
  } finally {
    await proxy.stop();
  }
}

/** One `bytes`-sized random file sftp → local over a 50 ms round trip, Sluice vs `rclone copy`. */
export async function bigFileSftpToLocalOverLatency(ctx, bytes) {
  const dir = ctx.writeRemote('latency-big', 1, bytes, { name: () => 'big.bin' });
  const out = join(benchDir, 'data', 'latency-out');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  try {
    return await overLatency(ctx, (sftpLines, rclone) => {
      const file = ctx.pipeline('latency-big', [
        'source:',
        ...sftpLines(dir),
        'sink:',
        '  local:',
        `    path: ${join(out, 'sluice')}`,
      ]);
      return { sluice: ctx.sluice(file), rclone: rclone('copy', `src:${dir}`, join(out, 'rclone')) };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
}

/** One `bytes`-sized random file local → sftp over a 50 ms round trip, Sluice vs `rclone copy`. */
export async function bigFileLocalToSftpOverLatency(ctx, bytes) {
  const local = join(benchDir, 'data', 'latency-upload');
  rmSync(local, { recursive: true, force: true });
  mkdirSync(local, { recursive: true });
  const block = randomBytes(8 * 2 ** 20);
  for (let written = 0; written < bytes; written += block.length)
    writeFileSync(join(local, 'big.bin'), block.subarray(0, Math.min(block.length, bytes - written)), {
      flag: 'a',
    });
  const dir = ctx.writeRemote('latency-upload', 0, 0);
  try {
    return await overLatency(ctx, (sftpLines, rclone) => {
      const file = ctx.pipeline('latency-upload', [
        'source:',
        '  local:',
        `    path: ${local}`,
        'sink:',
        ...sftpLines(`${dir}/sluice`),
      ]);
      return { sluice: ctx.sluice(file), rclone: rclone('copy', local, `src:${dir}/rclone`) };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(local, { recursive: true, force: true });
  }
}

/** `count` × 1 MiB files sftp → s3 over a 50 ms round trip, Sluice vs `rclone copy`. */
export async function mibFilesSftpToS3OverLatency(ctx, count) {
  const dir = ctx.writeRemote('latency-mib', count, 2 ** 20);
  try {
    return await overLatency(ctx, (sftpLines, rclone) => {
      const file = ctx.pipeline('latency-mib', [
        'source:',
        ...sftpLines(dir),
        'sink:',
        ...ctx.s3Yaml('latency-mib-sluice/'),
      ]);
      return {
        sluice: ctx.sluice(file),
        rclone: rclone('copy', `src:${dir}`, `dst:${BUCKET}/latency-mib-rclone`, '--no-check-dest'),
      };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
