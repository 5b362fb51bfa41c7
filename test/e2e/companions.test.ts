/**
 * Companion files (`x.csv.sha256`, detached `x.gpg.sig` / `x.gpg.asc`) follow their file: the
 * source's after_success (delete / move_to) is applied to them once their file is finalized,
 * also when the item runs the way a cluster worker runs it (revived from its description).
 * A shared `SHA256SUMS` listing stays; failed items keep theirs.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../core/ledger/sqlite.js';
import { PipelineRunner } from '../../core/runtime/runner.js';
import { loadPipelineFile, runPipelineFile } from '../../core/sdk.js';
import { listFiles, makeWorkspace, sha256 } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-companions-');
const rows = (n: number) => `${Array.from({ length: n }, (_, i) => `${i},${i * 7}`).join('\n')}\n`;

afterAll(() => ws.cleanup());

/** Writes `<dir>/in` with per-file companions (one in a sub-folder) and a shared SHA256SUMS. */
function checksumDrop(dir: string): void {
  ws.write(`${dir}/in/a.csv`, rows(10));
  ws.write(`${dir}/in/a.csv.sha256`, `${sha256(rows(10))}  a.csv\n`);
  ws.write(`${dir}/in/sub/b.csv`, rows(20));
  ws.write(`${dir}/in/sub/b.csv.sha256`, `${sha256(rows(20))}\n`);
  // c and d are listed only in the shared SUMS (a in both): it must outlive every one of them.
  ws.write(`${dir}/in/c.csv`, rows(30));
  ws.write(`${dir}/in/d.csv`, rows(40));
  ws.write(
    `${dir}/in/SHA256SUMS`,
    [10, 30, 40].map((n, i) => `${sha256(rows(n))}  ${'acd'[i]}.csv`).join('\n'),
  );
  // A bad one: it fails, and it and its companion stay.
  ws.write(`${dir}/in/e.csv`, 'tampered\n');
  ws.write(`${dir}/in/e.csv.sha256`, `${sha256('original\n')}  e.csv\n`);
}

const checksumPipeline = (dir: string, after: string) =>
  ws.pipeline(
    `name: ${dir}\nsource:\n  local: { path: ./in, exclude: ["*.sha256"], after_success: ${after} }\nsteps:\n  - checksum: { expect: companion }\nsink:\n  local: { path: ./out }\n`,
    `${dir}/pipeline.yaml`,
  );

describe('checksum companions', () => {
  it('after_success: delete removes x.csv.sha256 with x.csv; SHA256SUMS and the failed item’s companion stay', async () => {
    checksumDrop('del');
    const summary = await runPipelineFile(checksumPipeline('del', 'delete'));
    expect(summary).toMatchObject({ ok: 4, failed: 1 });
    expect(listFiles(ws.path('del', 'out'))).toEqual(['a.csv', 'c.csv', 'd.csv', 'sub/b.csv']);
    expect(listFiles(ws.path('del', 'in'))).toEqual(['SHA256SUMS', 'e.csv', 'e.csv.sha256']);
  });

  it('after_success: move_to moves them beside their file, keeping the folder', async () => {
    checksumDrop('mv');
    const summary = await runPipelineFile(checksumPipeline('mv', '{ move_to: ./done }'));
    expect(summary).toMatchObject({ ok: 4, failed: 1 });
    expect(listFiles(ws.path('mv', 'done'))).toEqual([
      'a.csv',
      'a.csv.sha256',
      'c.csv',
      'd.csv',
      'sub/b.csv',
      'sub/b.csv.sha256',
    ]);
    expect(listFiles(ws.path('mv', 'in'))).toEqual(['SHA256SUMS', 'e.csv', 'e.csv.sha256']);
  });

  it('after_success: keep leaves every companion', async () => {
    checksumDrop('keep');
    await runPipelineFile(checksumPipeline('keep', 'keep'));
    expect(listFiles(ws.path('keep', 'in'))).toHaveLength(9);
  });

  it('the same when each item runs as a cluster worker runs it (revived from its description)', async () => {
    checksumDrop('worker');
    const def = await loadPipelineFile(checksumPipeline('worker', 'delete'));
    const ledger = await SqliteLedger.open(def.stateDir);
    const lister = new PipelineRunner(def, { ledger });
    const worker = new PipelineRunner(def, { ledger });
    const summary = worker.newSummary();
    try {
      for await (const listed of lister.list()) {
        await worker.processListed(await worker.reviveItem(PipelineRunner.describe(listed)), summary);
      }
    } finally {
      await lister.close();
      await worker.close();
      await ledger.close();
    }
    expect(summary).toMatchObject({ ok: 4, failed: 1 });
    expect(listFiles(ws.path('worker', 'in'))).toEqual(['SHA256SUMS', 'e.csv', 'e.csv.sha256']);
  });
});

describe('detached PGP signatures', () => {
  const home = ws.path('gnupg');
  const gpg = (args: string[]) =>
    execFileSync('gpg', ['--homedir', home, '--batch', '--yes', '--trust-model', 'always', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  beforeAll(() => {
    execFileSync('mkdir', ['-m', '700', home]);
    ws.write(
      'key.params',
      'Key-Type: eddsa\nKey-Curve: ed25519\nSubkey-Type: ecdh\nSubkey-Curve: cv25519\nName-Real: K\nName-Email: k@example.com\nExpire-Date: 0\n%no-protection\n%commit\n',
    );
    gpg(['--gen-key', ws.path('key.params')]);
    ws.write('keys/secret.asc', gpg(['--armor', '--export-secret-keys', 'k@example.com']));
    ws.write('keys/public.asc', gpg(['--armor', '--export', 'k@example.com']));
    for (const dir of ['verified', 'unverified']) {
      ws.write(`${dir}/plain.csv`, rows(500));
      execFileSync('mkdir', ['-p', ws.path(dir, 'in')]);
      for (const name of ['binary-sig', 'armored-sig', 'unsigned']) {
        gpg([
          '-r',
          'k@example.com',
          '-o',
          ws.path(dir, 'in', `${name}.csv.gpg`),
          '-e',
          ws.path(dir, 'plain.csv'),
        ]);
      }
      gpg([
        '-u',
        'k@example.com',
        '-o',
        ws.path(dir, 'in', 'binary-sig.csv.gpg.sig'),
        '--detach-sign',
        ws.path(dir, 'in', 'binary-sig.csv.gpg'),
      ]);
      gpg([
        '-u',
        'k@example.com',
        '--armor',
        '-o',
        ws.path(dir, 'in', 'armored-sig.csv.gpg.asc'),
        '--detach-sign',
        ws.path(dir, 'in', 'armored-sig.csv.gpg'),
      ]);
    }
  }, 60_000);

  afterAll(() => {
    execFileSync('gpgconf', ['--homedir', home, '--kill', 'all']);
  });

  const pgpPipeline = (dir: string, verify: string) =>
    ws.pipeline(
      `name: ${dir}\nsource:\n  local: { path: ./in, after_success: delete }\nsteps:\n  - pgp_decrypt: { private_key_file: ../keys/secret.asc, engine: openpgp${verify} }\nsink:\n  local: { path: ./out }\n`,
      `${dir}/pipeline.yaml`,
    );

  it('verified .sig and .gpg.asc companions are deleted with their file', async () => {
    const summary = await runPipelineFile(
      pgpPipeline(
        'verified',
        ', verify_signature: { public_key_files: [../keys/public.asc], required: false }',
      ),
    );
    expect(summary.failures).toEqual([]);
    expect(summary).toMatchObject({ ok: 3, failed: 0 });
    expect(listFiles(ws.path('verified', 'out'))).toEqual([
      'armored-sig.csv',
      'binary-sig.csv',
      'unsigned.csv',
    ]);
    expect(listFiles(ws.path('verified', 'in'))).toEqual([]);
  });

  it('without verify_signature a .sig (never an item) still goes with its file; a .gpg.asc is an item of its own', async () => {
    const summary = await runPipelineFile(pgpPipeline('unverified', ''));
    // armored-sig.csv.gpg.asc is read as an armored message here: not one, so it fails and stays.
    expect(summary).toMatchObject({ ok: 3, failed: 1 });
    expect(summary.failures.map((f) => f.path)).toEqual(['armored-sig.csv.gpg.asc']);
    expect(listFiles(ws.path('unverified', 'in'))).toEqual(['armored-sig.csv.gpg.asc']);
  });
});
