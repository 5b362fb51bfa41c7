#!/usr/bin/env node
// Sluice against its peers, every comparison in one run of one script (issue 7), each peer
// measured right beside Sluice (alternated and repeated where a round is cheap). The cases
// themselves live in core.mjs, transforms.mjs and connectors.mjs; this script picks sizes,
// runs them and writes one ratio table (the "peers" section of bench/RESULTS.md).
//
// Usage: npm run bench:peers [-- --quick] [-- --only gunzip,pgp] [-- --profile]
//   --quick    smaller inputs and one round (a smoke run; the section says so)
//   --only     comma-separated comparison names (see COMPARISONS below); the rows are printed and
//              kept in bench/data/peers-results-only.json, and the table (one full run) is left alone
//   --profile  run the chosen comparisons with `--cpu-prof` on every Sluice process and write
//              where Sluice's time goes (the "peers-profile" section) instead of the ratio table
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import {
  bigFileSftpToS3,
  segregateS3,
  sluiceSftpToS3,
  smallFilesSftpToS3,
  startConnectorBench,
} from './connectors.mjs';
import { bigFileInProcess, smallFilesVsRclone } from './core.mjs';
import {
  bigFileLocalToSftpOverLatency,
  bigFileSftpToLocalOverLatency,
  mibFilesSftpToS3OverLatency,
} from './latency.mjs';
import { benchDir, fmt, machine, measure, median, repoDir, sluiceBin, writeSection } from './lib/common.mjs';
import { listingVsRclone } from './listing.mjs';
import { cleanOutputs, compare, gunzipCases, gzipCases, pgpCases, pgpSmallCases } from './transforms.mjs';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const profile = args.includes('--profile');
const onlyAt = args.findIndex((a) => a === '--only' || a.startsWith('--only='));
const only =
  onlyAt < 0
    ? null
    : (args[onlyAt].includes('=') ? args[onlyAt].split('=')[1] : (args[onlyAt + 1] ?? ''))
        .split(',')
        .filter(Boolean);

const MiB = 2 ** 20;
const SIZES = quick
  ? {
      localBig: 256 * MiB,
      localRounds: 1,
      smallFiles: 5000,
      smallRounds: 1,
      gunzip: 256 * MiB,
      gzip: 128 * MiB,
      codecRounds: 1,
      pgp: 128 * MiB,
      pgpRounds: 1,
      pgpSmall: 50,
      sftpSmall: 300,
      sftpBig: 128 * MiB,
      segregate: 500,
      rss: [64 * MiB, 512 * MiB],
      latencyBig: 64 * MiB,
      latencyFiles: 100,
      listing: [2000, 20000],
    }
  : {
      localBig: 1024 * MiB,
      localRounds: 3,
      smallFiles: 20000,
      smallRounds: 3,
      gunzip: 1024 * MiB,
      gzip: 1024 * MiB,
      codecRounds: 2,
      pgp: 512 * MiB,
      pgpRounds: 3,
      pgpSmall: 200,
      sftpSmall: 2000,
      sftpBig: 1024 * MiB,
      segregate: 10000,
      rss: [256 * MiB, 4096 * MiB],
      latencyBig: 256 * MiB,
      latencyFiles: 500,
      listing: [20000, 200000],
    };

const size = (bytes) => (bytes >= 1024 * MiB ? `${bytes / 1024 / MiB} GiB` : `${bytes / MiB} MiB`);
const count = (n) => n.toLocaleString('en');
const mbps = (bytes, seconds) => `${fmt(bytes / 1e6 / seconds, 0)} MB/s`;
const perSecond = (n, seconds, unit) => `${fmt(n / seconds, 0)} ${unit}/s`;
const rssOf = (kib) => `${fmt(kib / 1024, 0)} MiB`;

/**
 * A row of the ratio table. `ratio` is Sluice's throughput over the peer's on the same work
 * (> 1: Sluice is faster); `met` is decided against `target` unless given.
 */
const row = (name, workload, sluice, peer, ratio, target, extra = {}) => ({
  name,
  workload,
  sluice,
  peer,
  ratio,
  target,
  met: target === null ? null : ratio >= target,
  ...extra,
});

/** Throughput comparisons from transforms.mjs's `compare` (medians of whole processes). */
function codecRow(name, workload, bytes, results, ours, theirs, target) {
  const a = results[ours];
  const b = results[theirs];
  return row(
    name,
    workload,
    `${mbps(bytes, a.wall)}`,
    `\`${theirs}\` ${mbps(bytes, b.wall)}`,
    b.wall / a.wall,
    target,
    { rss: [a.rss * 1024, b.rss * 1024], walls: [a.wall, b.wall] },
  );
}

/** Connector comparisons: { sluice, rclone } measure results of one piece of work. */
function connectorRow(name, workload, result, throughput, peerName, target) {
  const { sluice, rclone } = result;
  return row(
    name,
    workload,
    throughput(sluice.wall_s),
    `${peerName} ${throughput(rclone.wall_s)}`,
    rclone.wall_s / sluice.wall_s,
    target,
    {
      rss: [sluice.max_rss_kib, rclone.max_rss_kib],
      walls: [sluice.wall_s, rclone.wall_s],
    },
  );
}

let connectors = null;
const connectorBench = async () => {
  connectors ??= await startConnectorBench();
  return connectors;
};

const COMPARISONS = {
  'local-big': {
    title: 'one big file local → local vs raw Node streams',
    async run(S) {
      const t = await bigFileInProcess({ bytes: S.localBig, rounds: S.localRounds });
      return [
        row(
          'local-big',
          `1 × ${size(S.localBig)} local → local, in one process (verify: size)`,
          mbps(S.localBig, t.size),
          `\`stream.pipeline\` copy ${mbps(S.localBig, t.raw)}`,
          t.raw / t.size,
          0.9,
        ),
      ];
    },
  },
  'small-files': {
    title: 'many small files local → local vs rclone',
    async run(S) {
      const t = smallFilesVsRclone({ count: S.smallFiles, rounds: S.smallRounds });
      if (t.rclone === null) throw new Error('rclone is required (apt-get install rclone)');
      return [
        row(
          'small-files',
          `${count(S.smallFiles)} × 4 KiB in 100 folders, local → local, concurrency 16`,
          perSecond(S.smallFiles, t.sluice, 'files'),
          `\`rclone copy\` ${perSecond(S.smallFiles, t.rclone, 'files')}`,
          t.rclone / t.sluice,
          1.0,
          { rss: [t.sluiceRssKib, t.rcloneRssKib], walls: [t.sluice, t.rclone] },
        ),
        row(
          'small-files',
          `the same on a pool of 2 threads (\`threads: 2\`; above: the default \`auto\`, ${availableParallelism() >= 4 ? `${availableParallelism() - 1} threads` : 'one thread'} on ${availableParallelism()} cores)`,
          perSecond(S.smallFiles, t.sluiceOne, 'files'),
          `\`rclone copy\` ${perSecond(S.smallFiles, t.rclone, 'files')}`,
          t.rclone / t.sluiceOne,
          null,
          { rss: [t.sluiceOneRssKib, t.rcloneRssKib], walls: [t.sluiceOne, t.rclone] },
        ),
      ];
    },
  },
  gunzip: {
    title: 'gunzip vs pigz and gzip',
    async run(S) {
      const { compressedBytes, cases } = gunzipCases(S.gunzip);
      const results = compare(cases, S.codecRounds + 1);
      cleanOutputs();
      const workload = `gunzip ${size(S.gunzip)} (${fmt(compressedBytes / MiB, 0)} MiB .gz), local → decompress → local`;
      return [
        codecRow('gunzip', workload, S.gunzip, results, 'Sluice decompress', 'pigz -dc', 1.0),
        codecRow('gunzip', workload, S.gunzip, results, 'Sluice decompress', 'gzip -dc', null),
      ];
    },
  },
  gzip: {
    title: 'gzip -6 vs gzip',
    async run(S) {
      const { gzip } = gzipCases(S.gzip);
      // pigz -6 is in transforms.mjs's table; here only the issue's comparison, to save minutes.
      const results = compare(
        { 'gzip -6': gzip['gzip -6'], 'Sluice compress gzip 6': gzip['Sluice compress gzip 6'] },
        S.codecRounds,
      );
      cleanOutputs();
      return [
        codecRow(
          'gzip',
          `gzip level 6 of ${size(S.gzip)}, local → compress → local`,
          S.gzip,
          results,
          'Sluice compress gzip 6',
          'gzip -6',
          1.4,
        ),
      ];
    },
  },
  pgp: {
    title: 'pgp_decrypt vs gpg',
    async run(S) {
      const rows = [];
      for (const [kind, target] of [
        ['compressed', 0.8],
        ['uncompressed', 0.5],
      ]) {
        const results = compare(pgpCases(S.pgp, kind, ['gpg']), S.pgpRounds);
        cleanOutputs();
        rows.push(
          codecRow(
            'pgp',
            `pgp_decrypt (gpg engine) of ${size(S.pgp)}, ${kind} message, RSA-3072`,
            S.pgp,
            results,
            'Sluice pgp_decrypt, gpg engine',
            'gpg --decrypt',
            target,
          ),
        );
      }
      return rows;
    },
  },
  'pgp-small': {
    title: 'many small PGP files, gpg engine vs openpgp engine',
    async run(S) {
      const results = compare(pgpSmallCases(S.pgpSmall), S.pgpRounds);
      cleanOutputs();
      const a = results['Sluice pgp_decrypt, gpg engine'];
      const b = results['Sluice pgp_decrypt, openpgp engine'];
      return [
        row(
          'pgp-small',
          `${count(S.pgpSmall)} × 4 KiB .gpg files through pgp_decrypt (passphrase-protected RSA-3072 key), gpg engine vs openpgp engine`,
          perSecond(S.pgpSmall, a.wall, 'files'),
          `openpgp engine ${perSecond(S.pgpSmall, b.wall, 'files')}`,
          b.wall / a.wall,
          1.0,
          { rss: [a.rss * 1024, b.rss * 1024], walls: [a.wall, b.wall] },
        ),
      ];
    },
  },
  'sftp-s3-small': {
    title: 'small files sftp → s3 vs rclone',
    async run(S) {
      const ctx = await connectorBench();
      const result = smallFilesSftpToS3(ctx, S.sftpSmall);
      return [
        connectorRow(
          'sftp-s3-small',
          `${count(S.sftpSmall)} × 64 KiB sftp → s3, concurrency 16`,
          result,
          (s) => perSecond(S.sftpSmall, s, 'files'),
          '`rclone copy`',
          1.2, // issue 16: ahead of rclone where Sluice does the same requests
        ),
      ];
    },
  },
  'sftp-s3-big': {
    title: 'one big file sftp → s3 vs rclone',
    async run(S) {
      const ctx = await connectorBench();
      const result = bigFileSftpToS3(ctx, S.sftpBig);
      return [
        connectorRow(
          'sftp-s3-big',
          `1 × ${size(S.sftpBig)} sftp → s3 (multipart)`,
          result,
          (s) => mbps(S.sftpBig, s),
          '`rclone copy`',
          1.0,
        ),
      ];
    },
  },
  segregate: {
    title: 'S3 → S3 segregation vs rclone',
    async run(S) {
      const ctx = await connectorBench();
      const result = segregateS3(ctx, S.segregate);
      return [
        connectorRow(
          'segregate',
          `${count(S.segregate)} keys s3 → s3, Sluice segregates by date (rclone: flat \`move\`), concurrency 16`,
          result,
          (s) => perSecond(S.segregate, s, 'keys'),
          '`rclone move`',
          1.2, // issue 16
        ),
      ];
    },
  },
  'latency-sftp-local': {
    title: 'one big file sftp → local over a 50 ms round trip vs rclone',
    async run(S) {
      const result = await bigFileSftpToLocalOverLatency(await connectorBench(), S.latencyBig);
      return [
        connectorRow(
          'latency-sftp-local',
          `1 × ${size(S.latencyBig)} sftp → local over a 50 ms round trip (delay proxy)`,
          result,
          (s) => mbps(S.latencyBig, s),
          '`rclone copy`',
          1.0,
        ),
      ];
    },
  },
  'latency-local-sftp': {
    title: 'one big file local → sftp over a 50 ms round trip vs rclone',
    async run(S) {
      const result = await bigFileLocalToSftpOverLatency(await connectorBench(), S.latencyBig);
      return [
        connectorRow(
          'latency-local-sftp',
          `1 × ${size(S.latencyBig)} local → sftp over a 50 ms round trip (delay proxy)`,
          result,
          (s) => mbps(S.latencyBig, s),
          '`rclone copy`',
          1.0,
        ),
      ];
    },
  },
  'latency-sftp-s3': {
    title: '1 MiB files sftp → s3 over a 50 ms round trip vs rclone',
    async run(S) {
      const result = await mibFilesSftpToS3OverLatency(await connectorBench(), S.latencyFiles);
      return [
        connectorRow(
          'latency-sftp-s3',
          `${count(S.latencyFiles)} × 1 MiB sftp → s3 over a 50 ms round trip (delay proxy), concurrency 16`,
          result,
          (s) => perSecond(S.latencyFiles, s, 'files'),
          '`rclone copy`',
          1.0,
        ),
      ];
    },
  },
  listing: {
    title: 'list one big SFTP folder vs rclone lsf (time, peak RSS small vs big)',
    async run(S) {
      const [small, big] = await listingVsRclone({ sizes: S.listing, rounds: quick ? 1 : 3 });
      const growth = big.sluice.max_rss_kib / small.sluice.max_rss_kib;
      const ratio = big.rclone.wall_s / big.sluice.wall_s;
      return [
        row(
          'listing',
          `list ${count(big.count)} files in one SFTP folder (\`run\` whose \`include\` matches none); Sluice peak RSS ${rssOf(small.sluice.max_rss_kib)} at ${count(small.count)} files, ${rssOf(big.sluice.max_rss_kib)} at ${count(big.count)}`,
          perSecond(big.count, big.sluice.wall_s, 'files'),
          `\`rclone lsf\` ${perSecond(big.count, big.rclone.wall_s, 'files')}`,
          ratio,
          1.0,
          {
            rss: [big.sluice.max_rss_kib, big.rclone.max_rss_kib],
            walls: [big.sluice.wall_s, big.rclone.wall_s],
            targetText: '≥ 1.0, RSS flat (< 1.2×)',
            met: ratio >= 1.0 && growth < 1.2,
          },
        ),
      ];
    },
  },
  rss: {
    title: 'peak RSS, one file sftp → s3, small vs huge',
    async run(S) {
      const ctx = await connectorBench();
      const [small, huge] = S.rss.map((bytes) => sluiceSftpToS3(ctx, bytes));
      const growth = huge.max_rss_kib / small.max_rss_kib;
      return [
        row(
          'rss',
          `peak RSS, 1 file sftp → s3 (multipart), ${size(S.rss[0])} vs ${size(S.rss[1])} (${mbps(S.rss[1], huge.wall_s)} on the big one)`,
          `${rssOf(small.max_rss_kib)} vs ${rssOf(huge.max_rss_kib)}`,
          '—',
          growth,
          null,
          {
            ratioText: `${fmt(growth)}× growth`,
            targetText: '< 150 MiB, flat (< 1.2×)',
            met: huge.max_rss_kib < 150 * 1024 && growth < 1.2,
          },
        ),
      ];
    },
  },
};

/** Sluice/peer ratio of `name`'s rows with Sluice's start-up taken out of its wall time. */
const withoutStartup = (run, name) =>
  run.rows
    .filter((r) => r.name === name && r.walls)
    .map((r) => fmt(r.walls[1] / Math.max(0.001, r.walls[0] - run.startup.run)))
    .join(' / ');
const PROFILE_LINK = '#where-sluice-spends-its-time-in-the-peer-comparisons-benchpeers---profile';

/** What the last `--profile` run found for `name` (bench/data/peers-profiles.json), as a phrase. */
function profiled(name) {
  let entry;
  try {
    entry = JSON.parse(readFileSync(join(benchDir, 'data', 'peers-profiles.json'), 'utf8')).find(
      (p) => p.name === name,
    );
  } catch {}
  if (!entry) return `its [CPU profile](${PROFILE_LINK})`;
  return `its [CPU profile](${PROFILE_LINK}) (${entry.workload}: main thread on CPU ${fmt((entry.cpu / entry.wall) * 100, 0)} % of ${fmt(entry.wall, 1)} s; ${entry.top.slice(0, 5).join(', ')})`;
}

/**
 * Why a comparison falls short of its target, from `--profile` (main-thread CPU profiles) and
 * the measured start-up. Shown for ✗ rows only; `node bench/peers.mjs --report` re-renders.
 */
const LIMITS = {
  'local-big': (run) =>
    `one process, so no start-up in the figure; the Sluice pass adds a size check, a ledger row and the atomic rename to the same byte copy (${fmt(run.rows.find((r) => r.name === 'local-big').ratio)}× here). Issue 2's quiet-machine run measured 0.96 (core section).`,
  'small-files': (run) =>
    `per-file work. The default (\`threads: auto\`) runs items on one thread below 4 cores; the second row is a pool of 2 threads, which on this 2-core machine costs more than it gives: each item's ledger reads and writes, claim and events cross to the main thread, and three event loops share libuv's thread pool. Per file the listing makes one lstat and the copy about ten direct calls (open, fstat and a readlink to check the source; read; create, write, futimes, fstat; rename; two closes), all on the main thread where both folders are local disks, and the SQLite ledger writes one row per item (its \`seen\` row is held back, issue 16.4); rclone makes the same syscalls from goroutines on both cores. On this VM every syscall is expensive (paravirtualised interrupts) and ext4's inode allocation scans past the inodes the previous round deleted (\`recently_deleted\`), which makes the row swing by ±40 % between runs; on tmpfs the same 20,000 files took Sluice 2.7 s and rclone 1.85 s (0.69; by hand, session 8). With start-up taken out: ${withoutStartup(run, 'small-files')}.`,
  gunzip: (run) =>
    `the inflate runs on one libuv thread per stream, so it is absent from ${profiled('gunzip')}, whose main thread is on CPU for part of the time (module loading, stream and zlib bookkeeping, GC) and otherwise waits for that one inflate thread. pigz reads, inflates and writes (and checks the CRC) on separate threads. With start-up taken out (vs pigz / vs gzip): ${withoutStartup(run, 'gunzip')}.`,
  gzip: (run) =>
    `deflate level 6 itself, on one libuv thread (the same zlib as \`gzip\`); ${profiled('gzip')}. Without start-up: ${withoutStartup(run, 'gzip')}.`,
  pgp: (run) =>
    `gpg reads the local file itself and, with one local sink, writes the plaintext straight into its temp file (issue 16.6): no byte passes through Node. What remains is the fixed cost of each run: Sluice's start-up and the throwaway gpg home (key import, agent start and stop). With start-up taken out (compressed / uncompressed): ${withoutStartup(run, 'pgp')}`,
  'pgp-small': () =>
    `the gpg engine decrypts messages up to \`in_process_max\` (256 KiB) in-process with openpgp.js first and starts gpg only for a message that needs it, so both rows now do the same work (the RSA-3072 private-key operation in JavaScript, about 10 ms a file); the ratio is noise around 1. Before that, a \`gpg\` process per file (a fork of Sluice's process, gpg's start, a round trip to the agent) cost about 30 ms a file.`,
  'sftp-s3-small': (run) =>
    `per-request CPU in one Node process: per file an SFTP open, reads and close (ssh2's cipher; the packets of one event-loop turn leave in one writev since \`a66434c\`), one PutObject and a read-back HeadObject of the stored mtime, both SigV4-signed without the SDK's middleware (lean requests, since \`7ceaf41\`; the PutObject's ETag checks the bytes), and the ledger; rclone sends its requests from Go on both cores. A pool of threads was measured slower on these 2 cores. See ${profiled('sftp-s3-small')}. With start-up taken out: ${withoutStartup(run, 'sftp-s3-small')}`,
  'sftp-s3-big': (run) =>
    `reads keep 64 × 32 KiB SFTP requests in flight, grown to 128 while the reader waits on the server (issue 16.2), and the s3 sink sends 4 parts at once from reused buffers; what remains is CPU on the main thread — ssh2's cipher, GC, socket writes and the SDK's SHA-256 of every part (SigV4 over plain http). With start-up taken out: ${withoutStartup(run, 'sftp-s3-big')}`,
  segregate: (run) =>
    `requests per key, on a shared s3rver (one Node process, itself near a full core): Sluice sends a source HeadObject (its REPLACE copy keeps the source's content headers and adds the mtime), the CopyObject (pinned to the listed ETag), a read-back HeadObject of the stored mtime and a HeadObject version check before the delete, all signed without the SDK's middleware, plus its share of one DeleteObjects per batch (issue 16.3); rclone sends CopyObject and DeleteObject. A version check by listing instead of the HeadObject was measured slower on s3rver (session 9). See ${profiled('segregate')}. With start-up taken out: ${withoutStartup(run, 'segregate')}`,
  'latency-sftp-local': (run) =>
    `one file is read over one SFTP channel; its requests in flight start at 64 × 32 KiB (at most 2 MiB a round trip, about 40 MB/s over 50 ms) and double while the reader waits on the server, up to 128 (4 MiB; the channel's receive window is widened to match; since \`0c0dc18\`); rclone reads one big file with 4 streams of 64 requests (its multi-thread download). See ${profiled('latency-sftp-local')}. With start-up taken out: ${withoutStartup(run, 'latency-sftp-local')}.`,
  'latency-local-sftp': (run) =>
    `sshd gives each SSH channel a 2 MiB window, topped up at half: one channel carries about 1.5 MiB a round trip (30 MB/s over 50 ms) however many WRITEs are out, the bound rclone is at. Sluice keeps 64 × 32 KiB WRITEs in flight per channel and, once a file has sent two rounds and still waits, spreads them over a second channel of the same connection (\`upload_channels\`, default 2; since \`fe07537\`); the link's round trips decide the rest. See ${profiled('latency-local-sftp')}. With start-up taken out: ${withoutStartup(run, 'latency-local-sftp')}.`,
  'latency-sftp-s3': (run) =>
    `16 files in flight, each an SFTP open, reads and close (several round trips before its first byte) and one PutObject; rclone overlaps the same round trips with its checkers. See ${profiled('latency-sftp-s3')}. With start-up taken out: ${withoutStartup(run, 'latency-sftp-s3')}.`,
  listing: (run) =>
    `fixed cost, not per-file cost: listing is a stream (one READDIR reply at a time, memory flat), and from 20,000 to 200,000 entries Sluice adds less time than rclone; what remains is start-up and the start check, which logs in to SFTP a second time (its own plugin instances). With start-up taken out: ${withoutStartup(run, 'listing')}.`,
  rss: (run) => {
    const small = run.rows.find((r) => r.name === 'sftp-s3-small');
    const rss = run.rows.find((r) => r.name === 'rss');
    return `${rss.ratio < 1.2 ? 'nearly flat' : 'not flat'} (${fmt((rss.ratio - 1) * 100, 0)} % more for a 16× larger file), but above 150 MiB. ${small?.rss ? `The same process moving 64 KiB files peaks at ${rssOf(small.rss[0])}: that is the fixed cost of Node, the AWS SDK and ssh2 loaded together; ` : ''}a big file adds the s3 sink's part buffers (at most \`queue_size\` + 1 of \`part_size\`, reused: 5 × 8 MiB by default) and the stream buffers in between. Issue 2's < 150 MiB target was set for local → local (128 MiB there).`;
  },
};

/** Whole-process cost of `sluice run` on an empty folder: what every Sluice figure above includes. */
function startupCost() {
  const dir = join(benchDir, 'data', 'peers');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'empty'), { recursive: true });
  const file = join(dir, 'empty.yaml');
  writeFileSync(
    file,
    `name: empty\nsource:\n  local: { path: ${join(dir, 'empty')} }\nsink:\n  local: { path: ${join(dir, 'out')} }\n`,
  );
  const run = median(
    [0, 1, 2].map(
      () =>
        measure('node', [
          sluiceBin,
          'run',
          file,
          '--quiet',
          '--log-format',
          'json',
          '--state-dir',
          join(dir, 'state'),
        ]).wall_s,
    ),
  );
  const node = median([0, 1, 2].map(() => measure('node', ['-e', '0']).wall_s));
  rmSync(dir, { recursive: true, force: true });
  return { run, node };
}

// ---- CPU profiles (--profile)

/** Where a profiled function's self time is booked: a package, a Sluice module, Node or V8. */
function category({ url, functionName }) {
  if (!url) {
    if (functionName === '(idle)') return 'idle (waiting for I/O)';
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(program)') return 'V8 / native (program)';
    return `native \`${functionName}\``;
  }
  const pkg = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)?.[1];
  if (pkg)
    return pkg.startsWith('@smithy/') || pkg.startsWith('@aws-sdk/')
      ? 'AWS SDK (`@aws-sdk/*`, `@smithy/*`)'
      : `\`${pkg}\``;
  if (/\/dist\/cli\//.test(url)) return 'Sluice (bundled `dist/cli`)';
  const own = url.match(/\/dist\/(core|plugins)\/([^/]+)/);
  if (own) return `Sluice ${own[1]}/${own[2].replace(/\.js$/, '')}`;
  if (url.startsWith('node:'))
    return `Node \`${url
      .slice(5)
      .replace(/^internal\//, '')
      .split('/')[0]
      .replace(/\.js$/, '')}\``;
  return url;
}

function summarizeProfile(file) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
  const byCategory = new Map();
  prof.samples.forEach((id, i) => {
    const key = category(nodes.get(id).callFrame);
    byCategory.set(key, (byCategory.get(key) ?? 0) + (prof.timeDeltas[i] ?? 0));
  });
  const wall = (prof.endTime - prof.startTime) / 1e6;
  const idle = (byCategory.get('idle (waiting for I/O)') ?? 0) / 1e6;
  const cpu = wall - idle;
  const top = [...byCategory.entries()]
    .filter(([k]) => k !== 'idle (waiting for I/O)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, 7)
    .map(([k, us]) => `${k} ${fmt((us / 1e6 / cpu) * 100, 0)} %`);
  return { wall, cpu, top };
}

// ---- run

const loadNow = () => readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
  cwd: repoDir,
  encoding: 'utf8',
}).trim();
const dirty =
  execFileSync('git', ['status', '--porcelain', '--', 'core', 'plugins'], {
    cwd: repoDir,
    encoding: 'utf8',
  }).trim() !== '';
// `--only sftp-s3` picks every comparison whose name starts with it.
const chosen = Object.keys(COMPARISONS).filter(
  (name) => !only || only.some((o) => name === o || name.startsWith(`${o}-`)),
);
for (const o of only ?? [])
  if (!chosen.some((name) => name === o || name.startsWith(`${o}-`)))
    throw new Error(`--only: no comparison "${o}" (known: ${Object.keys(COMPARISONS).join(', ')})`);

const machineLine = machine();
const started = Date.now();
const resultsFile = join(benchDir, 'data', 'peers-results.json');
if (args.includes('--report')) {
  // Re-renders the section from the last full or quick run (e.g. after editing LIMITS).
  render(JSON.parse(readFileSync(resultsFile, 'utf8')));
  process.exit(0);
}
const rows = [];
const loads = [];
const profiles = [];
const profileRoot = join(benchDir, 'data', 'profiles');
try {
  for (const name of chosen) {
    const load = loadNow();
    const t = Date.now();
    console.log(`== ${name}: ${COMPARISONS[name].title}${quick ? ' (quick)' : ''}, load ${load}`);
    const dir = join(profileRoot, name);
    if (profile) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      process.env.BENCH_SLUICE_CPU_PROF = dir;
    }
    const got = await COMPARISONS[name].run(SIZES);
    delete process.env.BENCH_SLUICE_CPU_PROF;
    if (profile) {
      const files = readdirSync(dir)
        .map((f) => join(dir, f))
        .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
      if (files.length)
        profiles.push({ name, workload: got.at(-1).workload, ...summarizeProfile(files.at(-1)) });
    }
    loads.push(`${name} ${load}`);
    for (const r of got)
      console.log(
        `   ${r.workload}: Sluice ${r.sluice}, peer ${r.peer}, ratio ${r.ratioText ?? fmt(r.ratio)} (${((Date.now() - t) / 1000).toFixed(0)} s)`,
      );
    rows.push(...got);
  }
} finally {
  await connectors?.stop();
}
const minutes = (Date.now() - started) / 60000;
const startup = startupCost();
const loadAtEnd = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const at = `commit \`${commit}\`${dirty ? ' (with uncommitted changes in core/ or plugins/)' : ''}`;
if (profile) {
  // Merged with earlier --profile runs, so `--only x --profile` refreshes just x's row.
  const profilesFile = join(benchDir, 'data', 'peers-profiles.json');
  let earlier = [];
  try {
    earlier = JSON.parse(readFileSync(profilesFile, 'utf8'));
  } catch {}
  const stamp = (name) =>
    `${at}, ${quick ? 'quick' : 'full'} sizes, load ${loads.find((l) => l.startsWith(`${name} `))?.split(' ')[1]}`;
  const merged = [
    ...earlier.filter((e) => !profiles.some((p) => p.name === e.name)),
    ...profiles.map((p) => ({ ...p, stamp: stamp(p.name) })),
  ];
  merged.sort((a, b) => Object.keys(COMPARISONS).indexOf(a.name) - Object.keys(COMPARISONS).indexOf(b.name));
  mkdirSync(join(benchDir, 'data'), { recursive: true });
  writeFileSync(profilesFile, JSON.stringify(merged, null, 2));
  const lines = [
    '## Where Sluice spends its time in the peer comparisons (`bench:peers --profile`)',
    '',
    `${machineLine}. The last Sluice process of each comparison, run with \`--cpu-prof\`: wall time, time its main thread spent on CPU (wall minus V8's idle samples) and the biggest shares of that CPU time by self time (a function's own time, booked to its package or Sluice module). Work that Node hands to its thread pool (zlib, fs calls) or to child processes (gpg) is not in these shares; profiling slows the process, so the walls are not the benchmark's.`,
    '',
    '| comparison | profiled workload | measured at | wall | on CPU | where the main thread’s CPU time goes |',
    '|---|---|---|---:|---:|---|',
    ...merged.map(
      (p) =>
        `| ${p.name} | ${p.workload} | ${p.stamp} | ${fmt(p.wall)} s | ${fmt((p.cpu / p.wall) * 100, 0)} % | ${p.top.join(', ')} |`,
    ),
    '',
    `Sluice start-up (\`sluice run\` of an empty folder, whole process): ${fmt(startup.run * 1000, 0)} ms (\`node -e 0\`: ${fmt(startup.node * 1000, 0)} ms).`,
    '',
    'Reproduce: `npm run build && node bench/peers.mjs --quick --profile [--only NAME]` (profiles stay in `bench/data/profiles/`; an `--only` run replaces just its rows).',
  ];
  writeSection('peers-profile', lines.join('\n'));
  console.log(lines.join('\n'));
} else {
  const run = { rows, loads, minutes, startup, loadAtEnd, at, machineLine, quick, sizes: SIZES };
  mkdirSync(join(benchDir, 'data'), { recursive: true });
  if (only) {
    // A re-run of some rows is not the table: it would replace one full run with a few rows.
    writeFileSync(join(benchDir, 'data', 'peers-results-only.json'), JSON.stringify(run, null, 2));
    console.log(
      `(--only: the table in bench/RESULTS.md is left as it was; these rows are in bench/data/peers-results-only.json, ${at})`,
    );
  } else {
    writeFileSync(resultsFile, JSON.stringify(run, null, 2));
    render(run);
  }
}

/** Writes the "peers" section of bench/RESULTS.md from one run's figures. */
function render(run) {
  const { rows, loads, minutes, startup, loadAtEnd, at, machineLine, quick, sizes: SIZES } = run;
  const mark = (r) => (r.met === null ? '—' : r.met ? '✓' : '✗');
  const failing = [...new Set(rows.filter((r) => r.met === false).map((r) => r.name))];
  const lines = [
    `## Against peers, one script, one run (issue 7)${quick ? ' — QUICK SMOKE RUN (small inputs, one round)' : ''}`,
    '',
    `Measured at ${at}; ${machineLine}, ${loadAtEnd} at the end; ${fmt(minutes, 0)} min. ${quick ? '**Quick mode: inputs shrunk and single rounds — not the figures to quote.** ' : ''}Each peer runs right beside Sluice in the same script (alternated after a warm-up where a round is cheap: local-big and small-files ${SIZES.localRounds} rounds, gunzip ${SIZES.codecRounds + 1}, gzip ${SIZES.codecRounds}, pgp ${SIZES.pgpRounds}; the server cases once each, on sshd and s3rver started by the script on 127.0.0.1). Times are whole processes (\`bench/lib/measure.py\`) except local-big, which runs in one process as issue 2 asks. **Ratio** = Sluice's throughput ÷ the peer's on the same work (above 1: Sluice is faster).`,
    '',
    '| workload | Sluice | peer | ratio | target | | peak RSS Sluice / peer |',
    '|---|---:|---:|---:|---:|:-:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.workload} | ${r.sluice} | ${r.peer} | **${r.ratioText ?? fmt(r.ratio)}** | ${r.targetText ?? (r.target === null ? '—' : `≥ ${r.target}`)} | ${mark(r)} | ${r.rss ? `${rssOf(r.rss[0])} / ${rssOf(r.rss[1])}` : ''} |`,
    ),
    '',
    `Notes. Every whole-process Sluice figure includes its start-up: \`sluice run\` of an empty folder takes ${fmt(startup.run * 1000, 0)} ms here (\`node -e 0\`: ${fmt(startup.node * 1000, 0)} ms). Load average (1 min) when each comparison started: ${loads.join(', ')} — a shared 2-core machine with other engineers' test runs on it; ratios measured side by side in this run are what counts, absolute figures move ±15 % or more between runs. S3 → S3: Sluice lists the keys, parses a date from each name and copies each key server-side (CopyObject) to \`segregated/YYYY/MM/DD/HH/<name>\`, checks the copy, records it in its ledger and deletes the source key; \`rclone move\` copies the same keys server-side to one flat prefix and deletes them (it cannot derive folders from names) — the same number of copies and deletes, without the per-key date parsing, ledger or check. Both sftp → s3 and S3 → S3 share one s3rver process with the peer (a Node server, itself a bottleneck).`,
    '',
  ];
  if (failing.length) {
    lines.push('### What limits us (rows marked ✗)', '');
    for (const name of failing) lines.push(`- **${name}**: ${LIMITS[name]?.(run) ?? 'not profiled yet.'}`);
    lines.push('');
  }
  lines.push(
    'Details per area: [CPU profiles of these comparisons](#where-sluice-spends-its-time-in-the-peer-comparisons-benchpeers---profile), [core](#core-local--local-issue-2), [transforms](#transforms-through-the-runtime-issue-3), [connectors](#connectors-sluice-vs-rclone-issue-4), [scale-out](#scale-out-1-vs-4-workers-issue-6).',
    '',
    `Reproduce: \`npm run bench:peers\` (full, ~${Math.max(1, Math.round(minutes))} min here), \`-- --quick\` for a smoke run, \`-- --only ${Object.keys(COMPARISONS).join(',')}\` for some, \`-- --profile\` for the CPU breakdown.`,
  );
  writeSection('peers', lines.join('\n'));
  console.log(lines.join('\n'));
}
