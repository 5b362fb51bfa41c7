/**
 * The gpg engine's small messages, decrypted in this process by openpgp.js (issue 16.6).
 *
 * A gpg process per file costs more than the decryption of a small file: a fork of this process
 * (its cost grows with its memory), gpg's start, its keyring and a round trip to the agent —
 * about 30 ms a file here, against a few for openpgp.js, which does the RSA operation through
 * Node's crypto. So a message of at most `in_process_max` bytes is tried in-process first, and
 * gpg decides every message that attempt does not decrypt cleanly: openpgp.js refusing it (an
 * algorithm it lacks, such as bzip2 compression; a tampered or truncated message; a wrong key),
 * a signature it does not call good, armor of several blocks (which openpgp.js reads only the
 * first of), or plaintext beyond IN_PROCESS_PLAINTEXT_MAX (a small message may inflate a lot). What is delivered is therefore either openpgp.js's plaintext of a
 * message whose integrity it checked to the end, or exactly what gpg alone would have given.
 */
import { Readable } from 'node:stream';
import type { DecryptEngine, DecryptKeys } from './engines.js';
import { noSignatures, type SignatureOutcome } from './signatures.js';

/**
 * The most plaintext one in-process attempt holds in memory before leaving the message to gpg
 * (per file: 16 files at once hold at most 16 × this).
 */
export const IN_PROCESS_PLAINTEXT_MAX = 8 * 1024 * 1024;

const ARMOR_BEGIN = Buffer.from('-----BEGIN PGP');

/**
 * Armor holding more than one block (two messages joined, a message and a signature): openpgp.js
 * reads the first block and ignores the rest, where gpg refuses "multiple plaintexts". Such a
 * message is gpg's to judge. Binary messages (first byte with the top bit set) are read whole by
 * both.
 */
function severalArmorBlocks(message: Buffer): boolean {
  if (message.length === 0 || (message[0] & 0x80) !== 0) return false;
  const first = message.indexOf(ARMOR_BEGIN);
  return first >= 0 && message.indexOf(ARMOR_BEGIN, first + 1) >= 0;
}

export interface DecryptedInProcess {
  plaintext: Buffer;
  signatures: SignatureOutcome;
}

/** A stream of `bytes` (not object mode: the engines read it as bytes). */
export const bytesStream = (bytes: Buffer): Readable => Readable.from([bytes], { objectMode: false });

export class InProcessFirst {
  private constructor(
    private readonly engine: DecryptEngine,
    /** Signatures are judged (verify_signature): else they are not read, as gpg --skip-verify. */
    private readonly verifying: boolean,
  ) {}

  /**
   * openpgp.js with the step's keys; undefined when it cannot use them (a key type or
   * protection it lacks, a stub of gpg's): then gpg decrypts every message, and gpg's own start
   * says whether the passphrase is right.
   */
  static async create(
    keys: DecryptKeys,
    /** The same key, cheaper to unlock (gpg's copy: engines.ts cheaplyProtectedKey). */
    cheaper?: Promise<Buffer | undefined>,
  ): Promise<InProcessFirst | undefined> {
    let openpgp: typeof import('./openpgp-engine.js');
    try {
      openpgp = await import('./openpgp-engine.js');
    } catch {
      return undefined;
    }
    const key = await cheaper?.catch(() => undefined);
    for (const privateKey of key ? [key, keys.privateKey] : [keys.privateKey]) {
      try {
        return new InProcessFirst(
          await openpgp.createOpenpgpDecryptEngine({ ...keys, privateKey }),
          keys.verifying,
        );
      } catch {
        // The other form of the key, or none: gpg decrypts every message.
      }
    }
    return undefined;
  }

  /**
   * openpgp.js's plaintext of `message` and its signatures' verdicts, when it decrypted it to
   * the end (integrity checked) within the cap and called every signature good; else undefined.
   */
  async decrypt(message: Buffer): Promise<DecryptedInProcess | undefined> {
    if (severalArmorBlocks(message)) return undefined;
    const { plaintext, inlineSignatures } = this.engine.decrypt(bytesStream(message));
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of plaintext) {
        size += (chunk as Buffer).length;
        if (size > IN_PROCESS_PLAINTEXT_MAX) {
          plaintext.destroy();
          return undefined;
        }
        chunks.push(chunk as Buffer);
      }
    } catch {
      return undefined;
    }
    if (!this.verifying) return { plaintext: Buffer.concat(chunks, size), signatures: noSignatures() };
    const signatures = await inlineSignatures();
    if (signatures.bad.length > 0 || signatures.unknown.length > 0) return undefined;
    return { plaintext: Buffer.concat(chunks, size), signatures };
  }

  close(): Promise<void> {
    return this.engine.close();
  }
}
