/** Reading keys from config: a file, inline armored text, or an environment variable. */
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { registerSecret } from '../../core/observe/redact.js';
import { Secret } from '../../core/schema-fragments.js';

/** Private key fields shared by pgp_decrypt (decryption key) and pgp_encrypt (signing key). */
export const privateKeyFields = {
  private_key_file: Type.Optional(
    Type.String({
      description: 'Path of the private key (armored or binary); relative to the pipeline file.',
    }),
  ),
  private_key: Type.Optional(Secret(Type.String({ description: 'The private key as armored text.' }))),
  private_key_env: Type.Optional(
    Type.String({ description: 'Name of an environment variable holding the armored private key.' }),
  ),
  passphrase: Type.Optional(
    Secret(Type.String({ description: 'Passphrase of the private key, if it has one.' })),
  ),
};

export const publicKeyFields = (purpose: string) => ({
  public_key_files: Type.Optional(
    Type.Array(Type.String(), { description: `Files of public keys ${purpose} (armored or binary).` }),
  ),
  public_keys: Type.Optional(
    Type.Array(Type.String(), { description: `Public keys ${purpose}, as armored text.` }),
  ),
});

export interface PrivateKeyConfig {
  private_key_file?: string;
  private_key?: string;
  private_key_env?: string;
  passphrase?: string;
}

export interface PublicKeyConfig {
  public_key_files?: string[];
  public_keys?: string[];
}

/** Raw key bytes; armored keys stay text in the buffer. */
export type KeyBytes = Buffer;

export function isArmored(key: Uint8Array): boolean {
  return Buffer.from(key.subarray(0, 64)).toString('latin1').trimStart().startsWith('-----BEGIN PGP');
}

function configError(message: string, jsonPath: string): SluiceError {
  return new SluiceError('SLUICE_E_CONFIG', message, { context: { jsonPath } });
}

export async function readKeyFile(path: string, baseDir: string, jsonPath: string): Promise<KeyBytes> {
  const full = isAbsolute(path) ? path : resolve(baseDir, path);
  try {
    return await readFile(full);
  } catch (err) {
    throw new SluiceError('SLUICE_E_CONFIG', `cannot read key file "${full}": ${(err as Error).message}`, {
      cause: err,
      context: { jsonPath },
    });
  }
}

/**
 * Loads the one private key a config names (file, inline or env) and registers it and its
 * passphrase as secrets. `prefix` is the JSON path of the fields (`` or `/signing`).
 */
export async function loadPrivateKey(
  cfg: PrivateKeyConfig,
  baseDir: string,
  prefix = '',
): Promise<{ key: KeyBytes; passphrase?: string }> {
  const given = (['private_key_file', 'private_key', 'private_key_env'] as const).filter(
    (k) => cfg[k] !== undefined,
  );
  if (given.length !== 1) {
    throw configError(
      given.length === 0
        ? 'give the private key: private_key_file, private_key or private_key_env'
        : `give only one of ${given.join(', ')}`,
      `${prefix}/${given[1] ?? 'private_key_file'}`,
    );
  }
  let key: KeyBytes;
  if (cfg.private_key_file !== undefined) {
    key = await readKeyFile(cfg.private_key_file, baseDir, `${prefix}/private_key_file`);
  } else if (cfg.private_key !== undefined) {
    key = Buffer.from(cfg.private_key);
  } else {
    const value = process.env[cfg.private_key_env as string];
    if (!value)
      throw configError(
        `environment variable ${cfg.private_key_env} is not set`,
        `${prefix}/private_key_env`,
      );
    key = Buffer.from(value);
  }
  if (isArmored(key)) registerSecret(key.toString('latin1').trim());
  return { key, passphrase: cfg.passphrase };
}

export async function loadPublicKeys(
  cfg: PublicKeyConfig,
  baseDir: string,
  prefix = '',
): Promise<KeyBytes[]> {
  const keys: KeyBytes[] = [];
  for (const [i, file] of (cfg.public_key_files ?? []).entries()) {
    keys.push(await readKeyFile(file, baseDir, `${prefix}/public_key_files/${i}`));
  }
  for (const text of cfg.public_keys ?? []) keys.push(Buffer.from(text));
  return keys;
}
