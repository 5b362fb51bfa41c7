/** A throwaway GnuPG home for tests, whose keys are made by gpg itself. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestGpgHome {
  /** Runs gpg on this home (batch, trusting every key) and returns its stdout. */
  gpg(args: string[]): Buffer;
  /**
   * Makes a key from gpg `--gen-key` parameters (`Key-Type: …` lines, without `%commit`) with
   * `passphrase` (none when undefined) and returns its secret key, armored.
   */
  secretKey(email: string, params: string, passphrase?: string): Buffer;
  /** Stops the home's agent. */
  close(): void;
}

export function testGpgHome(dir: string): TestGpgHome {
  mkdirSync(dir, { mode: 0o700 });
  const gpg = (args: string[]) =>
    execFileSync('gpg', ['--homedir', dir, '--batch', '--yes', '--trust-model', 'always', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  return {
    gpg,
    secretKey(email, params, passphrase) {
      const file = join(dir, `${email}.params`);
      const protection = passphrase === undefined ? '%no-protection' : `Passphrase: ${passphrase}`;
      writeFileSync(
        file,
        `${params}\nName-Real: T\nName-Email: ${email}\nExpire-Date: 0\n${protection}\n%commit\n`,
      );
      const loopback = ['--pinentry-mode', 'loopback', '--passphrase', passphrase ?? ''];
      gpg([...loopback, '--gen-key', file]);
      return gpg([...loopback, '--armor', '--export-secret-keys', email]);
    },
    close: () => execFileSync('gpgconf', ['--homedir', dir, '--kill', 'all']),
  };
}
