import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { deriveItem } from '../../core/item.js';
import { definePlugin } from '../../core/plugin-api.js';
import { Secret } from '../../core/schema-fragments.js';
import { type EncryptEngine, EngineField, type EngineName, resolveEngine } from './engines.js';
import { loadPublicKeys, publicKeyFields, readKeyFile } from './key-material.js';

const config = Type.Object(
  {
    ...publicKeyFields('of the recipients'),
    armor: Type.Boolean({
      description: 'Write ASCII-armored text (`.asc`) instead of binary (`.gpg`).',
      default: false,
    }),
    signing_key_file: Type.Optional(
      Type.String({
        description: 'Private key to sign with (armored or binary); relative to the pipeline file.',
      }),
    ),
    passphrase: Type.Optional(
      Secret(Type.String({ description: 'Passphrase of the signing key, if it has one.' })),
    ),
    engine: EngineField,
  },
  { additionalProperties: false },
);

export const pgpEncryptPlugin = definePlugin({
  name: 'pgp_encrypt',
  kind: 'transform',
  summary:
    'Encrypt files to OpenPGP recipients while streaming, optionally signed; appends `.gpg` (or `.asc`).',
  description:
    'Encrypts to every recipient key given. With `signing_key_file` the message is also signed (inline, one-pass). Engines as for `pgp_decrypt`: `gpg` (child process, compresses with zlib by default) or `openpgp` (openpgp.js, no compression).',
  config,
  examples: [
    { title: 'Encrypt for a partner', yaml: 'public_key_files: [keys/partner.asc]' },
    {
      title: 'Encrypt, sign and armor',
      yaml: 'public_key_files: [keys/partner.asc]\narmor: true\nsigning_key_file: keys/ours.asc\npassphrase: ${PGP_PASSPHRASE}',
    },
  ],
  async create(cfg, ctx) {
    const recipients = await loadPublicKeys(cfg, ctx.baseDir);
    if (recipients.length === 0) {
      throw new SluiceError(
        'SLUICE_E_CONFIG',
        'give at least one recipient: public_key_files or public_keys',
        {
          context: { jsonPath: '/public_key_files' },
        },
      );
    }
    const signingKey = cfg.signing_key_file
      ? await readKeyFile(cfg.signing_key_file, ctx.baseDir, '/signing_key_file')
      : undefined;
    const keys = { recipients, armor: cfg.armor, signingKey, passphrase: cfg.passphrase };
    const engineName = await resolveEngine(cfg.engine as EngineName);
    const engine: EncryptEngine =
      engineName === 'gpg'
        ? await (await import('./gpg-engine.js')).createGpgEncryptEngine(keys)
        : await (await import('./openpgp-engine.js')).createOpenpgpEncryptEngine(keys);
    const extension = cfg.armor ? '.asc' : '.gpg';
    return {
      process(item) {
        return deriveItem(item, {
          path: item.path + extension,
          open: async (signal) => engine.encrypt(await item.open(signal)),
        });
      },
      close: () => engine.close(),
    };
  },
});
