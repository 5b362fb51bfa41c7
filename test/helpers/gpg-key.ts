/**
 * A PGP key made by real GnuPG in its own home folder, for tests that encrypt what a provider
 * would drop: `encrypt` to the key, `gpg` for anything else (signing), and the secret key
 * exported (armored) to `secretKeyFile` for the pipeline's `pgp_decrypt`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface GpgKey {
  email: string;
  /** The armored secret key, protected by the passphrase. */
  secretKeyFile: string;
  gpg(args: string[], input?: Buffer): Buffer;
  /** Encrypted to the key (binary unless `extra` says `--armor`). */
  encrypt(plain: Buffer, extra?: string[]): Buffer;
}

export function makeGpgKey(dir: string, who: { name: string; email: string; passphrase: string }): GpgKey {
  const home = join(dir, 'gnupg');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const gpg = (args: string[], input?: Buffer) =>
    execFileSync(
      'gpg',
      [
        '--homedir',
        home,
        '--batch',
        '--yes',
        '--pinentry-mode',
        'loopback',
        '--passphrase',
        who.passphrase,
        ...args,
      ],
      { input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 },
    );
  const params = join(dir, 'keyparams');
  writeFileSync(
    params,
    `Key-Type: eddsa\nKey-Curve: ed25519\nSubkey-Type: ecdh\nSubkey-Curve: cv25519\nName-Real: ${who.name}\nName-Email: ${who.email}\nPassphrase: ${who.passphrase}\nExpire-Date: 0\n%commit\n`,
  );
  gpg(['--gen-key', params]);
  const secretKeyFile = join(dir, 'secret-key.asc');
  writeFileSync(secretKeyFile, gpg(['--armor', '--export-secret-keys', who.email]));
  return {
    email: who.email,
    secretKeyFile,
    gpg,
    encrypt: (plain, extra = []) =>
      gpg(['--trust-model', 'always', '--recipient', who.email, ...extra, '--encrypt'], plain),
  };
}
