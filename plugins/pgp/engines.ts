/** The two PGP engines (GnuPG child process, openpgp.js) behind one interface. */
import type { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { type GpgFileInput, type GpgInput, isGpgAvailable } from './gpg.js';
import type { SignatureOutcome } from './signatures.js';
import type { ByteVerifier } from './stream-gates.js';

export const EngineField = Type.Union([Type.Literal('auto'), Type.Literal('gpg'), Type.Literal('openpgp')], {
  description:
    '`gpg` runs GnuPG as a child process (fastest: ~2–4× openpgp.js); `openpgp` uses openpgp.js in-process (no system dependency); `auto` picks gpg when it is on PATH.',
  default: 'auto',
});

export type EngineName = 'auto' | 'gpg' | 'openpgp';

export async function resolveEngine(engine: EngineName): Promise<'gpg' | 'openpgp'> {
  if (engine !== 'auto') return engine;
  return (await isGpgAvailable()) ? 'gpg' : 'openpgp';
}

export interface Decryption {
  plaintext: Readable;
  inlineSignatures(): Promise<SignatureOutcome>;
}

export interface DecryptEngine {
  /**
   * Decrypts a message (armored or binary). The plaintext stream ends only once the message's
   * integrity was checked; otherwise it errors. `inlineSignatures` resolves after that end.
   */
  decrypt(ciphertext: Readable): Decryption;
  /** gpg: the same, with gpg reading the local file itself. */
  decryptFile?(ciphertext: GpgFileInput): Decryption;
  /**
   * gpg: gpg writes the plaintext into `fd` (a file) itself. `written` resolves once it is all
   * there and intact (as the end of `decrypt`'s stream), and rejects otherwise.
   */
  decryptInto?(
    ciphertext: GpgInput,
    fd: number,
    signal?: AbortSignal,
  ): { written: Promise<void>; inlineSignatures(): Promise<SignatureOutcome> };
  /** A verifier of a detached signature over the bytes it is given (the encrypted file). */
  detachedVerifier(signature: Uint8Array): Promise<ByteVerifier<SignatureOutcome>>;
  /**
   * gpg: the private key as its throwaway home holds it — protected by the same passphrase with
   * the agent's low S2K count, so openpgp.js unlocks it in a millisecond instead of up to a
   * second for gpg's default count. Undefined when gpg cannot give it.
   */
  cheaplyProtectedKey?(): Promise<Buffer | undefined>;
  close(): Promise<void>;
}

export interface EncryptEngine {
  encrypt(plaintext: Readable): Readable;
  close(): Promise<void>;
}

export interface DecryptKeys {
  privateKey: Buffer;
  passphrase?: string;
  /** Keys whose signatures count; empty when signatures are not checked. */
  verificationKeys: Buffer[];
  verifying: boolean;
}

export interface EncryptKeys {
  recipients: Buffer[];
  armor: boolean;
  signingKey?: Buffer;
  passphrase?: string;
}
