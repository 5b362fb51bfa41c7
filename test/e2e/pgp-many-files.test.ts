/**
 * Many small files through the gpg engine with a passphrase-protected key (issue 16.6): one
 * GNUPGHOME, one key import and one agent per step instance for the whole run, shared by
 * files decrypting at once, removed at close; and that agent unlocks the key cheaply. Its
 * default S2K count (calibrated per machine: hundreds of millions here) cost 0.5–2 s per file.
 * Timings are measured by bench/peers.mjs (`--only pgp-small`), never asserted here. The files
 * go through gpg (`in_process_max: 0`): by default small ones are decrypted in-process first
 * (pgp-in-process.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { GpgHome } from '../../plugins/pgp/gpg.js';
import { testGpgHome } from '../helpers/gpg-keys.js';
import { makeWorkspace, sha256 } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-pgp-many-');
const home = ws.path('gnupg');
const PASSPHRASE = 'many-files-passphrase';
const FILES = 24;
const keys = testGpgHome(home);
const gpg = keys.gpg;

beforeAll(() => {
  ws.write(
    'key.asc',
    keys.secretKey(
      'm@example.com',
      'Key-Type: RSA\nKey-Length: 2048\nSubkey-Type: RSA\nSubkey-Length: 2048',
      PASSPHRASE,
    ),
  );
  mkdirSync(ws.path('in'));
  for (let i = 0; i < FILES; i++) {
    ws.write(`plain/f${i}.csv`, `id,value\n${i},${'x'.repeat(4000 + i)}\n`);
    gpg([
      '-r',
      'm@example.com',
      '-o',
      ws.path('in', `f${i}.csv.gpg`),
      '--encrypt',
      ws.path('plain', `f${i}.csv`),
    ]);
  }
}, 60_000);

afterAll(() => {
  keys.close();
  ws.cleanup();
});

const ourHomes = () => readdirSync(tmpdir()).filter((e) => e.startsWith(`sluice-gpg-${process.pid}-`));

describe('gpg engine, many small files', () => {
  it("a throwaway home's agent unlocks protected keys with the lowest S2K count", async () => {
    const gpgHome = await GpgHome.create();
    try {
      const answer = execFileSync(
        'gpg-connect-agent',
        ['--homedir', gpgHome.dir, 'GETINFO s2k_count', '/bye'],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
      expect(answer.split('\n')[0]).toBe('D 65536');
    } finally {
      await gpgHome.close();
    }
  });

  it(`decrypts ${FILES} files, 8 at a time, with one home and agent for the run, removed at close`, async () => {
    const file = ws.pipeline(
      `name: many\nsource:\n  local: { path: ./in }\nsteps:\n  - pgp_decrypt: { private_key_file: ./key.asc, passphrase: ${PASSPHRASE}, engine: gpg, in_process_max: 0 }\nsink:\n  local: { path: ./out }\npolicy:\n  concurrency: 8\n`,
    );
    const before = ourHomes();
    // Homes that exist while files are decrypting: sampled until the run ends.
    const seen = new Set<string>();
    const sampler = setInterval(() => {
      for (const h of ourHomes()) if (!before.includes(h)) seen.add(h);
    }, 5);
    let summary: Awaited<ReturnType<typeof runPipelineFile>>;
    try {
      summary = await runPipelineFile(file);
    } finally {
      clearInterval(sampler);
    }
    expect(summary.failures).toEqual([]);
    expect(summary.ok).toBe(FILES);
    for (let i = 0; i < FILES; i++) {
      expect(sha256(readFileSync(ws.path('out', `f${i}.csv`)))).toBe(
        sha256(readFileSync(ws.path('plain', `f${i}.csv`))),
      );
    }
    expect(seen.size).toBe(1);
    expect(ourHomes()).toEqual(before);
  }, 120_000);
});
