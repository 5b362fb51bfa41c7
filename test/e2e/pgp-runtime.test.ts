/**
 * pgp_decrypt through the runtime with the gpg engine, where the pipeline lives in a deep
 * folder. Regression: the throwaway GNUPGHOME used to sit under the state folder, and a path
 * longer than gpg-agent's socket limit (108 bytes) made the key import fail.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { makeWorkspace, sha256 } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-pgp-rt-');
afterAll(() => {
  execFileSync('gpgconf', ['--homedir', ws.path('gnupg'), '--kill', 'all']);
  ws.cleanup();
});

describe('pgp_decrypt in a deep project folder', () => {
  it('decrypts with the gpg engine and leaves no GNUPGHOME behind', async () => {
    const home = ws.path('gnupg');
    execFileSync('mkdir', ['-m', '700', home]);
    ws.write(
      'key.params',
      'Key-Type: RSA\nKey-Length: 2048\nName-Real: T\nName-Email: t@example.com\nExpire-Date: 0\n%no-protection\n%commit\n',
    );
    execFileSync('gpg', ['--homedir', home, '--batch', '--gen-key', ws.path('key.params')], {
      stdio: 'ignore',
    });
    const key = execFileSync('gpg', [
      '--homedir',
      home,
      '--batch',
      '--armor',
      '--export-secret-keys',
      't@example.com',
    ]);
    const deep = join('a'.repeat(60), 'b'.repeat(60));
    ws.write(`${deep}/key.asc`, key);
    const plain = 'id,value\n'.repeat(5000);
    ws.write('plain.csv', plain);
    ws.write(`${deep}/in/report.csv.gpg`, '');
    execFileSync('gpg', [
      '--homedir',
      home,
      '--batch',
      '--yes',
      '--trust-model',
      'always',
      '-r',
      't@example.com',
      '-o',
      ws.path(deep, 'in', 'report.csv.gpg'),
      '--encrypt',
      ws.path('plain.csv'),
    ]);
    const file = ws.pipeline(
      'name: deep\nsource:\n  local: { path: ./in }\nsteps:\n  - pgp_decrypt: { private_key_file: ./key.asc, engine: gpg }\nsink:\n  local: { path: ./out }\n',
      `${deep}/deep.yaml`,
    );
    expect(ws.path(deep, '.sluice', 'tmp').length).toBeGreaterThan(108);
    const before = readdirSync(tmpdir()).filter((e) => e.startsWith(`sluice-gpg-${process.pid}-`));
    const summary = await runPipelineFile(file);
    expect(summary.failures).toEqual([]);
    expect(summary.ok).toBe(1);
    expect(sha256(readFileSync(ws.path(deep, 'out', 'report.csv')))).toBe(sha256(plain));
    expect(readdirSync(tmpdir()).filter((e) => e.startsWith(`sluice-gpg-${process.pid}-`))).toEqual(before);
  });
});
