import type { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { SluiceError, wrapPluginError } from '../../core/errors.js';
import { deriveItem, itemName } from '../../core/item.js';
import { definePlugin, type Item, type LocalFile, type StepContext } from '../../core/plugin-api.js';
import { Size } from '../../core/schema-fragments.js';
import { pipeThrough } from '../../core/streams.js';
import { parseSize } from '../../core/units.js';
import { readSmallFile } from '../checksum/read-small.js';
import {
  type DecryptEngine,
  type Decryption,
  EngineField,
  type EngineName,
  resolveEngine,
} from './engines.js';
import { bytesStream, InProcessFirst } from './in-process.js';
import { loadPrivateKey, loadPublicKeys, privateKeyFields, publicKeyFields } from './key-material.js';
import { detachedSignatureNames, isDetachedSignature, stripPgpExtension } from './names.js';
import { judgeSignatures, mergeOutcomes, noSignatures, type SignatureOutcome } from './signatures.js';
import { EndGate, lateVerdictOf, offerLateVerdict, VerifierTee } from './stream-gates.js';

/** Detached signatures are a few hundred bytes; refuse to buffer anything much larger. */
const MAX_SIGNATURE_BYTES = 64 * 1024;

const config = Type.Object(
  {
    ...privateKeyFields,
    engine: EngineField,
    in_process_max: Type.Optional(
      Size({
        default: '256KiB',
        description:
          'With the gpg engine: a message of at most this size is decrypted in-process by openpgp.js first, without a gpg process (whose start costs more than decrypting a small file); gpg decides every message openpgp.js does not decrypt cleanly (an algorithm it lacks, a bad message, a signature it does not call good). The private key is then also unlocked in Sluice’s memory, as with the openpgp engine; `0`: every message through gpg, and the key stays with gpg’s agent.',
      }),
    ),
    verify_signature: Type.Optional(
      Type.Object(
        {
          ...publicKeyFields('whose signatures are accepted'),
          required: Type.Boolean({
            description:
              'Fail the file unless it carries a valid signature by one of these keys (inline, or a detached `<file>.sig` / `<file>.asc` over the encrypted file). A bad signature always fails it.',
            default: true,
          }),
        },
        {
          additionalProperties: false,
          description:
            'Check signatures: inline ones of signed-and-encrypted messages and detached companions.',
        },
      ),
    ),
  },
  { additionalProperties: false },
);

async function findDetachedSignature(item: Item, ctx: StepContext, signal?: AbortSignal) {
  for (const name of detachedSignatureNames(itemName(item))) {
    const stream = await ctx.openSibling(item, name, signal);
    if (stream) return { name, bytes: await readSmallFile(stream, name, MAX_SIGNATURE_BYTES) };
  }
  return undefined;
}

export const pgpDecryptPlugin = definePlugin({
  name: 'pgp_decrypt',
  kind: 'transform',
  summary:
    'Decrypt OpenPGP messages (armored or binary, compressed or not) while streaming; optionally check signatures.',
  description: [
    'Strips `.gpg` / `.pgp` / `.asc` from the name. Two engines: `gpg` (GnuPG as a child process with a private,',
    'throwaway GNUPGHOME; the fastest) and `openpgp` (openpgp.js, in-process). `auto` uses gpg when it is installed.',
    '',
    'Integrity: OpenPGP checks a message’s integrity (MDC) only at its very end, after all plaintext was produced.',
    'Both engines stream (openpgp.js with `allowUnauthenticatedStream`), so plaintext flows before that check — this',
    'is safe because sinks commit atomically and only on a clean end of stream: a failed integrity check (tampered or',
    'truncated message) errors the stream before it ends, the sink aborts, and nothing is committed. For gpg, the end of',
    'the stream waits for gpg’s exit status. A wrong key or tampered message fails the item without retries.',
    '',
    'With gpg, a file from a `local` source is read by gpg itself (no bytes through Sluice; its size is still checked',
    'against the listing), and when the plaintext goes to one `local` sink with no step after, gpg writes it straight',
    'into that sink’s temp file, which is placed after gpg’s exit status and the signatures were checked, or removed.',
    'Small messages (`in_process_max`, 256 KiB) are decrypted in-process by openpgp.js first, whose whole plaintext',
    '(integrity checked) is passed on only when it decrypted the message cleanly; gpg decides every other one.',
    '',
    'With `verify_signature`, inline signatures and detached `<file>.sig` / `<file>.asc` companions (over the encrypted',
    'file, verified while it streams) are checked. `.sig` companions (and `.gpg.asc` / `.pgp.asc` ones when verifying)',
    'are not processed as files of their own; the source’s `after_success` deletes or moves them with their file.',
  ].join('\n'),
  config,
  examples: [
    {
      title: 'Decrypt with a key file',
      yaml: 'private_key_file: ${PGP_KEY_FILE}\npassphrase: ${PGP_PASSPHRASE}',
    },
    {
      title: 'Decrypt and require the partner’s signature',
      yaml: 'private_key_env: PGP_PRIVATE_KEY\nverify_signature:\n  public_key_files: [keys/partner.asc]\n  required: true',
    },
  ],
  async create(cfg, ctx) {
    const { key, passphrase } = await loadPrivateKey(cfg, ctx.baseDir);
    const verify = cfg.verify_signature;
    const verificationKeys = verify ? await loadPublicKeys(verify, ctx.baseDir, '/verify_signature') : [];
    if (verify && verificationKeys.length === 0) {
      throw new SluiceError('SLUICE_E_CONFIG', 'verify_signature needs public_key_files or public_keys', {
        context: { jsonPath: '/verify_signature' },
      });
    }
    const keys = { privateKey: key, passphrase, verificationKeys, verifying: verify !== undefined };
    const engineName = await resolveEngine(cfg.engine as EngineName);
    ctx.log.debug({ engine: engineName }, 'pgp_decrypt engine');
    const engine: DecryptEngine =
      engineName === 'gpg'
        ? await (await import('./gpg-engine.js')).createGpgDecryptEngine(keys)
        : await (await import('./openpgp-engine.js')).createOpenpgpDecryptEngine(keys);
    // gpg's small messages: openpgp.js first (in-process.ts), made at the first of them (loading
    // it costs a tenth of a second: a run of big files never pays it), with the key as gpg's home
    // holds it, which unlocks at once (the user's copy may take a second).
    const inProcessMax = engineName === 'gpg' ? parseSize(cfg.in_process_max ?? '256KiB') : 0;
    let inProcess: Promise<InProcessFirst | undefined> | undefined;
    /** openpgp.js could not use the key: every message goes to gpg the usual way. */
    let inProcessUnusable = false;
    const inProcessEngine = () => {
      inProcess ??= InProcessFirst.create(keys, engine.cheaplyProtectedKey?.()).then((made) => {
        if (!made) {
          inProcessUnusable = true;
          ctx.log.info('pgp_decrypt: openpgp.js cannot use this key; gpg decrypts small messages too');
        }
        return made;
      });
      return inProcess;
    };
    /** A message tried in-process first: one of known size within in_process_max. */
    const inProcessFirst = (item: Item) =>
      inProcessMax > 0 && !inProcessUnusable && item.size !== undefined && item.size <= inProcessMax;

    /**
     * The ciphertext: the listed local file itself, for gpg to read through an inherited
     * descriptor (no byte through this process), when the runtime offers it and no detached
     * signature must see the bytes on the way; else the stream, through the detached check.
     * `detached`: that check's verdict once the ciphertext passed (none: no signatures).
     */
    async function ciphertextOf(
      item: Item,
      ctx: StepContext,
      detachedSignature: { bytes: Buffer } | undefined,
      signal?: AbortSignal,
    ): Promise<{ input: Readable | LocalFile; file?: LocalFile; detached: Promise<SignatureOutcome> }> {
      if (!detachedSignature && engine.decryptFile) {
        const file = await ctx.openLocal?.(item, signal);
        if (file) return { input: file, file, detached: Promise.resolve(noSignatures()) };
      }
      const stream = await item.open(signal);
      if (!detachedSignature) return { input: stream, detached: Promise.resolve(noSignatures()) };
      const tee = new VerifierTee(await engine.detachedVerifier(detachedSignature.bytes));
      return { input: pipeThrough(stream, tee), detached: tee.result };
    }

    /** Runs `start` on the ciphertext; a file it could not hand to gpg is closed again. */
    function started<T>(file: LocalFile | undefined, start: () => T): T {
      try {
        return start();
      } catch (err) {
        void file?.close().catch(() => undefined);
        throw err;
      }
    }

    /**
     * A small message (in_process_max) without a detached signature: read whole, decrypted by
     * openpgp.js when it decrypts it cleanly, else by gpg from the same bytes (in-process.ts).
     */
    async function decryptSmall(item: Item, ctx: StepContext, signal?: AbortSignal): Promise<Decryption> {
      // Held whole: never more than the listed (small) size, which the source checks only at
      // the end of its stream — a file that grew, or a server that sends more, stops here.
      const listed = item.size!;
      const message = await readSmallFile(
        await item.open(signal),
        item.path,
        listed,
        () =>
          new SluiceError(
            'SLUICE_E_CHANGED',
            `read more than the ${listed} bytes the source listed: the file changed while it was read`,
            { retryable: false },
          ),
      );
      const done = await (await inProcessEngine())?.decrypt(message);
      if (done) {
        return {
          plaintext: bytesStream(done.plaintext),
          inlineSignatures: () => Promise.resolve(done.signatures),
        };
      }
      ctx.log.debug({ item: item.path }, 'pgp_decrypt: openpgp.js did not decrypt it cleanly; gpg decides');
      return engine.decrypt(bytesStream(message));
    }

    async function decryptStream(item: Item, ctx: StepContext, signal?: AbortSignal): Promise<Readable> {
      const detachedSignature = verify ? await findDetachedSignature(item, ctx, signal) : undefined;
      let decryption: Decryption;
      let detachedOutcome: Promise<SignatureOutcome> = Promise.resolve(noSignatures());
      if (!detachedSignature && inProcessFirst(item)) {
        decryption = await decryptSmall(item, ctx, signal);
      } else {
        const { input, file, detached } = await ciphertextOf(item, ctx, detachedSignature, signal);
        decryption = started(file, () =>
          file ? engine.decryptFile!(file) : engine.decrypt(input as Readable),
        );
        detachedOutcome = detached;
      }
      const { plaintext, inlineSignatures } = decryption;
      const late = lateVerdictOf(plaintext);
      const output = verify ? verified(plaintext, inlineSignatures, detachedOutcome, item, ctx) : plaintext;
      if (!late) return output;
      // A step after this one that fails on garbage asks: a failed integrity check is ours.
      return offerLateVerdict(output, async () => {
        const failure = await late();
        return (
          failure &&
          wrapPluginError(failure, {
            pipeline: ctx.pipeline,
            step: ctx.stepId,
            plugin: 'pgp_decrypt',
            item: `${item.source}:${item.path}`,
          })
        );
      });
    }

    function verified(
      plaintext: Readable,
      inlineSignatures: () => Promise<SignatureOutcome>,
      detachedOutcome: Promise<SignatureOutcome>,
      item: Item,
      ctx: StepContext,
    ): Readable {
      if (!verify) return plaintext;
      return pipeThrough(plaintext, new EndGate(() => judged(inlineSignatures, detachedOutcome, item, ctx)));
    }

    /** Throws unless the signatures are as `verify_signature` asks; warns about unknown ones. */
    async function judged(
      inlineSignatures: () => Promise<SignatureOutcome>,
      detachedOutcome: Promise<SignatureOutcome>,
      item: Item,
      ctx: StepContext,
    ): Promise<void> {
      if (!verify) return;
      const outcome = mergeOutcomes(await inlineSignatures(), await detachedOutcome);
      const failure = judgeSignatures(outcome, verify.required);
      if (failure) throw failure;
      if (outcome.good.length === 0 && outcome.unknown.length > 0) {
        ctx.log.warn({ item: item.path, signatures: outcome.unknown }, 'PGP signature not verified');
      }
    }

    /**
     * `Item.writeTo`: gpg writes the plaintext into the sink's file itself, and this resolves
     * once gpg exited cleanly (integrity checked), the local file it read (if it did) was the
     * listed one, and the signatures are as asked — what ends the stream of `decryptStream`.
     */
    async function decryptInto(
      item: Item,
      ctx: StepContext,
      fd: number,
      signal?: AbortSignal,
    ): Promise<void> {
      const detachedSignature = verify ? await findDetachedSignature(item, ctx, signal) : undefined;
      const { input, file, detached } = await ciphertextOf(item, ctx, detachedSignature, signal);
      const { written, inlineSignatures } = started(file, () => engine.decryptInto!(input, fd, signal));
      await written;
      await judged(inlineSignatures, detached, item, ctx);
    }

    return {
      process(item, ctx) {
        // Detached signatures are companions whether or not they are checked (isCompanion):
        // they go with their file when the source deletes or moves it, if they exist.
        for (const name of detachedSignatureNames(itemName(item))) {
          if (isDetachedSignature(name, verify !== undefined)) ctx.reportCompanion?.(item, name);
        }
        return deriveItem(item, {
          path: stripPgpExtension(item.path),
          open: (signal) => decryptStream(item, ctx, signal),
          ...(engine.decryptInto && !inProcessFirst(item)
            ? { writeTo: (fd: number, signal?: AbortSignal) => decryptInto(item, ctx, fd, signal) }
            : {}),
        });
      },
      isCompanion: (path) => isDetachedSignature(path, verify !== undefined),
      async close() {
        await (await inProcess)?.close();
        await engine.close();
      },
    };
  },
});
