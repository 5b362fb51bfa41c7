/**
 * SFTP connections for the sftp source and sink: config fields they share, auth, host key
 * pinning, a pool of ssh2-sftp-client sessions and error classification.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { type Static, Type } from '@sinclair/typebox';
import type { SFTPWrapper, Stats } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';
import { type ErrorCode, isRetryableByDefault, SluiceError } from '../../core/errors.js';
import { registerSecret } from '../../core/observe/redact.js';
import type { PluginContext } from '../../core/plugin-api.js';
import { Duration, Secret } from '../../core/schema-fragments.js';
import { STREAM_CHUNK } from '../../core/streams.js';
import { parseDuration } from '../../core/units.js';
import type { PreflightTraits } from '../remote-fs/check.js';
import type { RemoteConnection, RemoteEntry, RemoteStat } from '../remote-fs/connection.js';
import { remoteFsFields } from '../remote-fs/fields.js';
import { ConnectionPool } from '../remote-fs/pool.js';
import { fingerprintOf, normalizeFingerprint } from './host-key.js';

export const sftpConnectionFields = {
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
  ...remoteFsFields('SSH sessions'),
  connect_timeout: Duration({
    default: '20s',
    description: 'Time allowed for connecting and the SSH handshake.',
  }),
  keepalive_interval: Duration({
    default: '15s',
    description: 'Interval of SSH keepalive messages; a server silent for 3 intervals counts as dropped.',
  }),
};

const connectionSchema = Type.Object(sftpConnectionFields);
export type SftpConnectionConfig = Static<typeof connectionSchema>;

export interface SftpSettings {
  host: string;
  port: number;
  username: string;
  password?: string;
  privateKey?: string;
  passphrase?: string;
  agent?: string;
  /** Accepted fingerprints (`SHA256:…`); 'any' when host key checking is off. */
  hostKeys: string[] | 'any';
  connectTimeoutMs: number;
  keepaliveMs: number;
  /** Error code for failures: the source and sink report under their own. */
  errorCode: ErrorCode;
}

/** Validates the connection part of a config, reads key files and registers every secret. */
export async function sftpSettings(
  config: Omit<SftpConnectionConfig, 'path'>,
  ctx: PluginContext,
  errorCode: ErrorCode,
): Promise<SftpSettings> {
  const configError = (message: string, field: string) =>
    new SluiceError('SLUICE_E_CONFIG', message, { context: { jsonPath: `/${field}` } });
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
      { host: config.host, port: config.port },
      `insecure_accept_any_host_key is on: the identity of SFTP server ${config.host}:${config.port} is NOT checked; anyone on the network path can intercept credentials and files`,
    );
  }
  return {
    host: config.host,
    port: config.port,
    username: config.username,
    password: config.password,
    privateKey,
    passphrase: config.passphrase,
    agent,
    hostKeys,
    connectTimeoutMs: parseDuration(config.connect_timeout),
    keepaliveMs: parseDuration(config.keepalive_interval),
    errorCode,
  };
}

type SftpClientClass = typeof SftpClient;

/** A pool of SFTP sessions; loads ssh2-sftp-client on first use (it costs ~75 ms to import). */
export async function createSftpPool(settings: SftpSettings, maxConnections: number) {
  const { default: Client } = (await import('ssh2-sftp-client')) as { default: SftpClientClass };
  return new ConnectionPool<RemoteConnection>({
    connect: () => SftpConnection.open(Client, settings),
    maxConnections,
    isConnectionLost: isSftpConnectionLost,
  });
}

export function sftpLocation(settings: SftpSettings, path: string): string {
  const absolute = path.startsWith('/') ? path : `/~/${path === '.' ? '' : path}`;
  return `sftp://${settings.host}:${settings.port}${absolute}`;
}

/** What the shared pre-flight checks need to know about SFTP. */
export function sftpPreflight(settings: SftpSettings): PreflightTraits {
  return {
    account: `${settings.username}@${settings.host}:${settings.port}`,
    errorCode: settings.errorCode,
    isPermissionDenied: (err) =>
      ((err instanceof SluiceError ? err.cause : err) as { code?: unknown } | undefined)?.code ===
      SFTP_PERMISSION_DENIED,
  };
}

/* ------------------------------------------------------------------ error classification */

/** SFTP status codes (draft-ietf-secsh-filexfer-02) that ssh2 puts in `err.code`. */
const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;
const SFTP_NO_CONNECTION = 6;
const SFTP_CONNECTION_LOST = 7;
const SFTP_OP_UNSUPPORTED = 8;

const LOST_MESSAGE =
  /no response from server|not connected|connection (lost|closed|reset)|unexpected (close|end) event|channel (is )?(not open|closed)|socket|ECONNRESET|timed out/i;

/** True when the error means the SSH connection itself is gone. */
export function isSftpConnectionLost(err: unknown): boolean {
  for (let e = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const { code, level, message } = e as { code?: unknown; level?: unknown; message?: unknown };
    if (code === SFTP_NO_CONNECTION || code === SFTP_CONNECTION_LOST || code === 'ERR_NOT_CONNECTED')
      return true;
    if (level === 'client-socket' || level === 'client-timeout') return true;
    if (typeof code === 'string' && /^E(CONNRESET|PIPE|TIMEDOUT|CONNABORTED)$/.test(code)) return true;
    if (typeof message === 'string' && LOST_MESSAGE.test(message)) return true;
    if ((e as { cause?: unknown }).cause === e) break;
  }
  return false;
}

/** Retry classification: dropped connections and timeouts retry; auth, missing files, permissions don't. */
export function isSftpRetryable(err: unknown): boolean | undefined {
  if (err instanceof SluiceError && err.retryable !== undefined) return err.retryable;
  if (isSftpConnectionLost(err)) return true;
  const raw = err instanceof SluiceError ? err.cause : err;
  const { code } = (raw ?? {}) as { code?: unknown };
  if (isAuthFailure(raw)) return false;
  if (code === SFTP_NO_SUCH_FILE || code === SFTP_PERMISSION_DENIED || code === SFTP_OP_UNSUPPORTED)
    return false;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'ERR_BAD_PATH' || code === 'ERR_BAD_AUTH')
    return false;
  return isRetryableByDefault(err);
}

/** ssh2 marks auth failures with `level`, but ssh2-sftp-client re-wraps them keeping only the message. */
function isAuthFailure(err: unknown): boolean {
  const { level, message } = (err ?? {}) as { level?: unknown; message?: unknown };
  return (
    level === 'client-authentication' ||
    (typeof message === 'string' && /authentication methods failed/i.test(message))
  );
}

function reasonOf(err: unknown): string {
  const raw = err as { code?: unknown; message?: unknown };
  if (raw?.code === SFTP_NO_SUCH_FILE) return 'no such file';
  if (raw?.code === SFTP_PERMISSION_DENIED) return 'permission denied';
  return typeof raw?.message === 'string' ? raw.message : String(err);
}

/* ----------------------------------------------------------------------------- connection */

function remoteStat(stats: Stats): RemoteStat {
  return {
    type: stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : 'other',
    size: stats.size,
    mtime: new Date(stats.mtime * 1000),
  };
}

class SftpConnection implements RemoteConnection {
  private dead = false;
  /** Called once when the session dies: operations in flight on it fail instead of hanging. */
  private readonly lostListeners = new Set<(err: Error) => void>();

  private constructor(
    private readonly client: SftpClient,
    private readonly sftp: SFTPWrapper,
    private readonly settings: SftpSettings,
  ) {
    sftp.once('close', () => this.markLost());
    sftp.once('end', () => this.markLost());
  }

  /**
   * ssh2 silently drops any SFTP request sent after the channel closed and never calls its
   * callback (it only fails the requests pending at the moment of the close), so a write or a
   * handle close issued on a session that just died would wait forever: fail them here.
   */
  private markLost(): void {
    if (this.dead && this.lostListeners.size === 0) return;
    this.dead = true;
    const err = Object.assign(new Error('SFTP connection lost'), { code: 'ERR_NOT_CONNECTED' });
    const listeners = [...this.lostListeners];
    this.lostListeners.clear();
    for (const listener of listeners) listener(err);
  }

  /** Calls `listener` if the session dies before the returned function is called. */
  private onLost(listener: (err: Error) => void): () => void {
    if (this.dead) {
      queueMicrotask(() =>
        listener(Object.assign(new Error('SFTP connection lost'), { code: 'ERR_NOT_CONNECTED' })),
      );
      return () => {};
    }
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  get alive(): boolean {
    return !this.dead;
  }

  static async open(Client: SftpClientClass, settings: SftpSettings): Promise<SftpConnection> {
    const where = `${settings.host}:${settings.port}`;
    let presented: string | undefined;
    let hostKeyRefused = false;
    let connection: SftpConnection | undefined;
    const markDead = () => {
      connection?.markLost();
    };
    // The library's default listeners print to the console; ours only mark the session dead.
    const client = new Client('sluice', { error: markDead, end: markDead, close: markDead });
    // Without TCP_NODELAY every SFTP request waits out Nagle + delayed ACK (~40 ms a round trip).
    client.on('connect', () =>
      (client as unknown as { client: { setNoDelay(on: boolean): void } }).client.setNoDelay(true),
    );
    try {
      const sftp = await client.connect({
        host: settings.host,
        port: settings.port,
        username: settings.username,
        password: settings.password,
        privateKey: settings.privateKey,
        passphrase: settings.passphrase,
        agent: settings.agent,
        readyTimeout: settings.connectTimeoutMs,
        keepaliveInterval: settings.keepaliveMs,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          presented = fingerprintOf(key);
          hostKeyRefused = settings.hostKeys !== 'any' && !settings.hostKeys.includes(presented);
          return !hostKeyRefused;
        },
      });
      connection = new SftpConnection(client, sftp, settings);
      return connection;
    } catch (err) {
      void client.end().catch(() => {});
      if (hostKeyRefused && presented) {
        const pinned = settings.hostKeys === 'any' ? [] : settings.hostKeys;
        const message =
          pinned.length === 0
            ? `SFTP server ${where} presented host key ${presented}, but no host_key_sha256 is pinned: after checking it with the server's operator, set host_key_sha256: "${presented}"`
            : `host key of SFTP server ${where} is ${presented}, which is not the pinned host_key_sha256 (${pinned.join(', ')}): the server's key changed or this is not the expected server`;
        throw new SluiceError(settings.errorCode, message, { cause: err, retryable: false });
      }
      if (isAuthFailure(err)) {
        throw new SluiceError(
          settings.errorCode,
          `SFTP authentication failed for user "${settings.username}" at ${where}`,
          { cause: err, retryable: false },
        );
      }
      throw new SluiceError(settings.errorCode, `cannot connect to SFTP server ${where}: ${reasonOf(err)}`, {
        cause: err,
        retryable: isSftpRetryable(err) ?? true,
      });
    }
  }

  /** Runs one SFTP request, turning its error into a SluiceError naming operation and path. */
  private request<T>(
    operation: string,
    path: string,
    run: (done: (err: unknown, value?: T) => void) => void,
  ): Promise<T> {
    return new Promise<T>((resolvePromise, reject) => {
      const fail = (err: unknown) =>
        reject(
          new SluiceError(this.settings.errorCode, `SFTP ${operation} ${path} failed: ${reasonOf(err)}`, {
            cause: err,
            retryable: isSftpRetryable(err),
          }),
        );
      if (this.dead) {
        fail(Object.assign(new Error('not connected'), { code: 'ERR_NOT_CONNECTED' }));
        return;
      }
      const off = this.onLost(fail);
      try {
        run((err, value) => {
          off();
          if (err) fail(err);
          else resolvePromise(value as T);
        });
      } catch (err) {
        off();
        fail(err);
      }
    });
  }

  private async assertAlive(operation: string, path: string): Promise<void> {
    if (this.dead) await this.request(operation, path, (done) => done(undefined));
  }

  async list(dir: string): Promise<RemoteEntry[]> {
    const raw = await this.request<Array<{ filename: string; attrs: Stats }>>('list', dir, (done) =>
      this.sftp.readdir(dir, done),
    );
    const entries: RemoteEntry[] = [];
    for (const { filename, attrs } of raw) {
      if (filename === '.' || filename === '..') continue;
      if (attrs.isSymbolicLink()) {
        // Follow links so a linked file is listed like any other; a dangling one is left out.
        const target = await this.stat(`${dir}/${filename}`).catch(() => undefined);
        if (target) entries.push({ name: filename, ...target, link: true });
      } else {
        entries.push({ name: filename, ...remoteStat(attrs) });
      }
    }
    return entries;
  }

  async stat(path: string): Promise<RemoteStat | undefined> {
    try {
      return remoteStat(await this.request<Stats>('stat', path, (done) => this.sftp.stat(path, done)));
    } catch (err) {
      if (
        (err as SluiceError).cause &&
        ((err as SluiceError).cause as { code?: unknown }).code === SFTP_NO_SUCH_FILE
      ) {
        return undefined;
      }
      throw err;
    }
  }

  async openRead(path: string, onDone: (err?: Error) => void): Promise<Readable> {
    await this.assertAlive('read', path);
    const stream = this.sftp.createReadStream(path, { highWaterMark: STREAM_CHUNK });
    // ssh2's stream errors name no file: relay through a stream whose errors say which one.
    const wrapped = new PassThrough({ highWaterMark: STREAM_CHUNK });
    let failure: SluiceError | undefined;
    // `on`, not `once`: ssh2 can emit a second error (e.g. "No response from server" when the
    // channel closes) after the first, and an unheard one would crash the process.
    stream.on('error', (err: unknown) => {
      if (failure) return;
      failure = new SluiceError(this.settings.errorCode, `SFTP read ${path} failed: ${reasonOf(err)}`, {
        cause: err,
        retryable: isSftpRetryable(err),
      });
      wrapped.destroy(failure);
    });
    stream.pipe(wrapped);
    const off = this.onLost((err) => stream.destroy(err));
    // Closed by the end of the data, a failure, or a consumer that stopped early.
    wrapped.once('close', () => {
      off();
      if (!stream.destroyed) stream.destroy();
      onDone(failure);
    });
    return wrapped;
  }

  async upload(path: string, body: Readable): Promise<void> {
    await this.assertAlive('write', path);
    const out = this.sftp.createWriteStream(path, { flags: 'w', highWaterMark: STREAM_CHUNK });
    // ssh2's typings omit destroy's error argument; the stream is a Node Writable.
    const off = this.onLost((err) => (out as unknown as { destroy(err: Error): void }).destroy(err));
    // pipeline() handles the first error; ssh2 may emit more after it gave up on the stream.
    out.on('error', () => {});
    try {
      await pipeline(body, out);
    } catch (err) {
      out.destroy();
      await finished(out).catch(() => {});
      if (err instanceof SluiceError) throw err;
      throw new SluiceError(this.settings.errorCode, `SFTP write ${path} failed: ${reasonOf(err)}`, {
        cause: err,
        retryable: isSftpRetryable(err),
      });
    } finally {
      off();
    }
  }

  async renameOver(from: string, to: string): Promise<void> {
    // Plain SFTP v3 rename refuses an existing target; OpenSSH's posix-rename replaces atomically.
    await this.request('rename', `${from} -> ${to}`, (done) => this.sftp.ext_openssh_rename(from, to, done));
  }

  async renameIfAbsent(from: string, to: string): Promise<boolean> {
    try {
      await this.request('rename', `${from} -> ${to}`, (done) => this.sftp.rename(from, to, done));
      return true;
    } catch (err) {
      // OpenSSH answers a taken target with a generic FAILURE: look before concluding.
      if (this.alive && (await this.stat(to))) return false;
      throw err;
    }
  }

  async remove(path: string): Promise<void> {
    await this.request('delete', path, (done) => this.sftp.unlink(path, done));
  }

  async setMtime(path: string, mtime: Date): Promise<boolean> {
    // SFTP v3 carries whole seconds; the access time becomes now, as `touch -m` leaves it alone.
    const seconds = Math.floor(mtime.getTime() / 1000);
    const now = Math.floor(Date.now() / 1000);
    await this.request('setstat', path, (done) => this.sftp.utimes(path, now, seconds, done));
    return true;
  }

  async mkdirp(dir: string): Promise<void> {
    if (dir === '.' || dir === '/' || dir === '') return;
    const existing = await this.stat(dir);
    if (existing?.type === 'directory') return;
    if (existing)
      throw new SluiceError(this.settings.errorCode, `SFTP mkdir ${dir}: a file is in the way`, {
        retryable: false,
      });
    const parent = dir.replace(/\/?[^/]+\/?$/, '');
    await this.mkdirp(parent);
    try {
      await this.request('mkdir', dir, (done) => this.sftp.mkdir(dir, done));
    } catch (err) {
      // Another upload may have created it meanwhile.
      if ((await this.stat(dir))?.type !== 'directory') throw err;
    }
  }

  async close(): Promise<void> {
    this.dead = true;
    await this.client.end().catch(() => {});
  }
}
