/**
 * SFTP connections for the sftp source and sink: config fields they share, the way to the
 * server (jump.ts), a pool of ssh2-sftp-client sessions, pipelined reads and writes, and error
 * classification.
 */
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Static, Type } from '@sinclair/typebox';
import type { SFTPWrapper, Client as SshClient, Stats } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';
import { type ErrorCode, isRetryableByDefault, SluiceError } from '../../core/errors.js';
import type { PluginContext } from '../../core/plugin-api.js';
import { Duration } from '../../core/schema-fragments.js';
import { STREAM_CHUNK } from '../../core/streams.js';
import { parseDuration } from '../../core/units.js';
import type { PreflightTraits } from '../remote-fs/check.js';
import type { RemoteConnection, RemoteEntry, RemoteFolder, RemoteStat } from '../remote-fs/connection.js';
import { remoteFsFields } from '../remote-fs/fields.js';
import { ConnectionPool } from '../remote-fs/pool.js';
import { autocork } from './autocork.js';
import { hopLogin, isAuthFailure, loginFailure, resolveHop, type SshHop, sshLoginFields } from './hop.js';
import { openRoute, type Route } from './jump.js';
import {
  grownRequestsInFlight,
  pipelinedRead,
  SFTP_READ_CHUNK,
  SFTP_REQUESTS_IN_FLIGHT,
} from './pipelined-read.js';
import { pipelinedWrite, SFTP_UPLOAD_CHANNELS, type SftpWriteOps } from './pipelined-write.js';
import { type ProxySettings, parseProxyUrl, proxyField } from './proxy.js';
import { receiveWindowFor, widenReceiveWindow } from './window.js';

export const sftpConnectionFields = {
  ...sshLoginFields,
  jump: Type.Optional(
    Type.Object(sshLoginFields, {
      additionalProperties: false,
      description:
        'Reach the server through this SSH jump host (as `ssh -J`): its own login and pinned host key; the server is then connected over a channel the jump host opens.',
    }),
  ),
  proxy: Type.Optional(proxyField),
  ...remoteFsFields('SSH sessions'),
  connect_timeout: Duration({
    default: '20s',
    description: 'Time allowed for connecting and the SSH handshake.',
  }),
  keepalive_interval: Duration({
    default: '15s',
    description: 'Interval of SSH keepalive messages; a server silent for 3 intervals counts as dropped.',
  }),
  requests_in_flight: Type.Integer({
    minimum: 1,
    maximum: 256,
    default: SFTP_REQUESTS_IN_FLIGHT,
    description:
      'SFTP read/write requests of 32 KiB kept outstanding per file (as OpenSSH `sftp -R`): what decides throughput over a link with latency. A read whose consumer keeps waiting on the server doubles them, up to `requests_in_flight_max`. Memory per file is this × 32 KiB.',
  }),
  requests_in_flight_max: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 1024,
      description:
        'Most READ requests a file read grows to while its reader waits on the server (a link with latency). Default: 4 × `requests_in_flight`, at most 128 (4 MiB; rclone keeps 4 streams of 64 for a big file). Set it to `requests_in_flight` for a server that must not see more.',
    }),
  ),
};

/** The sink's own: how many SSH channels one big upload may spread its WRITEs over. */
export const sftpUploadFields = {
  upload_channels: Type.Integer({
    minimum: 1,
    maximum: 4,
    default: SFTP_UPLOAD_CHANNELS,
    description:
      "SFTP channels one file's upload may use at once. A server gives each channel a window of unacknowledged bytes (OpenSSH: 2 MiB, topped up at half), which bounds one channel to about 1.5 MiB a round trip (30 MB/s over 50 ms) however many requests are in flight. An upload that has sent two rounds of `requests_in_flight` and still waits on the server opens the file on another channel of the same connection (kept for the connection's later uploads) and spreads its WRITEs over both, each with its own `requests_in_flight`. Each further channel holds up to `requests_in_flight` × 32 KiB more of the file in memory while it uploads. 1: one channel. A server that refuses another channel (`MaxSessions`) is written over the channels it gave.",
  }),
};

const connectionSchema = Type.Object(sftpConnectionFields);
export type SftpConnectionConfig = Static<typeof connectionSchema>;

export interface SftpSettings extends SshHop {
  jump?: SshHop;
  proxy?: ProxySettings;
  connectTimeoutMs: number;
  keepaliveMs: number;
  requestsInFlight: number;
  /** What a read's requests in flight may grow to (pipelined-read.ts grownRequestsInFlight). */
  readRequestsMax: number;
  /** Channels one upload may spread over (`upload_channels`; 1 for a source). */
  uploadChannels: number;
  /** Error code for failures: the source and sink report under their own. */
  errorCode: ErrorCode;
}

/** Validates the connection part of a config, reads key files and registers every secret. */
export async function sftpSettings(
  config: Omit<SftpConnectionConfig, 'path'> & { upload_channels?: number },
  ctx: PluginContext,
  errorCode: ErrorCode,
): Promise<SftpSettings> {
  return {
    ...(await resolveHop(config, ctx, 'SFTP server')),
    jump: config.jump && (await resolveHop(config.jump, ctx, 'SSH jump host', 'jump/')),
    proxy: config.proxy && parseProxyUrl(config.proxy.url, '/proxy/url'),
    connectTimeoutMs: parseDuration(config.connect_timeout),
    keepaliveMs: parseDuration(config.keepalive_interval),
    // Configs built in code (tests, embedders) may skip the schema's defaults.
    requestsInFlight: config.requests_in_flight ?? SFTP_REQUESTS_IN_FLIGHT,
    readRequestsMax: grownRequestsInFlight(
      config.requests_in_flight ?? SFTP_REQUESTS_IN_FLIGHT,
      config.requests_in_flight_max,
    ),
    uploadChannels: config.upload_channels ?? 1,
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
const SFTP_EOF = 1;
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

function reasonOf(err: unknown): string {
  const raw = err as { code?: unknown; message?: unknown };
  if (raw?.code === SFTP_NO_SUCH_FILE) return 'no such file';
  if (raw?.code === SFTP_PERMISSION_DENIED) return 'permission denied';
  return typeof raw?.message === 'string' ? raw.message : String(err);
}

/* ----------------------------------------------------------------------------- connection */

/** One name of a READDIR reply, as ssh2 gives it. */
type DirEntry = { filename: string; attrs: Stats };

function remoteStat(stats: Stats): RemoteStat {
  return {
    type: stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : 'other',
    size: stats.size,
    mtime: new Date(stats.mtime * 1000),
  };
}

class SftpConnection implements RemoteConnection {
  private dead = false;
  /** Extra channels for uploads (pipelined-write.ts lanes), by index. */
  private readonly extraChannels = new Map<number, Promise<SftpWriteOps | undefined>>();
  /** Called once when the session dies: operations in flight on it fail instead of hanging. */
  private readonly lostListeners = new Set<(err: Error) => void>();

  private constructor(
    private readonly client: SftpClient,
    private readonly sftp: SFTPWrapper,
    private readonly settings: SftpSettings,
    private readonly route: Route,
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
    const route = await openRoute({
      target: settings,
      jump: settings.jump,
      proxy: settings.proxy,
      connectTimeoutMs: settings.connectTimeoutMs,
      keepaliveMs: settings.keepaliveMs,
      errorCode: settings.errorCode,
      isRetryable: isSftpRetryable,
    });
    const login = hopLogin(settings);
    let connection: SftpConnection | undefined;
    const markDead = () => {
      connection?.markLost();
    };
    // The library's default listeners print to the console; ours only mark the session dead.
    const client = new Client('sluice', { error: markDead, end: markDead, close: markDead });
    // Without TCP_NODELAY every SFTP request waits out Nagle + delayed ACK (~40 ms a round trip);
    // with it, the packets of one event-loop turn are still sent in one writev (autocork.ts).
    client.on('connect', () => {
      const ssh = (client as unknown as { client: { setNoDelay(on: boolean): void; _sock?: Writable } })
        .client;
      ssh.setNoDelay(true);
      // A jump route's channel is left alone: it sends each write as its own packet anyway,
      // and the jump host's socket under it is corked (jump.ts).
      if (ssh._sock instanceof Socket) autocork(ssh._sock);
    });
    try {
      const sftp = await client.connect({
        ...login.options,
        sock: route.sock,
        readyTimeout: settings.connectTimeoutMs,
        keepaliveInterval: settings.keepaliveMs,
        keepaliveCountMax: 3,
      });
      // Room for every READ in flight (grown as far as a read may grow them): ssh2's own 2 MiB
      // window stalls them over latency.
      widenReceiveWindow(sftp, receiveWindowFor(settings.readRequestsMax, SFTP_READ_CHUNK));
      connection = new SftpConnection(client, sftp, settings, route);
      return connection;
    } catch (err) {
      void client.end().catch(() => {});
      route.close();
      throw loginFailure(settings, login.seen, err, settings.errorCode, isSftpRetryable);
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
    const raw = await this.request<DirEntry[]>('list', dir, (done) => this.sftp.readdir(dir, done));
    return this.entriesOf(dir, raw);
  }

  /**
   * `dir` read one READDIR reply at a time (OpenSSH sends up to 100 names a reply), where
   * `readdir(path)` gathers the whole folder into one array before answering.
   */
  async openFolder(dir: string): Promise<RemoteFolder> {
    const handle = await this.request<Buffer>('list', dir, (done) => this.sftp.opendir(dir, done));
    let ended = false;
    let closing: Promise<void> | undefined;
    return {
      next: async () => {
        if (ended || closing) return undefined;
        const raw = await this.request<DirEntry[] | undefined>('list', dir, (done) =>
          this.sftp.readdir(handle, (err, list) =>
            (err as { code?: unknown } | undefined)?.code === SFTP_EOF ? done(undefined) : done(err, list),
          ),
        );
        if (raw === undefined) {
          ended = true;
          return undefined;
        }
        return this.entriesOf(dir, raw);
      },
      close: () => {
        closing ??= this.dead
          ? Promise.resolve()
          : this.request<void>('close', dir, (done) => this.sftp.close(handle, done)).catch(() => {});
        return closing;
      },
    };
  }

  /** Listed names as entries, without `.` and `..`; a link is followed (a dangling one left out). */
  private async entriesOf(dir: string, raw: DirEntry[]): Promise<RemoteEntry[]> {
    const entries: RemoteEntry[] = [];
    for (const { filename, attrs } of raw) {
      if (filename === '.' || filename === '..') continue;
      if (attrs.isSymbolicLink()) {
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

  async lstat(path: string): Promise<(RemoteStat & { link: boolean }) | undefined> {
    try {
      const st = await this.request<Stats>('lstat', path, (done) => this.sftp.lstat(path, done));
      return { ...remoteStat(st), link: st.isSymbolicLink() };
    } catch (err) {
      if (((err as SluiceError).cause as { code?: unknown } | undefined)?.code === SFTP_NO_SUCH_FILE)
        return undefined;
      throw err;
    }
  }

  async openRead(path: string, onDone: (err?: Error) => void): Promise<Readable> {
    await this.assertAlive('read', path);
    let failure: SluiceError | undefined;
    const stream = pipelinedRead(this.sftp, path, {
      requestsInFlight: this.settings.requestsInFlight,
      maxRequestsInFlight: this.settings.readRequestsMax,
      highWaterMark: STREAM_CHUNK,
      describeError: (operation, err) => {
        failure = this.failure(operation, path, err);
        return failure;
      },
      onSessionLost: (listener) => this.onLost(listener),
    });
    // Closed by the end of the data, a failure, or a consumer that stopped early.
    stream.once('close', () => onDone(failure));
    return stream;
  }

  async upload(path: string, body: Readable): Promise<void> {
    await this.assertAlive('write', path);
    const out = pipelinedWrite(this.sftp, path, {
      requestsInFlight: this.settings.requestsInFlight,
      maxLanes: this.settings.uploadChannels,
      extraLane: (index) => this.extraChannel(index),
      highWaterMark: STREAM_CHUNK,
      describeError: (operation, err) => this.failure(operation, path, err),
      onSessionLost: (listener) => this.onLost(listener),
    });
    try {
      await pipeline(body, out);
    } catch (err) {
      // The caller removes the temp file next: let the handle's close be answered first.
      if (!out.closed) await new Promise((resolveClose) => out.once('close', resolveClose));
      throw err instanceof SluiceError ? err : this.failure('write', path, err);
    }
  }

  private failure(operation: string, path: string, err: unknown): SluiceError {
    return new SluiceError(this.settings.errorCode, `SFTP ${operation} ${path} failed: ${reasonOf(err)}`, {
      cause: err,
      retryable: isSftpRetryable(err),
    });
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
    try {
      await this.request('setstat', path, (done) => this.sftp.utimes(path, now, seconds, done));
      return true;
    } catch (err) {
      // Servers that refuse SETSTAT by policy (sftp-server -P, some managed services) keep
      // the upload time: the file is delivered all the same, only its mtime is not kept.
      const { code } = ((err as SluiceError).cause ?? {}) as { code?: unknown };
      if (this.alive && (code === SFTP_PERMISSION_DENIED || code === SFTP_OP_UNSUPPORTED)) return false;
      throw err;
    }
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

  /**
   * The `index`th extra SFTP channel of this connection (1, 2, …), opened at the first upload
   * that asks for it and kept; undefined when the server refuses it (asked once).
   */
  private extraChannel(index: number): Promise<SftpWriteOps | undefined> {
    let channel = this.extraChannels.get(index);
    if (!channel) {
      channel = this.openChannel(index);
      this.extraChannels.set(index, channel);
    }
    return channel;
  }

  /**
   * Another SFTP channel, as the write calls a lane makes, counting the handles open on it. An
   * idle one that the server closes (OpenSSH's `ChannelTimeout`) is only forgotten; one that
   * closes under an open handle ends the session for the uploads on it: ssh2 leaves requests
   * sent on a closed channel unanswered, the CLOSE of that handle among them.
   */
  private openChannel(index: number): Promise<SftpWriteOps | undefined> {
    if (this.dead) return Promise.resolve(undefined);
    const ssh = (this.client as unknown as { client: SshClient }).client;
    return new Promise((resolveChannel) => {
      try {
        ssh.sftp((err, sftp) => {
          if (err) {
            resolveChannel(undefined);
            return;
          }
          let handles = 0;
          let ended = false;
          const end = () => {
            if (ended) return;
            ended = true;
            this.extraChannels.delete(index);
            if (handles > 0) this.markLost();
          };
          sftp.once('close', end);
          sftp.once('end', end);
          // A protocol error on the channel: ssh2 emits it with no listener of its own left.
          sftp.on('error', end);
          resolveChannel({
            open: ((path: string, flags: number, cb: (err: Error | undefined, handle: Buffer) => void) =>
              sftp.open(path, flags, (openErr, handle) => {
                if (!openErr) handles++;
                cb(openErr, handle);
              })) as SftpWriteOps['open'],
            write: sftp.write.bind(sftp),
            close: ((handle: Buffer, cb: (err?: Error | null) => void) =>
              sftp.close(handle, (closeErr) => {
                handles--;
                cb(closeErr);
              })) as SftpWriteOps['close'],
          });
        });
      } catch {
        resolveChannel(undefined);
      }
    });
  }

  async close(): Promise<void> {
    this.dead = true;
    await this.client.end().catch(() => {});
    this.route.close();
  }
}
