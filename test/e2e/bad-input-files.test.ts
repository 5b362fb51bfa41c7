/**
 * Reliability corpus, part 2: bad PGP messages (made by real gpg), checksum companions, empty
 * files through every step kind, and hostile file names, each through a real run of the
 * runtime on local folders with `after_success: delete` beside good files. Listed case by case
 * in docs/reliability.md.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../core/runtime/runner.js';
import { runPipelineFile } from '../../core/sdk.js';
import { listFiles, makeWorkspace, sha256 } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-bad-files-');
const home = ws.path('gnupg');
const PASSPHRASE = 'corpus-key-passphrase-31415';

function gpg(args: string[]): Buffer {
  return execFileSync('gpg', ['--homedir', home, '--batch', '--yes', '--trust-model', 'always', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

afterAll(() => {
  execFileSync('gpgconf', ['--homedir', home, '--kill', 'all']);
  ws.cleanup();
});

// Our key (passphrase-protected) and another one, made by gpg (ed25519/cv25519: fast to generate).
beforeAll(() => {
  execFileSync('mkdir', ['-m', '700', home]);
  const params = (email: string, protection: string) =>
    `Key-Type: eddsa\nKey-Curve: ed25519\nSubkey-Type: ecdh\nSubkey-Curve: cv25519\nName-Real: K\nName-Email: ${email}\nExpire-Date: 0\n${protection}\n%commit\n`;
  ws.write('ours.params', params('ours@example.com', `Passphrase: ${PASSPHRASE}`));
  ws.write('other.params', params('other@example.com', '%no-protection'));
  // The passphrase on the command line as well (see secrets.test.ts).
  gpg(['--pinentry-mode', 'loopback', '--passphrase', PASSPHRASE, '--gen-key', ws.path('ours.params')]);
  gpg(['--gen-key', ws.path('other.params')]);
  ws.write(
    'keys/ours.asc',
    gpg([
      '--pinentry-mode',
      'loopback',
      '--passphrase',
      PASSPHRASE,
      '--armor',
      '--export-secret-keys',
      'ours@example.com',
    ]),
  );
}, 60_000);

function failureOf(s: RunSummary, path: string) {
  const f = s.failures.find((x) => x.path === path);
  expect(f, `no failure for ${path}: ${JSON.stringify(s.failures, null, 1)}`).toBeDefined();
  expect(f?.error).not.toMatch(/\n\s+at /);
  return f as RunSummary['failures'][number];
}

describe('PGP: tampered, wrong key, not PGP, empty', () => {
  const plain = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `${i},row ${i}\n`).join(''));
  const bad = [
    'tampered-middle.csv.gpg',
    'tampered-end.csv.gpg',
    'wrong-key.csv.gpg',
    'not-pgp.csv.gpg',
    'empty.csv.gpg',
  ];

  beforeAll(() => {
    ws.write('plain.csv', plain);
    for (const engine of ['gpg', 'openpgp']) {
      const dir = ws.path('pgp', engine, 'in');
      const enc = (out: string, to: string) =>
        gpg(['-r', to, '--compress-algo', 'none', '-o', `${dir}/${out}`, '-e', ws.path('plain.csv')]);
      execFileSync('mkdir', ['-p', dir]);
      enc('good.csv.gpg', 'ours@example.com');
      enc('wrong-key.csv.gpg', 'other@example.com');
      const good = readFileSync(`${dir}/good.csv.gpg`);
      const flip = (at: number) => {
        const copy = Buffer.from(good);
        copy[at] ^= 0x01;
        return copy;
      };
      writeFileSync(`${dir}/tampered-middle.csv.gpg`, flip(Math.floor(good.length / 2)));
      writeFileSync(`${dir}/tampered-end.csv.gpg`, flip(good.length - 5));
      writeFileSync(`${dir}/not-pgp.csv.gpg`, 'id,value\n1,this is a CSV, not an OpenPGP message\n');
      writeFileSync(`${dir}/empty.csv.gpg`, '');
    }
  }, 60_000);

  const expected: Record<string, Record<string, RegExp>> = {
    gpg: {
      'tampered-middle.csv.gpg':
        /^\[pgp-gpg steps\[0\]\.pgp_decrypt\] item "local:tampered-middle\.csv\.gpg": PGP decryption failed \(gpg\): .*(manipulated|invalid packet|decryption failed)/,
      'tampered-end.csv.gpg':
        /^\[pgp-gpg steps\[0\]\.pgp_decrypt\] item "local:tampered-end\.csv\.gpg": PGP decryption failed \(gpg\): .*manipulated/,
      'wrong-key.csv.gpg':
        /^\[pgp-gpg steps\[0\]\.pgp_decrypt\] item "local:wrong-key\.csv\.gpg": PGP decryption failed \(gpg\): decryption failed: No secret key/,
      'not-pgp.csv.gpg':
        /^\[pgp-gpg steps\[0\]\.pgp_decrypt\] item "local:not-pgp\.csv\.gpg": PGP decryption failed \(gpg\): no valid OpenPGP data found/,
      'empty.csv.gpg':
        /^\[pgp-gpg steps\[0\]\.pgp_decrypt\] item "local:empty\.csv\.gpg": PGP decryption failed \(gpg\): the input is empty$/,
    },
    openpgp: {
      'tampered-middle.csv.gpg':
        /^\[pgp-openpgp steps\[0\]\.pgp_decrypt\] item "local:tampered-middle\.csv\.gpg": PGP decryption failed \(openpgp\): .*(Modification detected|Error)/,
      'tampered-end.csv.gpg':
        /^\[pgp-openpgp steps\[0\]\.pgp_decrypt\] item "local:tampered-end\.csv\.gpg": PGP decryption failed \(openpgp\): Modification detected/,
      'wrong-key.csv.gpg':
        /^\[pgp-openpgp steps\[0\]\.pgp_decrypt\] item "local:wrong-key\.csv\.gpg": PGP decryption failed \(openpgp\): .*No decryption key packets found/,
      'not-pgp.csv.gpg':
        /^\[pgp-openpgp steps\[0\]\.pgp_decrypt\] item "local:not-pgp\.csv\.gpg": PGP decryption failed \(openpgp\): Misformed armored text/,
      'empty.csv.gpg':
        /^\[pgp-openpgp steps\[0\]\.pgp_decrypt\] item "local:empty\.csv\.gpg": PGP decryption failed \(openpgp\): the message is empty$/,
    },
  };

  for (const engine of ['gpg', 'openpgp'] as const) {
    it(`${engine} engine: each bad message fails with SLUICE_E_BAD_DATA, commits nothing, keeps its source; the good one goes through`, async () => {
      const file = ws.pipeline(
        `name: pgp-${engine}\nsource:\n  local: { path: ./in, after_success: delete }\nsteps:\n  - pgp_decrypt: { private_key_file: ../../keys/ours.asc, passphrase: "${PASSPHRASE}", engine: ${engine} }\nsink:\n  local: { path: ./out }\n`,
        `pgp/${engine}/pipeline.yaml`,
      );
      const s = await runPipelineFile(file);
      expect(s).toMatchObject({ ok: 1, failed: bad.length, retries: 0 });
      for (const name of bad) {
        const f = failureOf(s, name);
        expect(f.code, name).toBe('SLUICE_E_BAD_DATA');
        expect(f.error, name).toMatch(expected[engine][name]);
        expect(f.error).not.toContain(PASSPHRASE);
      }
      expect(listFiles(ws.path('pgp', engine, 'out'))).toEqual(['good.csv']);
      expect(sha256(readFileSync(ws.path('pgp', engine, 'out', 'good.csv')))).toBe(sha256(plain));
      expect(listFiles(ws.path('pgp', engine, 'in'))).toEqual([...bad].sort());
    }, 60_000);
  }
});

describe('checksum companions', () => {
  it('a mismatch, a missing companion and an unreadable companion fail; matching files (also empty ones) pass', async () => {
    ws.write('ck/in/good.csv', 'good\n');
    ws.write('ck/in/good.csv.sha256', `${sha256('good\n')}  good.csv\n`);
    ws.write('ck/in/empty.csv', '');
    ws.write('ck/in/empty.csv.sha256', `${sha256('')}  empty.csv\n`);
    ws.write('ck/in/mismatch.csv', 'tampered\n');
    ws.write('ck/in/mismatch.csv.sha256', `${sha256('original\n')}  mismatch.csv\n`);
    ws.write('ck/in/orphan.csv', 'no companion\n');
    ws.write('ck/in/garbled.csv', 'garbled companion\n');
    ws.write('ck/in/garbled.csv.sha256', 'this is not a checksum line\n');
    const file = ws.pipeline(
      'name: ck\nsource:\n  local: { path: ./in, after_success: delete }\nsteps:\n  - checksum: { expect: companion }\nsink:\n  local: { path: ./out }\n',
      'ck/pipeline.yaml',
    );
    const s = await runPipelineFile(file);
    expect(s).toMatchObject({ ok: 2, failed: 3 });
    const mismatch = failureOf(s, 'mismatch.csv');
    expect(mismatch.code).toBe('SLUICE_E_BAD_DATA');
    expect(mismatch.error).toBe(
      `[ck steps[0].checksum] item "local:mismatch.csv": sha256 mismatch: expected ${sha256('original\n')}, computed ${sha256('tampered\n')}`,
    );
    for (const name of ['orphan.csv', 'garbled.csv']) {
      const f = failureOf(s, name);
      expect(f.code).toBe('SLUICE_E_BAD_DATA');
      expect(f.error).toBe(
        `[ck steps[0].checksum] item "local:${name}": no expected sha256 for "${name}": no companion checksum file lists it`,
      );
    }
    expect(listFiles(ws.path('ck', 'out'))).toEqual(['empty.csv', 'good.csv']);
    // Delivered items went with their companions; failed items and theirs stay at the source.
    expect(listFiles(ws.path('ck', 'in'))).toEqual([
      'garbled.csv',
      'garbled.csv.sha256',
      'mismatch.csv',
      'mismatch.csv.sha256',
      'orphan.csv',
    ]);
  });
});

describe('empty (0-byte) files through every step kind', () => {
  it('a chain of every byte-transform and item step carries an empty file (and a small one) through unchanged', async () => {
    ws.write('empty/in/empty.txt', '');
    ws.write('empty/in/small.txt', 'small\n');
    ws.write('empty/pub.asc', gpg(['--armor', '--export', 'ours@example.com']));
    const file = ws.pipeline(
      `name: empty-chain
source:
  local: { path: ./in, after_success: delete }
steps:
  - set_meta: { kind: txt }
  - filter: { meta: { kind: txt }, max_size: 1KiB }
  - rename: { to: "renamed/{name}" }
  - checksum: { algorithm: sha256 }
  - compress: { format: gzip }
  - decompress: {}
  - compress: { format: brotli }
  - compress: { format: zstd }
  - pgp_encrypt: { public_key_files: [./pub.asc], engine: gpg }
  - pgp_decrypt: { private_key_file: ../keys/ours.asc, passphrase: "${PASSPHRASE}", engine: openpgp }
  - pgp_encrypt: { public_key_files: [./pub.asc], engine: openpgp }
  - pgp_decrypt: { private_key_file: ../keys/ours.asc, passphrase: "${PASSPHRASE}", engine: gpg }
  - segregate: { to: "{date:%Y}/{path}" }
sink:
  local: { path: ./out, verify: sha256 }
`,
      'empty/pipeline.yaml',
    );
    const s = await runPipelineFile(file);
    expect(s.failures).toEqual([]);
    expect(s.ok).toBe(2);
    const year = String(new Date().getUTCFullYear());
    // brotli and zstd outputs are not decompressed by `decompress` (gzip/tar/zip only): names keep .br.zst.
    expect(listFiles(ws.path('empty', 'out'))).toEqual([
      `${year}/renamed/empty.txt.br.zst`,
      `${year}/renamed/small.txt.br.zst`,
    ]);
    const unzstd = (name: string) =>
      execFileSync('sh', [
        '-c',
        `zstd -dc "${ws.path('empty', 'out', year, 'renamed', name)}" | node -e "process.stdin.pipe(require('zlib').createBrotliDecompress()).pipe(process.stdout)"`,
      ]);
    expect(unzstd('empty.txt.br.zst').length).toBe(0);
    expect(unzstd('small.txt.br.zst').toString()).toBe('small\n');
    expect(listFiles(ws.path('empty', 'in'))).toEqual([]);
  }, 60_000);

  it('an empty (or non-Parquet) file to parquet_optimize fails with a one-line message', async () => {
    ws.write('empty2/in/empty.parquet', '');
    ws.write('empty2/in/note.txt', 'not parquet either');
    const file = ws.pipeline(
      'name: empty-parquet\nsource:\n  local: { path: ./in, after_success: delete }\nsteps:\n  - parquet_optimize: {}\nsink:\n  local: { path: ./out }\n',
      'empty2/pipeline.yaml',
    );
    const s = await runPipelineFile(file);
    expect(s).toMatchObject({ ok: 0, failed: 2 });
    // Regression: DuckDB's multi-line error quoting the spool path used to be the message.
    expect(failureOf(s, 'empty.parquet')).toMatchObject({
      code: 'SLUICE_E_BAD_DATA',
      error:
        '[empty-parquet steps[0].parquet_optimize] item "local:empty.parquet": "empty.parquet" is not a Parquet file (0 bytes, the PAR1 marker is missing at its start or end)',
    });
    expect(failureOf(s, 'note.txt').error).toContain('"note.txt" is not a Parquet file (18 bytes');
    expect(listFiles(ws.path('empty2', 'out'))).toEqual([]);
    expect(listFiles(ws.path('empty2', 'in'))).toEqual(['empty.parquet', 'note.txt']);
  }, 60_000);
});

describe('file names', () => {
  const NAMES = [
    'pct%d%s.txt',
    '{brace.txt',
    'brace}.txt',
    '{meta.x}.txt',
    '{name}.txt',
    '%Y-%m-%d.txt',
    'with spaces  .txt',
    '-leading-dash.txt',
    '--rf.txt',
    'café-nfc.txt'.normalize('NFC'),
    'résumé-nfd.txt'.normalize('NFD'),
    '日本語.txt',
    `${'x'.repeat(251)}.txt`, // 255 bytes, the usual limit of one name
    '..dots.txt',
  ];

  beforeAll(() => {
    for (const n of NAMES) ws.write(`names/in/${n}`, `content of ${n}`);
    ws.write('names/in/new\nline.txt', 'newline');
  });

  it('copies every odd name byte for byte (NFC and NFD kept apart); a newline in a name fails that item only', async () => {
    const file = ws.pipeline(
      'name: names\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n',
      'names/copy.yaml',
    );
    const s = await runPipelineFile(file);
    expect(s).toMatchObject({ ok: NAMES.length, failed: 1 });
    // Reported by the source itself (a name it cannot represent safely), under an escaped display path.
    const nl = failureOf(s, 'new\\x0aline.txt');
    expect(nl.code).toBe('SLUICE_E_NAME');
    expect(nl.error).toMatch(/control character/);
    expect(nl.error).toContain('item "local:new\\x0aline.txt"'); // one error, one line
    expect(nl.error).not.toContain('\n');
    const out = readdirSync(ws.path('names', 'out')).filter((n) => n !== '.sluice-tmp');
    expect(out.map((n) => Buffer.from(n).toString('hex')).sort()).toEqual(
      NAMES.map((n) => Buffer.from(n).toString('hex')).sort(),
    );
    for (const n of NAMES) expect(readFileSync(ws.path('names', 'out', n), 'utf8')).toBe(`content of ${n}`);
  });

  it('renames them through a template without reading their braces or % as placeholders', async () => {
    const file = ws.pipeline(
      'name: names-rename\nsource:\n  local: { path: ./in }\nsteps:\n  - set_meta: { x: EVIL }\n  - rename: { to: "{dir}/{stem}-copy.{ext}" }\n  - segregate: { to: "{date:%Y}/{path}" }\nsink:\n  local: { path: ./renamed }\n',
      'names/rename.yaml',
    );
    const s = await runPipelineFile(file);
    const year = String(new Date().getUTCFullYear());
    // Regression: a rename step on a small local file used to fail with ENOENT (the runtime's
    // whole-file fast path read the renamed path at the source).
    const long = `${'x'.repeat(251)}.txt`;
    expect(s.failures.map((f) => f.path).sort()).toEqual(['new\\x0aline.txt', long].sort());
    // The 255-byte name grows past the file system's limit: that item fails at the sink, clearly.
    const tooLong = failureOf(s, long);
    expect(tooLong.code).toBe('SLUICE_E_SINK');
    expect(tooLong.error).toMatch(/ENAMETOOLONG/);
    const out = listFiles(ws.path('names', 'renamed'));
    expect(out).toContain(`${year}/{meta.x}-copy.txt`);
    expect(out).toContain(`${year}/{name}-copy.txt`);
    expect(out).toContain(`${year}/%Y-%m-%d-copy.txt`);
    expect(out).toContain(`${year}/pct%d%s-copy.txt`);
    expect(out).toContain(`${year}/${'résumé-nfd'.normalize('NFD')}-copy.txt`);
    expect(out).not.toContain(`${year}/EVIL-copy.txt`);
    expect(out).toHaveLength(NAMES.length - 1);
    expect(listFiles(ws.path('names', 'renamed', '.sluice-tmp'))).toEqual([]);
  });

  it('templates cannot take an item out of the sink root through meta values', async () => {
    ws.write('escape/in/a.txt', 'a');
    ws.write('escape/in/b.txt', 'b');
    const cases: Array<[string, string, RegExp]> = [
      [
        'set_meta: { d: "../../escape" }\n  - rename: { to: "{meta.d}/{name}" }',
        'SLUICE_E_DESTINATION',
        /rename of "a\.txt" with "\{meta\.d\}\/\{name\}" gives "\.\.\/\.\.\/escape\/a\.txt", which is not a safe relative path: it contains a "\.\." segment/,
      ],
      [
        'set_meta: { d: "/etc" }\n  - segregate: { to: "{meta.d}/{name}" }',
        'SLUICE_E_DESTINATION',
        /destination "\/etc\/a\.txt" is absolute; destinations are relative to the sink root/,
      ],
      [
        'rename: { to: "{meta.nope}/{name}" }',
        'SLUICE_E_TEMPLATE',
        /uses \{meta\.nope\} but item "a\.txt" has no meta "nope"/,
      ],
    ];
    for (const [i, [steps, code, message]] of cases.entries()) {
      const file = ws.pipeline(
        `name: escape-${i}\nsource:\n  local: { path: ./in, after_success: delete }\nsteps:\n  - ${steps}\nsink:\n  local: { path: ./out/sink }\n`,
        `escape/p${i}.yaml`,
      );
      const s = await runPipelineFile(file);
      expect(s).toMatchObject({ ok: 0, failed: 2 });
      expect(failureOf(s, 'a.txt').code).toBe(code);
      expect(failureOf(s, 'a.txt').error).toMatch(message);
    }
    // Nothing written anywhere (`../../escape` from out/sink would be escape/escape), sources kept.
    expect(listFiles(ws.path('escape')).filter((f) => !f.startsWith('.sluice/'))).toEqual([
      'in/a.txt',
      'in/b.txt',
      'p0.yaml',
      'p1.yaml',
      'p2.yaml',
    ]);
  });
});
