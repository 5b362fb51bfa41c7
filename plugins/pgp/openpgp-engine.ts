/**
 * openpgp.js engine. Streaming needs `allowUnauthenticatedStream: true`: without it openpgp v6
 * buffers the whole message to check its integrity (MDC / AEAD tag) before releasing a byte
 * (a 200 MB file took ~600 MB of memory). With it, plaintext flows before that check, which
 * happens at the very end of the message. That is safe here because a Sluice sink commits
 * atomically and only on a clean end of stream: when the late integrity check fails, the
 * plaintext stream errors instead of ending, and the sink aborts, leaving nothing behind.
 */
import { PassThrough, Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { SluiceError } from '../../core/errors.js';
import { STREAM_CHUNK } from '../../core/streams.js';
import type { DecryptEngine, DecryptKeys, EncryptEngine, EncryptKeys } from './engines.js';
import { isArmored } from './key-material.js';
import type { SignatureOutcome } from './signatures.js';
import { peekFirstByte } from './stream-gates.js';

type OpenPgp = typeof import('openpgp');
type WebBytes = ReadableStream<Uint8Array>;

const toWeb = (stream: Readable) => Readable.toWeb(stream) as unknown as WebBytes;
const fromWeb = (stream: ReadableStream<Uint8Array | string>) =>
  Readable.fromWeb(stream as unknown as WebReadableStream, { highWaterMark: STREAM_CHUNK });

function badData(what: string, err: unknown): SluiceError {
  const message = err instanceof Error ? err.message : String(err);
  return new SluiceError('SLUICE_E_BAD_DATA', `${what} failed (openpgp): ${message}`, {
    cause: err,
    retryable: false,
  });
}

async function readKeys(openpgp: OpenPgp, keys: Buffer[]) {
  const all = [];
  for (const key of keys) {
    all.push(
      ...(isArmored(key)
        ? await openpgp.readKeys({ armoredKeys: key.toString('utf8') })
        : await openpgp.readKeys({ binaryKeys: key })),
    );
  }
  return all;
}

async function readUnlockedPrivateKeys(openpgp: OpenPgp, key: Buffer, passphrase: string | undefined) {
  const keys = isArmored(key)
    ? await openpgp.readPrivateKeys({ armoredKeys: key.toString('utf8') })
    : await openpgp.readPrivateKeys({ binaryKeys: key });
  try {
    return await Promise.all(
      keys.map((k) =>
        k.isDecrypted() ? k : openpgp.decryptKey({ privateKey: k, passphrase: passphrase ?? '' }),
      ),
    );
  } catch (err) {
    throw new SluiceError('SLUICE_E_CONFIG', `cannot unlock the private key: ${(err as Error).message}`, {
      cause: err,
      context: { jsonPath: '/passphrase' },
    });
  }
}

/** Awaits each signature's verdict (known once its data was read); never rejects. */
async function outcomeOf(signatures: { keyID: { toHex(): string }; verified: Promise<unknown> }[]) {
  const outcome: SignatureOutcome = { good: [], bad: [], unknown: [] };
  await Promise.all(
    signatures.map(async (s) => {
      const keyId = s.keyID.toHex().toUpperCase();
      try {
        await s.verified;
        outcome.good.push(keyId);
      } catch (err) {
        const message = (err as Error).message;
        if (/could not find signing key/i.test(message))
          outcome.unknown.push(`signature by key ${keyId}, not a configured key`);
        else outcome.bad.push(`signature by key ${keyId}: ${message}`);
      }
    }),
  );
  return outcome;
}

/** Starts reading a message (armored or binary, told apart by its first byte). */
async function readMessage(openpgp: OpenPgp, ciphertext: Readable) {
  const first = await peekFirstByte(ciphertext);
  if (first === undefined) throw new Error('the message is empty');
  const bytes = toWeb(ciphertext);
  // A binary OpenPGP packet header always has its top bit set; armor is ASCII text.
  if ((first & 0x80) !== 0) return openpgp.readMessage({ binaryMessage: bytes });
  return openpgp.readMessage({ armoredMessage: bytes.pipeThrough(new TextDecoderStream()) });
}

/**
 * Runs `produce` (which resolves to the output web stream) and pipes its output into the
 * returned stream; an error of the input is passed on as is, any other error as bad data.
 */
function streamFrom(
  input: Readable,
  what: string,
  produce: () => Promise<ReadableStream<Uint8Array | string>>,
): Readable {
  const out = new PassThrough({ highWaterMark: STREAM_CHUNK });
  let inputError: Error | undefined;
  input.once('error', (err) => {
    inputError = err;
    out.destroy(err);
  });
  const fail = (err: unknown) => {
    if (!out.destroyed) out.destroy(inputError ?? badData(what, err));
  };
  produce().then((web) => {
    const produced = fromWeb(web);
    produced.once('error', fail);
    out.once('close', () => produced.destroy());
    produced.pipe(out);
  }, fail);
  out.once('close', () => {
    if (!input.destroyed && !input.readableEnded) input.destroy();
  });
  return out;
}

export async function createOpenpgpDecryptEngine(keys: DecryptKeys): Promise<DecryptEngine> {
  const openpgp = await import('openpgp');
  const decryptionKeys = await readUnlockedPrivateKeys(openpgp, keys.privateKey, keys.passphrase);
  const verificationKeys = await readKeys(openpgp, keys.verificationKeys);
  return {
    decrypt(ciphertext) {
      let signatures: Promise<SignatureOutcome> = Promise.resolve({ good: [], bad: [], unknown: [] });
      const plaintext = streamFrom(ciphertext, 'PGP decryption', async () => {
        const message = await readMessage(openpgp, ciphertext);
        const result = await openpgp.decrypt({
          message,
          decryptionKeys,
          verificationKeys: keys.verifying ? verificationKeys : undefined,
          format: 'binary',
          config: { allowUnauthenticatedStream: true },
        });
        signatures = outcomeOf(result.signatures);
        return result.data as unknown as WebBytes;
      });
      return { plaintext, inlineSignatures: () => signatures };
    },

    async detachedVerifier(signatureBytes) {
      let signature: Awaited<ReturnType<OpenPgp['readSignature']>>;
      try {
        signature = isArmored(signatureBytes)
          ? await openpgp.readSignature({ armoredSignature: Buffer.from(signatureBytes).toString('utf8') })
          : await openpgp.readSignature({ binarySignature: signatureBytes });
      } catch (err) {
        throw badData('reading the detached signature', err);
      }
      const data = new PassThrough({ highWaterMark: STREAM_CHUNK });
      const message = await openpgp.createMessage({ binary: toWeb(data) });
      const result = await openpgp.verify({ message, signature, verificationKeys, format: 'binary' });
      const drained = fromWeb(result.data as unknown as WebBytes).resume();
      const drainedEnd = new Promise<void>((resolve, reject) => {
        drained.once('end', resolve);
        drained.once('error', reject);
      });
      drainedEnd.catch(() => {});
      return {
        async write(chunk) {
          if (data.write(chunk)) return;
          await new Promise<void>((resolve) => {
            data.once('drain', resolve);
            data.once('close', resolve);
          });
        },
        async end() {
          data.end();
          await drainedEnd;
          return outcomeOf(result.signatures);
        },
        abort: () => data.destroy(),
      };
    },

    close: async () => {},
  };
}

export async function createOpenpgpEncryptEngine(keys: EncryptKeys): Promise<EncryptEngine> {
  const openpgp = await import('openpgp');
  const encryptionKeys = await readKeys(openpgp, keys.recipients);
  const signingKeys = keys.signingKey
    ? await readUnlockedPrivateKeys(openpgp, keys.signingKey, keys.passphrase)
    : undefined;
  return {
    encrypt(plaintext) {
      return streamFrom(plaintext, 'PGP encryption', async () => {
        const message = await openpgp.createMessage({ binary: toWeb(plaintext) });
        if (keys.armor) {
          const armored = await openpgp.encrypt({ message, encryptionKeys, signingKeys, format: 'armored' });
          return (armored as unknown as ReadableStream<string>).pipeThrough(new TextEncoderStream());
        }
        const binary = await openpgp.encrypt({ message, encryptionKeys, signingKeys, format: 'binary' });
        return binary as unknown as WebBytes;
      });
    },
    close: async () => {},
  };
}
