import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { SluiceError } from '../../core/errors.js';
import type { DecryptEngine, DecryptKeys, EncryptEngine, EncryptKeys } from './engines.js';
import {
  GpgHome,
  type GpgInput,
  type GpgResult,
  gpgFilter,
  gpgInto,
  hasStatus,
  READER_GONE,
  spawnGpg,
} from './gpg.js';
import type { SignatureOutcome } from './signatures.js';
import { offerLateVerdict } from './stream-gates.js';

/** gpg decrypted and the MDC matched: a non-zero exit then comes from signature checks only. */
function decryptedIntact(result: GpgResult): boolean {
  return (
    hasStatus(result, 'DECRYPTION_OKAY') &&
    hasStatus(result, 'GOODMDC') &&
    !hasStatus(result, 'DECRYPTION_FAILED') &&
    !hasStatus(result, 'BADMDC')
  );
}

/**
 * The message itself is bad (tampered, truncated, corrupt inside): what gpg reports after its
 * reader stopped early. Not a failed write (READER_GONE): that only says the reader stopped.
 */
function messageFailed(result: GpgResult): boolean {
  if (hasStatus(result, 'BADMDC')) return true;
  const said = result.messages.join('\n');
  if (/inflate problem|invalid packet|manipulated/i.test(said)) return true;
  return hasStatus(result, 'DECRYPTION_FAILED') && !READER_GONE.test(said);
}

/**
 * The plaintext to fd 1 (our pipe) through gpg's own 8 KiB output buffer: plain `--decrypt`
 * writes stdout in 4 KiB pieces, twice the writes into the pipe and twice the reads in Node (on
 * a 128 MiB message 0.59 → 0.47 s of Node CPU, bench/pgp-plumbing.mjs). `-&1` means fd 1 only
 * with `--enable-special-filenames`; without it gpg would create a file named `-&1`, so the two
 * always go together.
 */
export const TO_STDOUT_IN_BLOCKS = ['--enable-special-filenames', '--output', '-&1'];

const SIGNATURE_PROBLEMS = ['ERRSIG', 'BADSIG', 'EXPKEYSIG', 'REVKEYSIG', 'EXPSIG'];

/**
 * Reads signature results from gpg's status lines. A VALIDSIG counts only when its key (or
 * its primary key, the last field) is one of the configured verification keys: the home also
 * holds our own decryption key, whose signatures must not count.
 */
export function outcomeFromStatus(result: GpgResult, allowed: ReadonlySet<string>): SignatureOutcome {
  const outcome: SignatureOutcome = { good: [], bad: [], unknown: [] };
  // gpg reports a signature by a revoked key as REVKEYSIG *and* VALIDSIG (the mathematics
  // holds): such a signature is bad, never good (openpgp.js refuses it too).
  const revoked = result.status.filter(([k]) => k === 'REVKEYSIG').map(([, id]) => (id ?? '').toUpperCase());
  const byRevoked = (...fingerprints: string[]) =>
    revoked.some((id) => id !== '' && fingerprints.some((f) => f.endsWith(id)));
  for (const [keyword, ...args] of result.status) {
    if (keyword === 'VALIDSIG') {
      const primary = (args[9] ?? args[0]).toUpperCase();
      if (byRevoked(primary, args[0].toUpperCase())) continue;
      if (allowed.has(primary) || allowed.has(args[0].toUpperCase())) outcome.good.push(primary);
      else outcome.unknown.push(`signature by ${primary}, not a configured key`);
    } else if (keyword === 'BADSIG') {
      outcome.bad.push(`signature by key ${args[0]} does not match the data`);
    } else if (keyword === 'ERRSIG') {
      const reason = args[5] === '9' ? 'no public key' : `error ${args[5]}`;
      outcome.unknown.push(`signature by key ${args[0]} cannot be checked (${reason})`);
    } else if (keyword === 'REVKEYSIG') {
      outcome.bad.push(`signature by key ${args[0]}, which is revoked`);
    } else if (keyword === 'EXPKEYSIG' || keyword === 'EXPSIG') {
      outcome.unknown.push(`signature by key ${args[0]} is expired`);
    }
  }
  return outcome;
}

/**
 * Decrypts a message to our own key once, so a wrong passphrase is a clear config error when
 * the pipeline starts rather than a failure of every file.
 */
async function checkPassphrase(home: GpgHome, fingerprint: string): Promise<void> {
  const encrypt = spawnGpg(home.dir, ['--trust-model', 'always', '--encrypt', '-r', fingerprint], {});
  const chunks: Buffer[] = [];
  encrypt.child.stdout?.on('data', (c: Buffer) => chunks.push(c));
  encrypt.child.stdin?.end('probe');
  if ((await encrypt.done).code !== 0) return; // an encrypt-incapable key: nothing to probe
  const decrypt = spawnGpg(home.dir, ['--decrypt'], {});
  decrypt.child.stdin?.on('error', () => {});
  decrypt.child.stdin?.end(Buffer.concat(chunks));
  decrypt.child.stdout?.resume();
  if ((await decrypt.done).code !== 0) {
    throw new SluiceError('SLUICE_E_CONFIG', 'the passphrase does not unlock the private key', {
      context: { jsonPath: '/passphrase' },
      retryable: false,
    });
  }
}

export async function createGpgDecryptEngine(keys: DecryptKeys): Promise<DecryptEngine> {
  const home = await GpgHome.create();
  try {
    const [own] = await home.importKeys([keys.privateKey]);
    const allowed = new Set(await home.importKeys(keys.verificationKeys));
    const preset = keys.passphrase !== undefined && (await home.presetPassphrase(keys.passphrase));
    const passphrase = preset ? undefined : keys.passphrase;
    if (preset && own) await checkPassphrase(home, own);
    const args = [...(keys.verifying ? [] : ['--skip-verify']), ...TO_STDOUT_IN_BLOCKS, '--decrypt'];
    const verdict = {
      passphrase,
      what: 'PGP decryption',
      accept: (result: GpgResult) =>
        keys.verifying && decryptedIntact(result) && SIGNATURE_PROBLEMS.some((k) => hasStatus(result, k)),
    };
    const decrypt = (ciphertext: GpgInput) => {
      const { output, done, late } = gpgFilter(home.dir, args, ciphertext, {
        ...verdict,
        lateFailure: messageFailed,
      });
      return {
        plaintext: offerLateVerdict(output, late),
        inlineSignatures: async () => outcomeFromStatus(await done, allowed),
      };
    };
    return {
      decrypt,
      decryptFile: decrypt,
      decryptInto(ciphertext, fd, signal) {
        const { done, written } = gpgInto(home.dir, args, ciphertext, fd, { ...verdict, signal });
        return { written, inlineSignatures: async () => outcomeFromStatus(await done, allowed) };
      },

      async detachedVerifier(signature) {
        const sigPath = await home.writeFile(`detached-${randomUUID()}.sig`, signature);
        const { child, done } = spawnGpg(home.dir, ['--verify', sigPath, '-'], {});
        const stdin = child.stdin as Writable;
        stdin.on('error', () => {}); // gpg stops reading on a malformed signature; its status tells
        child.stdout?.resume();
        const finished = () => child.exitCode !== null || child.signalCode !== null;
        const cleanup = () => rm(sigPath, { force: true });
        return {
          async write(chunk) {
            if (finished() || stdin.write(chunk)) return;
            await new Promise<void>((resolve) => {
              stdin.once('drain', resolve);
              child.once('close', resolve);
            });
          },
          async end() {
            stdin.end();
            const result = await done.finally(cleanup);
            const outcome = outcomeFromStatus(result, allowed);
            if (
              result.code !== 0 &&
              outcome.good.length + outcome.bad.length + outcome.unknown.length === 0
            ) {
              outcome.bad.push(`detached signature unusable: ${result.messages.slice(-2).join('; ')}`);
            }
            return outcome;
          },
          abort() {
            child.kill();
            void cleanup();
          },
        };
      },

      async cheaplyProtectedKey() {
        // Every secret key of the home: the configured private key file's, all of them.
        // The passphrase on fd 3 even when it was preset: the agent asks again to export.
        const { child, done } = spawnGpg(home.dir, ['--export-secret-keys'], { passphrase: keys.passphrase });
        child.stdin?.end();
        const chunks: Buffer[] = [];
        child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
        const result = await done.catch(() => undefined);
        return result?.code === 0 && chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      },

      close: () => home.close(),
    };
  } catch (err) {
    await home.close();
    throw err;
  }
}

export async function createGpgEncryptEngine(keys: EncryptKeys): Promise<EncryptEngine> {
  const home = await GpgHome.create();
  try {
    const recipientArgs: string[] = [];
    for (const [i, key] of keys.recipients.entries()) {
      recipientArgs.push('--recipient-file', await home.writeFile(`recipient-${i}.key`, key));
    }
    const signArgs: string[] = [];
    if (keys.signingKey) {
      const [fingerprint] = await home.importKeys([keys.signingKey]);
      signArgs.push('--sign', '--local-user', fingerprint);
    }
    const args = [...(keys.armor ? ['--armor'] : []), ...recipientArgs, ...signArgs, '--encrypt'];
    return {
      encrypt: (plaintext: Readable) =>
        gpgFilter(home.dir, args, plaintext, {
          passphrase: keys.signingKey ? keys.passphrase : undefined,
          what: 'PGP encryption',
        }).output,
      close: () => home.close(),
    };
  } catch (err) {
    await home.close();
    throw err;
  }
}
