#!/usr/bin/env node
// Listing at scale (issue 16.7): one SFTP folder of N empty files, served by the test sshd,
// listed by Sluice and by `rclone lsf` through the same server. Whole processes, wall time and
// peak RSS (bench/lib/measure.py), at two sizes to show whether memory grows with the folder.
//
// Sluice lists with `sluice run` of a pipeline whose `include` matches no file: the source is
// walked and every entry goes through the runtime's listing (filters, once-per-pass) but
// nothing is transferred and nothing is kept per item — the closest to `rclone lsf`, which
// prints the names. (`sluice plan` would also list, but it keeps every item for its report.)
//
// Usage: npm run build && node bench/listing.mjs [--quick] [--sizes 20000,200000] [--rounds 1]
// bench/peers.mjs imports listingVsRclone.
import { chownSync, closeSync, mkdirSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchDir, fmt, has, isMain, machine, measure, median, runSluice } from './lib/common.mjs';
import { rcloneSftpSource, startSshd } from './lib/servers.mjs';

const data = join(benchDir, 'data', 'listing');

/** `count` empty files `f-<i>.dat` in `abs` (made or completed: a folder bigger than asked is cut). */
function fillFolder(abs, count, uid, gid) {
  mkdirSync(abs, { recursive: true });
  const have = new Set(readdirSync(abs));
  const name = (i) => `f-${String(i).padStart(7, '0')}.dat`;
  for (const n of have) {
    const i = Number(n.slice(2, 9));
    if (!(i < count)) rmSync(join(abs, n), { force: true });
  }
  for (let i = 0; i < count; i++) if (!have.has(name(i))) closeSync(openSync(join(abs, name(i)), 'w'));
  // Only the folder needs to be the server user's: listing needs read access to the files.
  chownSync(abs, uid, gid);
}

/**
 * Lists `sizes` files in one SFTP folder with Sluice and `rclone lsf`, `rounds` times each
 * (alternated, after one warm-up of each): for every size { count, sluice, rclone } with the
 * median wall_s and max_rss_kib of each.
 */
export async function listingVsRclone({ sizes, rounds = 1 }) {
  if (!has('rclone')) throw new Error('rclone is required (apt-get install rclone)');
  rmSync(data, { recursive: true, force: true });
  mkdirSync(data, { recursive: true });
  const sshd = await startSshd();
  const rcloneEnv = rcloneSftpSource(sshd);
  const results = [];
  try {
    const abs = join(sshd.rootDir, 'many');
    for (const count of [...sizes].sort((a, b) => a - b)) {
      fillFolder(abs, count, sshd.uid, sshd.gid);
      const file = join(data, `list-${count}.yaml`);
      writeFileSync(
        file,
        [
          `name: list-${count}`,
          'source:',
          '  sftp:',
          ...sshd.sftpYaml(),
          `    path: ${abs}`,
          "    include: ['nothing-is-named-like-this']",
          'sink:',
          `  local: { path: ${join(data, 'out')} }`,
          '',
        ].join('\n'),
      );
      const ours = () => runSluice(file, join(data, 'state'));
      const theirs = () => measure('rclone', ['lsf', `src:${abs}`], { env: rcloneEnv });
      ours();
      theirs();
      const runs = { sluice: [], rclone: [] };
      for (let r = 0; r < rounds; r++) {
        runs.sluice.push(ours());
        runs.rclone.push(theirs());
      }
      const mid = (xs) => ({
        wall_s: median(xs.map((m) => m.wall_s)),
        max_rss_kib: median(xs.map((m) => m.max_rss_kib)),
        walls: xs.map((m) => m.wall_s),
      });
      results.push({ count, sluice: mid(runs.sluice), rclone: mid(runs.rclone) });
    }
  } finally {
    await sshd.stop();
    rmSync(data, { recursive: true, force: true });
  }
  return results;
}

async function main() {
  const args = process.argv.slice(2);
  const at = (flag) => {
    const i = args.indexOf(flag);
    return i < 0 ? undefined : args[i + 1];
  };
  const quick = args.includes('--quick');
  const sizes = (at('--sizes') ?? (quick ? '2000,20000' : '20000,200000')).split(',').map(Number);
  const rounds = Number(at('--rounds') ?? (quick ? 1 : 3));
  console.log(`${machine()}; sizes ${sizes.join(', ')}, ${rounds} round(s)`);
  const results = await listingVsRclone({ sizes, rounds });
  const mib = (kib) => `${fmt(kib / 1024, 0)} MiB`;
  console.log('| files | Sluice | rclone lsf | ratio (rclone ÷ Sluice wall) | peak RSS Sluice / rclone |');
  console.log('|---:|---:|---:|---:|---:|');
  for (const { count, sluice, rclone } of results)
    console.log(
      `| ${count.toLocaleString('en')} | ${fmt(sluice.wall_s)} s (${sluice.walls.map((w) => fmt(w)).join(', ')}) | ${fmt(rclone.wall_s)} s (${rclone.walls.map((w) => fmt(w)).join(', ')}) | ${fmt(rclone.wall_s / sluice.wall_s)} | ${mib(sluice.max_rss_kib)} / ${mib(rclone.max_rss_kib)} |`,
    );
  console.log(`load at end ${machine().split('load avg at start ')[1]}`);
}

if (isMain(import.meta.url)) await main();
