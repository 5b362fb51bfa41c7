/**
 * What the gpg engine says when a file fails (issue 15.8), through real runs of the runtime:
 * gpg's own reason and its failure status lines, never its closing "Unknown system error" and
 * never the passphrase; and a tampered PGP message followed by `decompress` is blamed on
 * `pgp_decrypt` every time. The garbage a tampered message decrypts to often breaks the gunzip
 * before gpg reaches the integrity check at the end, so which step noticed first was a race:
 * each case runs several times in one test to catch it. A sound PGP message holding a corrupt
 * gzip is still `decompress`'s failure.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../core/runtime/runner.js';
import { runPipelineFile } from '../../core/sdk.js';
import { testGpgHome } from '../helpers/gpg-keys.js';
import { listFiles, makeWorkspace, sha256 } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-pgp-messages-');
const home = ws.path('gnupg');
const PASSPHRASE = 'messages-key-passphrase-2718';
const keys = testGpgHome(home);
const gpg = keys.gpg;

/** CSV lines with pseudo-random values: gzip cannot shrink them to nothing. */
function csv(lines: number): Buffer {
  let x = 12345;
  const rows: string[] = [];
  for (let i = 0; i < lines; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    rows.push(`${i},${x},${(x % 9973) / 7},row ${i}\n`);
  }
  return Buffer.from(rows.join(''));
}

const plain = csv(2000);
const tampered: string[] = [];

beforeAll(() => {
  ws.write(
    'key.asc',
    keys.secretKey(
      'k@example.com',
      'Key-Type: eddsa\nKey-Curve: ed25519\nSubkey-Type: ecdh\nSubkey-Curve: cv25519',
      PASSPHRASE,
    ),
  );
  mkdirSync(ws.path('gz', 'in'), { recursive: true });
  mkdirSync(ws.path('plain', 'in'), { recursive: true });
  const encrypt = (data: Buffer, out: string, algo: string) => {
    ws.write('msg.tmp', data);
    gpg(['-r', 'k@example.com', '--compress-algo', algo, '-o', out, '--encrypt', ws.path('msg.tmp')]);
    return readFileSync(out);
  };
  for (const [size, data] of [
    ['small', gzipSync(plain)],
    ['large', gzipSync(csv(50_000))],
  ] as const) {
    for (const algo of ['none', 'zlib']) {
      const good = encrypt(data, ws.path(`${size}-${algo}.gpg`), algo);
      const at = { early: 600, quarter: good.length >> 2, middle: good.length >> 1, late: good.length - 300 };
      for (const [where, i] of Object.entries(at)) {
        const bad = Buffer.from(good);
        bad[i] ^= 0x01;
        const name = `${size}-${algo}-${where}.csv.gz.gpg`;
        writeFileSync(ws.path('gz', 'in', name), bad);
        tampered.push(name);
      }
    }
  }
  encrypt(gzipSync(plain), ws.path('gz', 'in', 'good.csv.gz.gpg'), 'none');
  const corruptGzip = gzipSync(plain);
  corruptGzip[corruptGzip.length >> 1] ^= 0x01;
  encrypt(corruptGzip, ws.path('gz', 'in', 'sound-pgp-corrupt-gzip.csv.gz.gpg'), 'none');
  writeFileSync(
    ws.path('plain', 'in', 'not-pgp.csv.gpg'),
    'id,value\n1,a CSV file, not an OpenPGP message\n',
  );
}, 60_000);

afterAll(() => {
  keys.close();
  ws.cleanup();
});

function failure(s: RunSummary, path: string) {
  const f = s.failures.find((x) => x.path === path);
  expect(f, `no failure for ${path}: ${JSON.stringify(s.failures, null, 1)}`).toBeDefined();
  return f as RunSummary['failures'][number];
}

const step = `pgp_decrypt: { private_key_file: ../key.asc, passphrase: "${PASSPHRASE}", engine: gpg }`;

describe('gpg engine messages', () => {
  it("says what gpg said about a file that is not PGP: its reason and status, not 'Unknown system error'", async () => {
    const file = ws.pipeline(
      `name: plain\nsource:\n  local: { path: ./in }\nsteps:\n  - ${step}\nsink:\n  local: { path: ./out }\n`,
      'plain/pipeline.yaml',
    );
    const s = await runPipelineFile(file);
    const f = failure(s, 'not-pgp.csv.gpg');
    expect(f.code).toBe('SLUICE_E_BAD_DATA');
    expect(f.error).toMatch(
      /^\[plain steps\[0\]\.pgp_decrypt\] item "local:not-pgp\.csv\.gpg": PGP decryption failed \(gpg\): no valid OpenPGP data found\.? \[gpg status: NODATA 1, NODATA 2, FAILURE decrypt \d+\]$/,
    );
    expect(f.error).not.toMatch(/Unknown system error/);
    expect(f.error).not.toContain(PASSPHRASE);
  });

  it('blames a tampered message on pgp_decrypt, not on the decompress after it, run after run', async () => {
    const file = ws.pipeline(
      `name: gz\nsource:\n  local: { path: ./in }\nsteps:\n  - ${step}\n  - decompress: {}\nsink:\n  local: { path: ./out }\npolicy:\n  concurrency: 4\n`,
      'gz/pipeline.yaml',
    );
    for (let run = 0; run < 6; run++) {
      const s = await runPipelineFile(file, { force: true });
      expect(s).toMatchObject({ ok: 1, failed: tampered.length + 1, retries: 0 });
      for (const name of tampered) {
        const f = failure(s, name);
        expect(`run ${run}: ${f.error}`).toMatch(
          new RegExp(
            `^run ${run}: \\[gz steps\\[0\\]\\.pgp_decrypt\\] item "local:${name.replaceAll('.', '\\.')}": PGP decryption failed \\(gpg\\): .*(manipulated|inflate problem|invalid packet).* \\[gpg status: [^\\]]*\\]$`,
          ),
        );
        expect(f.error).not.toMatch(/Broken pipe|Connection reset|Unknown system error/);
        expect(f.code).toBe('SLUICE_E_BAD_DATA');
      }
      const corrupt = failure(s, 'sound-pgp-corrupt-gzip.csv.gz.gpg');
      expect(corrupt.error).toMatch(
        /^\[gz steps\[1\]\.decompress\] item "sound-pgp-corrupt-gzip\.csv\.gz": .*not a valid gzip file/,
      );
      expect(listFiles(ws.path('gz', 'out'))).toEqual(['good.csv']);
      expect(sha256(readFileSync(ws.path('gz', 'out', 'good.csv')))).toBe(sha256(plain));
    }
  }, 180_000);
});
