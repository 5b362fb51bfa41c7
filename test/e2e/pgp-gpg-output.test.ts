/**
 * The gpg engine's plumbing (issue 16.6): gpg writes the plaintext to its fd 1 through its own
 * output buffer (`--enable-special-filenames --output -&1`) and the throwaway home's agent is
 * stopped with KILLAGENT over its socket. Messages of several MiB (many pipe buffers) decrypt to
 * the same bytes; tampered and truncated ones still fail, blamed on pgp_decrypt, with nothing
 * placed in the destination; gpg never creates a file named `-&1`; the agent is gone after close.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { GpgHome, killAgent } from '../../plugins/pgp/gpg.js';
import { testGpgHome } from '../helpers/gpg-keys.js';
import { listFiles, makeWorkspace, sha256 } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-pgp-output-');
const keys = testGpgHome(ws.path('gnupg'));

/** ~4 MiB of CSV with pseudo-random values (zlib shrinks it, but not to nothing). */
function csv(lines: number): Buffer {
  let x = 4242;
  const rows: string[] = [];
  for (let i = 0; i < lines; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    rows.push(`${i},${x},${(x % 9973) / 7},customer ${x % 1009},row ${i}\n`);
  }
  return Buffer.from(rows.join(''));
}

const plain = csv(90_000);

beforeAll(() => {
  ws.write(
    'key.asc',
    keys.secretKey('o@example.com', 'Key-Type: RSA\nKey-Length: 2048\nSubkey-Type: RSA\nSubkey-Length: 2048'),
  );
  mkdirSync(ws.path('in'));
  ws.write('plain.csv', plain);
  for (const algo of ['none', 'zlib']) {
    const out = ws.path('in', `good-${algo}.csv.gpg`);
    keys.gpg(['-r', 'o@example.com', '--compress-algo', algo, '-o', out, '--encrypt', ws.path('plain.csv')]);
    const good = readFileSync(out);
    const bad = Buffer.from(good);
    bad[good.length >> 1] ^= 0x01;
    writeFileSync(ws.path('in', `tampered-${algo}.csv.gpg`), bad);
    writeFileSync(ws.path('in', `truncated-${algo}.csv.gpg`), good.subarray(0, good.length - 4096));
  }
}, 60_000);

afterAll(() => {
  keys.close();
  ws.cleanup();
});

/** The pid of the agent serving `dir`, asked without starting one. */
function agentPid(dir: string): number {
  const answer = execFileSync(
    'gpg-connect-agent',
    ['--homedir', dir, '--no-autostart', 'GETINFO pid', '/bye'],
    {
      encoding: 'utf8',
    },
  );
  return Number(/^D (\d+)/m.exec(answer)?.[1]);
}

/** Whether `pid` still runs 5 s from now at the latest (the agent exits after its answer). */
async function stillRunning(pid: number): Promise<boolean> {
  const deadline = Date.now() + 5000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return alive(pid);
}

describe('gpg engine output and agent', () => {
  it('decrypts MiB-sized messages to the same bytes; tampered and truncated ones fail on pgp_decrypt and leave nothing', async () => {
    const file = ws.pipeline(
      'name: out\nsource:\n  local: { path: ./in }\nsteps:\n  - pgp_decrypt: { private_key_file: ./key.asc, engine: gpg }\nsink:\n  local: { path: ./out }\npolicy:\n  concurrency: 3\n',
    );
    const s = await runPipelineFile(file);
    expect(s).toMatchObject({ ok: 2, failed: 4, retries: 0 });
    const failed = new Map(s.failures.map((f) => [f.path, f]));
    for (const algo of ['none', 'zlib']) {
      expect(sha256(readFileSync(ws.path('out', `good-${algo}.csv`)))).toBe(sha256(plain));
      for (const kind of ['tampered', 'truncated']) {
        const f = failed.get(`${kind}-${algo}.csv.gpg`);
        expect(f?.code, JSON.stringify(s.failures, null, 1)).toBe('SLUICE_E_BAD_DATA');
        expect(f?.error).toMatch(
          new RegExp(
            `^\\[out steps\\[0\\]\\.pgp_decrypt\\] item "local:${kind}-${algo}\\.csv\\.gpg": PGP decryption failed \\(gpg\\): `,
          ),
        );
      }
    }
    // Only the two good files, nothing half-written, and no `-&1` file from a gpg that took the
    // name literally (its working folder is ours).
    expect(listFiles(ws.path('out'))).toEqual(['good-none.csv', 'good-zlib.csv']);
    expect(readdirSync(ws.path('out'))).toEqual(['good-none.csv', 'good-zlib.csv']);
    expect(existsSync(join(process.cwd(), '-&1'))).toBe(false);
    expect(existsSync(ws.path('-&1'))).toBe(false);
  }, 120_000);

  it("stops a home's agent with KILLAGENT over its socket, and says false where no agent listens", async () => {
    const home = await GpgHome.create();
    try {
      await home.importKeys([readFileSync(ws.path('key.asc'))]);
      const pid = agentPid(home.dir);
      expect(pid).toBeGreaterThan(0);
      expect(await killAgent(join(home.dir, 'S.gpg-agent'))).toBe(true);
      expect(await stillRunning(pid)).toBe(false);
      expect(await killAgent(join(home.dir, 'S.gpg-agent'))).toBe(false);
      expect(await killAgent(join(home.dir, 'no-such-socket'))).toBe(false);
    } finally {
      await home.close();
    }
    expect(existsSync(home.dir)).toBe(false);
  }, 60_000);

  it('close() leaves no agent running for the home', async () => {
    const home = await GpgHome.create();
    await home.importKeys([readFileSync(ws.path('key.asc'))]);
    const pid = agentPid(home.dir);
    await home.close();
    expect(await stillRunning(pid)).toBe(false);
    expect(existsSync(home.dir)).toBe(false);
  }, 60_000);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
