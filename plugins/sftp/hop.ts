/**
 * One SSH login — the SFTP server itself or a jump host in front of it: its config fields,
 * credentials, host key pinning and the message a refused connection gets. Both hops are checked
 * the same way.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import { type ErrorCode, SluiceError } from '../../core/errors.js';
import { registerSecret } from '../../core/observe/redact.js';
import type { PluginContext } from '../../core/plugin-api.js';
import { Secret } from '../../core/schema-fragments.js';
import { fingerprintOf, normalizeFingerprint } from './host-key.js';

export const sshLoginFields = {
  host: Type.String({ minLength: 1, description: 'Server host name or IP address.' }),
  port: Type.Integer({ minimum: 1, maximum: 65535, default: 22, description: 'SSH port.' }),
  username: Type.String({ minLength: 1, description: 'Login user.' }),
  password: Type.Optional(Secret(Type.String({ description: 'Password (password or keyboard-less auth).' }))),
  private_key_file: Type.Optional(
    Type.String({ description: 'Path of an OpenSSH/PEM private key file (relative to the pipeline file).' }),
  ),
  private_key: Type.Optional(
    Secret(Type.String({ description: 'Private key text itself (e.g. from an env var).' })),
  ),
  passphrase: Type.Optional(Secret(Type.String({ description: 'Passphrase of an encrypted private key.' }))),
  agent: Type.Optional(
    Type.Union([Type.Boolean(), Type.String()], {
      description:
        'Authenticate through an ssh-agent: `true` uses $SSH_AUTH_SOCK, a string is the socket path.',
    }),
  ),
  host_key_sha256: Type.Optional(
    Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })], {
      description:
        'Pinned SHA256 fingerprint(s) of the server host key, as `ssh-keygen -lf` prints them (`SHA256:…`; bare base64 or hex also accepted). Required unless insecure_accept_any_host_key; a refused connection shows the fingerprint the server presented.',
    }),
  ),
  insecure_accept_any_host_key: Type.Boolean({
    default: false,
    description: 'Skip host key checking (man-in-the-middle risk). Only for tests and throwaway servers.',
  }),
};

const loginSchema = Type.Object(sshLoginFields);
export type SshLoginConfig = Static<typeof loginSchema>;

/** A resolved login: key file read, fingerprints normalised, secrets registered. */
export interface SshHop {
  /** `SFTP server` or `SSH jump host`: how messages name this hop. */
  label: string;
  host: string;
  port: number;
  username: string;
  password?: string;
  privateKey?: string;
  passphrase?: string;
  agent?: string;
  /** Accepted fingerprints (`SHA256:…`); 'any' when host key checking is off. */
  hostKeys: string[] | 'any';
}

/** Validates one login's config; `at` is its JSON path prefix (`''` or `jump/`). */
export async function resolveHop(
  config: SshLoginConfig,
  ctx: PluginContext,
  label: string,
  at = '',
): Promise<SshHop> {
  const configError = (message: string, field: string) =>
    new SluiceError('SLUICE_E_CONFIG', message, { context: { jsonPath: `/${at}${field}` } });
  let privateKey = config.private_key;
  if (config.private_key_file !== undefined) {
    const file = resolve(ctx.baseDir, config.private_key_file);
    try {
      privateKey = await readFile(file, 'utf8');
    } catch (err) {
      throw configError(
        `cannot read private_key_file ${file}: ${(err as Error).message}`,
        'private_key_file',
      );
    }
  }
  // The key file's contents are read here, not from the config: the schema cannot mark them.
  registerSecret(privateKey);
  const agent = config.agent === true ? process.env.SSH_AUTH_SOCK : config.agent || undefined;
  if (config.agent === true && !agent) throw configError('agent: true but SSH_AUTH_SOCK is not set', 'agent');
  if (config.password === undefined && privateKey === undefined && agent === undefined) {
    throw configError('no credentials: set password, private_key_file, private_key or agent', 'password');
  }
  const port = config.port ?? 22;
  let hostKeys: string[] | 'any' = 'any';
  if (!config.insecure_accept_any_host_key) {
    const pinned = config.host_key_sha256 === undefined ? [] : [config.host_key_sha256].flat();
    hostKeys = pinned.map((text, i) => {
      const fingerprint = normalizeFingerprint(text);
      if (!fingerprint) {
        const where = Array.isArray(config.host_key_sha256) ? `host_key_sha256/${i}` : 'host_key_sha256';
        throw configError(`"${text}" is not a SHA256 host key fingerprint (expected SHA256:<base64>)`, where);
      }
      return fingerprint;
    });
  } else {
    ctx.log.warn(
      { host: config.host, port },
      `insecure_accept_any_host_key is on: the identity of ${label} ${config.host}:${port} is NOT checked; anyone on the network path can intercept credentials and files`,
    );
  }
  return {
    label,
    host: config.host,
    port,
    username: config.username,
    password: config.password,
    privateKey,
    passphrase: config.passphrase,
    agent,
    hostKeys,
  };
}

/** ssh2 marks auth failures with `level`, but ssh2-sftp-client re-wraps them keeping only the message. */
export function isAuthFailure(err: unknown): boolean {
  const { level, message } = (err ?? {}) as { level?: unknown; message?: unknown };
  return (
    level === 'client-authentication' ||
    (typeof message === 'string' && /authentication methods failed/i.test(message))
  );
}

/**
 * ssh2 `connect` options for logging in to `hop`, with a host key check that remembers what
 * the server presented, for `refusal`.
 */
export function hopLogin(hop: SshHop) {
  const seen: { presented?: string; refused: boolean } = { refused: false };
  return {
    seen,
    options: {
      host: hop.host,
      port: hop.port,
      username: hop.username,
      password: hop.password,
      privateKey: hop.privateKey,
      passphrase: hop.passphrase,
      agent: hop.agent,
      hostVerifier: (key: Buffer) => {
        seen.presented = fingerprintOf(key);
        seen.refused = hop.hostKeys !== 'any' && !hop.hostKeys.includes(seen.presented);
        return !seen.refused;
      },
    },
  };
}

/** The error for a failed login to `hop`: a refused host key, refused credentials, or no connection. */
export function loginFailure(
  hop: SshHop,
  seen: { presented?: string; refused: boolean },
  err: unknown,
  errorCode: ErrorCode,
  retryable: (err: unknown) => boolean | undefined,
): SluiceError {
  const where = `${hop.host}:${hop.port}`;
  if (seen.refused && seen.presented) {
    const pinned = hop.hostKeys === 'any' ? [] : hop.hostKeys;
    const message =
      pinned.length === 0
        ? `${hop.label} ${where} presented host key ${seen.presented}, but no host_key_sha256 is pinned: after checking it with the server's operator, set host_key_sha256: "${seen.presented}"`
        : `host key of ${hop.label} ${where} is ${seen.presented}, which is not the pinned host_key_sha256 (${pinned.join(', ')}): the server's key changed or this is not the expected server`;
    return new SluiceError(errorCode, message, { cause: err, retryable: false });
  }
  if (isAuthFailure(err)) {
    return new SluiceError(
      errorCode,
      `${hop.label}: authentication failed for user "${hop.username}" at ${where}`,
      {
        cause: err,
        retryable: false,
      },
    );
  }
  const reason = (err as { message?: unknown })?.message;
  return new SluiceError(
    errorCode,
    `cannot connect to ${hop.label} ${where}: ${typeof reason === 'string' ? reason : String(err)}`,
    { cause: err, retryable: retryable(err) ?? true },
  );
}
