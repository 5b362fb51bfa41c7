/**
 * The gpg engine's small messages (issue 16.6, in-process.ts): decrypted in-process by
 * openpgp.js, without a gpg process per file, and gpg decides every message openpgp.js does
 * not decrypt cleanly — one it cannot (Camellia), a tampered one, one whose plaintext is beyond
 * what an in-process attempt holds. gpg's invocations are counted through a wrapper first on PATH.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { createGpgDecryptEngine } from '../../plugins/pgp/gpg-engine.js';
import { IN_PROCESS_PLAINTEXT_MAX } from '../../plugins/pgp/in-process.js';
import { testGpgHome } from '../helpers/gpg-keys.js';
import { listFiles, makeWorkspace, sha256File } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-pgp-inproc-');
const keys = testGpgHome(ws.path('gnupg'));
const PASSPHRASE = 'in-process-passphrase';
const calls = ws.path('gpg-calls.log');
const originalPath = process.env.PATH;

/** gpg's decryptions of messages since the last reset (not the start's passphrase probe). */
const decryptions = () =>
  existsSync(calls)
    ? readFileSync(calls, 'utf8')
        .split('\n')
        .filter((line) => / --output -&1 --decrypt$/.test(line)).length
    : 0;

function encrypt(plain: string, out: string, extra: string[] = []) {
  keys.gpg(['-r', 'p@example.com', ...extra, '-o', ws.path('in', out), '--encrypt', ws.path('plain', plain)]);
}

function pipeline(extra = ''): string {
  return ws.write(
    `p-${Math.random().toString(36).slice(2)}.yaml`,
    `name: inproc\nsource:\n  local: { path: ./in }\nsteps:\n  - pgp_decrypt: { private_key_file: ./key.asc, passphrase: ${PASSPHRASE}, engine: gpg${extra} }\nsink:\n  local: { path: ./out }\npolicy:\n  concurrency: 4\n`,
  );
}

beforeAll(() => {
  ws.write(
    'key.asc',
    keys.secretKey(
      'p@example.com',
      'Key-Type: RSA\nKey-Length: 2048\nSubkey-Type: RSA\nSubkey-Length: 2048',
      PASSPHRASE,
    ),
  );
  mkdirSync(ws.path('plain'));
  mkdirSync(ws.path('bin'));
  const realGpg = execFileSync('sh', ['-c', 'command -v gpg'], { encoding: 'utf8' }).trim();
  const wrapper = ws.path('bin', 'gpg');
  writeFileSync(wrapper, `#!/bin/sh\necho "$*" >> '${calls}'\nexec '${realGpg}' "$@"\n`);
  chmodSync(wrapper, 0o755);
  process.env.PATH = `${ws.path('bin')}${delimiter}${originalPath}`;
}, 60_000);

beforeEach(() => {
  for (const dir of ['in', 'out', 'state']) rmSync(ws.path(dir), { recursive: true, force: true });
  mkdirSync(ws.path('in'));
});

afterAll(() => {
  process.env.PATH = originalPath;
  keys.close();
  ws.cleanup();
});

/** Runs the pipeline, with gpg's invocation log started afresh (the test's own encryptions out). */
function run(file: string) {
  rmSync(calls, { force: true });
  return runPipelineFile(file, { stateDir: ws.path('state') });
}

describe('gpg engine, small messages in-process first', () => {
  it('decrypts small messages without a gpg process for any of them', async () => {
    for (let i = 0; i < 6; i++) {
      ws.write(`plain/f${i}.csv`, `id,value\n${i},${'y'.repeat(3000 + i)}\n`);
      encrypt(`f${i}.csv`, `f${i}.csv.gpg`, i % 2 ? ['--armor'] : []);
    }
    const summary = await run(pipeline());
    expect(summary.failures).toEqual([]);
    expect(summary.ok).toBe(6);
    for (let i = 0; i < 6; i++)
      expect(sha256File(ws.path('out', `f${i}.csv`))).toBe(sha256File(ws.path('plain', `f${i}.csv`)));
    expect(decryptions()).toBe(0);
  });

  it('leaves a message openpgp.js cannot decrypt (Camellia) to gpg, which does', async () => {
    ws.write('plain/c.csv', `id\n${'c'.repeat(2000)}\n`);
    encrypt('c.csv', 'c.csv.gpg', ['--cipher-algo', 'CAMELLIA256']);
    ws.write('plain/a.csv', `id\n${'a'.repeat(2000)}\n`);
    encrypt('a.csv', 'a.csv.gpg');
    const summary = await run(pipeline());
    expect(summary.failures).toEqual([]);
    expect(sha256File(ws.path('out', 'c.csv'))).toBe(sha256File(ws.path('plain', 'c.csv')));
    expect(sha256File(ws.path('out', 'a.csv'))).toBe(sha256File(ws.path('plain', 'a.csv')));
    expect(decryptions()).toBe(1);
  });

  it("a tampered small message fails on gpg's verdict and leaves nothing", async () => {
    ws.write('plain/t.csv', `id\n${'t'.repeat(5000)}\n`);
    encrypt('t.csv', 't.csv.gpg', ['--compress-algo', 'none']);
    const bytes = readFileSync(ws.path('in', 't.csv.gpg'));
    bytes[bytes.length - 100] ^= 0x01;
    writeFileSync(ws.path('in', 't.csv.gpg'), bytes);
    const summary = await run(pipeline());
    expect(summary.ok).toBe(0);
    expect(summary.failures).toHaveLength(1);
    expect(summary.failures[0].error).toMatch(/\(gpg\).*manipulated/);
    expect(listFiles(ws.path('out'))).toEqual([]);
    expect(decryptions()).toBe(1);
  });

  it('leaves a small message that inflates beyond what an attempt holds to gpg', async () => {
    // Zeros compress about a thousandfold: a message of a few tens of KiB.
    writeFileSync(ws.path('plain', 'z.bin'), Buffer.alloc(IN_PROCESS_PLAINTEXT_MAX + 1024 * 1024));
    encrypt('z.bin', 'z.bin.gpg', ['--compress-algo', 'zlib', '-z', '9']);
    expect(readFileSync(ws.path('in', 'z.bin.gpg')).length).toBeLessThan(256 * 1024);
    const summary = await run(pipeline());
    expect(summary.failures).toEqual([]);
    expect(sha256File(ws.path('out', 'z.bin'))).toBe(sha256File(ws.path('plain', 'z.bin')));
    expect(decryptions()).toBe(1);
  }, 60_000);

  it('leaves armor of two joined messages to gpg, which refuses it (openpgp.js reads only the first)', async () => {
    ws.write('plain/j1.csv', `id\n${'1'.repeat(1000)}\n`);
    ws.write('plain/j2.csv', `id\n${'2'.repeat(1000)}\n`);
    encrypt('j1.csv', 'j1.asc', ['--armor']);
    encrypt('j2.csv', 'j2.asc', ['--armor']);
    const joined = Buffer.concat([
      readFileSync(ws.path('in', 'j1.asc')),
      readFileSync(ws.path('in', 'j2.asc')),
    ]);
    rmSync(ws.path('in', 'j1.asc'));
    rmSync(ws.path('in', 'j2.asc'));
    writeFileSync(ws.path('in', 'joined.csv.asc'), joined);
    const summary = await run(pipeline());
    expect(summary.ok).toBe(0);
    expect(summary.failures).toHaveLength(1);
    expect(summary.failures[0].error).toMatch(/\(gpg\)/);
    expect(listFiles(ws.path('out'))).toEqual([]);
    expect(decryptions()).toBe(1);
  });

  it('decrypts a signed small message in-process when signatures are not checked', async () => {
    ws.write('plain/s.csv', `id\n${'s'.repeat(3000)}\n`);
    encrypt('s.csv', 's.csv.gpg', ['--pinentry-mode', 'loopback', '--passphrase', PASSPHRASE, '--sign']);
    const summary = await run(pipeline());
    expect(summary.failures).toEqual([]);
    expect(sha256File(ws.path('out', 's.csv'))).toBe(sha256File(ws.path('plain', 's.csv')));
    expect(decryptions()).toBe(0);
  });

  it('fails a signature by a key revoked since, on either path (gpg also reports it VALIDSIG)', async () => {
    keys.secretKey('r@example.com', 'Key-Type: RSA\nKey-Length: 2048');
    ws.write('plain/r.csv', 'id\n1\n');
    keys.gpg([
      '-u',
      'r@example.com',
      '-r',
      'p@example.com',
      '-o',
      ws.path('in', 'r.csv.gpg'),
      '--sign',
      '--encrypt',
      ws.path('plain', 'r.csv'),
    ]);
    const fpr = keys
      .gpg(['--with-colons', '--list-keys', 'r@example.com'])
      .toString()
      .split('\n')
      .find((line) => line.startsWith('fpr'))!
      .split(':')[9];
    // gpg writes a revocation certificate for every key it makes, its first line escaped.
    const cert = readFileSync(ws.path('gnupg', 'openpgp-revocs.d', `${fpr}.rev`), 'utf8');
    writeFileSync(ws.path('rev.asc'), cert.replace(/^:-----BEGIN/m, '-----BEGIN'));
    keys.gpg(['--import', ws.path('rev.asc')]);
    writeFileSync(ws.path('revoked.asc'), keys.gpg(['--armor', '--export', 'r@example.com']));
    for (const extra of ['', ', in_process_max: 0']) {
      rmSync(ws.path('state'), { recursive: true, force: true });
      const summary = await run(
        pipeline(`${extra}, verify_signature: { public_key_files: [./revoked.asc], required: true }`),
      );
      expect(summary.ok).toBe(0);
      expect(summary.failures[0]?.error).toMatch(/revoked/);
      expect(listFiles(ws.path('out'))).toEqual([]);
    }
  });

  it("takes the key as gpg's home holds it: re-protected with the agent's low S2K count", async () => {
    const engine = await createGpgDecryptEngine({
      privateKey: readFileSync(ws.path('key.asc')),
      passphrase: PASSPHRASE,
      verificationKeys: [],
      verifying: false,
    });
    try {
      const key = await engine.cheaplyProtectedKey!();
      expect(key).toBeDefined();
      writeFileSync(ws.path('exported.gpg'), key!);
      const packets = keys.gpg(['--list-packets', ws.path('exported.gpg')]).toString();
      // The user's file keeps gpg's calibrated count (millions); the copy unlocks in a millisecond.
      const counts = [...packets.matchAll(/protect count: (\d+)/g)].map((m) => Number(m[1]));
      expect(counts.length).toBeGreaterThan(0);
      expect(counts.every((c) => c <= 65536)).toBe(true);
      const original = keys.gpg(['--list-packets', ws.path('key.asc')]).toString();
      expect(Number(/protect count: (\d+)/.exec(original)?.[1])).toBeGreaterThan(65536);
    } finally {
      await engine.close();
    }
  });

  it('in_process_max: 0 sends every message through gpg', async () => {
    for (let i = 0; i < 3; i++) {
      ws.write(`plain/g${i}.csv`, `id\n${i}\n`);
      encrypt(`g${i}.csv`, `g${i}.csv.gpg`);
    }
    const summary = await run(pipeline(', in_process_max: 0'));
    expect(summary.failures).toEqual([]);
    expect(summary.ok).toBe(3);
    expect(decryptions()).toBe(3);
  });
});
