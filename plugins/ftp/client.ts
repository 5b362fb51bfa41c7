/**
 * FTP/FTPS connections for the ftp source and sink: config fields they share, TLS, a pool of
 * basic-ftp clients (one control connection runs one command at a time) and error classification.
 */
import { readFile } from 'node:fs/promises';
import { posix, resolve } from 'node:path';
import { PassThrough, type Readable, Writable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { type Static, Type } from '@sinclair/typebox';
import type { Client, FileInfo } from 'basic-ftp';
import { type ErrorCode, isRetryableByDefault, SluiceError } from '../../core/errors.js';
import type { PluginContext } from '../../core/plugin-api.js';
import { Duration, Secret } from '../../core/schema-fragments.js';
import { STREAM_CHUNK } from '../../core/streams.js';
import { parseDuration } from '../../core/units.js';
import type { PreflightTraits } from '../remote-fs/check.js';
import type { RemoteConnection, RemoteEntry, RemoteStat } from '../remote-fs/connection.js';
import { remoteFsFields } from '../remote-fs/fields.js';
import { ConnectionPool } from '../remote-fs/pool.js';

export const ftpConnectionFields = {
  host: Type.String({ minLength: 1, description: 'Server host name or IP address.' }),
  port: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 65535,
      description: 'Control port (default 21, or 990 for implicit TLS).',
    }),
  ),
  username: Type.String({ default: 'anonymous', description: 'Login user.' }),
  password: Type.Optional(Secret(Type.String({ description: 'Login password.' }))),
  secure: Type.Union(
    [Type.Literal(false), Type.Literal(true), Type.Literal('explicit'), Type.Literal('implicit')],
    {
      default: false,
      description:
        'TLS: `false` plain FTP, `explicit` (or `true`) upgrades with AUTH TLS (FTPES), `implicit` speaks TLS from the first byte (FTPS, usually port 990). Data connections are protected too.',
    },
  ),
  ca_file: Type.Optional(
    Type.String({
      description:
        'PEM file of the CA (or self-signed certificate) to trust for TLS, relative to the pipeline file.',
    }),
  ),
  insecure_tls: Type.Boolean({
    default: false,
    description: 'Accept any TLS certificate (no verification). Only for tests and throwaway servers.',
  }),
  ...remoteFsFields('control connections'),
  timeout: Duration({
    default: '30s',
    description: 'Time allowed for connecting and for each reply or data transfer stall.',
  }),
  keepalive_interval: Duration({
    default: '60s',
    description: 'Idle connections send NOOP this often so servers do not drop them; 0 disables.',
  }),
};

const connectionSchema = Type.Object(ftpConnectionFields);
export type FtpConnectionConfig = Static<typeof connectionSchema>;

export interface FtpSettings {
  host: string;
  port: number;
  username: string;
  password?: string;
  secure: false | 'explicit' | 'implicit';
  tls: ConnectionOptions;
  timeoutMs: number;
  keepaliveMs: number;
  errorCode: ErrorCode;
}

export async function ftpSettings(
  config: Omit<FtpConnectionConfig, 'path'>,
  ctx: PluginContext,
  errorCode: ErrorCode,
): Promise<FtpSettings> {
  const secure = config.secure === true ? 'explicit' : config.secure;
  const tls: ConnectionOptions = { rejectUnauthorized: !config.insecure_tls };
  // Empty counts as unset, so that `ca_file: ${FTP_CA_FILE:-}` keeps the system CAs by default.
  if (config.ca_file !== undefined && config.ca_file !== '') {
    const file = resolve(ctx.baseDir, config.ca_file);
    try {
      tls.ca = await readFile(file);
    } catch (err) {
      throw new SluiceError('SLUICE_E_CONFIG', `cannot read ca_file ${file}: ${(err as Error).message}`, {
        context: { jsonPath: '/ca_file' },
      });
    }
  }
  if (config.insecure_tls && secure) {
    ctx.log.warn(
      { host: config.host },
      `insecure_tls is on: the TLS certificate of FTP server ${config.host} is NOT verified; anyone on the network path can intercept credentials and files`,
    );
  }
  return {
    host: config.host,
    port: config.port ?? (secure === 'implicit' ? 990 : 21),
    username: config.username,
    password: config.password,
    secure,
    tls,
    timeoutMs: parseDuration(config.timeout),
    keepaliveMs: parseDuration(config.keepalive_interval),
    errorCode,
  };
}

/** A pool of FTP control connections; loads basic-ftp on first use. */
export async function createFtpPool(settings: FtpSettings, maxConnections: number) {
  const ftp = await import('basic-ftp');
  return new ConnectionPool<RemoteConnection>({
    connect: () => FtpConnection.open(ftp.Client, settings),
    maxConnections,
    isConnectionLost: isFtpConnectionLost,
    keepaliveMs: settings.keepaliveMs,
  });
}

export function ftpLocation(settings: FtpSettings, path: string): string {
  const scheme = settings.secure ? 'ftps' : 'ftp';
  const absolute = path.startsWith('/') ? path : `/~/${path === '.' ? '' : path}`;
  return `${scheme}://${settings.host}:${settings.port}${absolute}`;
}

/** What the shared pre-flight checks need to know about FTP. */
export function ftpPreflight(settings: FtpSettings): PreflightTraits {
  return {
    account: `${settings.username}@${settings.host}:${settings.port}`,
    errorCode: settings.errorCode,
    // 550 (not available), 553 (name not allowed: vsftpd's "Could not create file"), 532 (need an account).
    isPermissionDenied: (err) =>
      [532, 550, 553].includes(ftpReplyCode(err instanceof SluiceError ? err.cause : err) ?? 0),
    absentMayBeForbidden: true,
  };
}

/* ------------------------------------------------------------------ error classification */

// "Can't parse response": basic-ftp got a reply cut off mid-line (e.g. `229` without its
// port) — the control connection broke, as the fault suite shows with resets.
const LOST_MESSAGE =
  /client is closed|server closed connection|FIN packet|socket closed|timeout \(|ECONNRESET|EPIPE|not connected|can't parse response/i;
const TLS_TRUST_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_/;

function ftpReplyCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' && code >= 100 && code < 600 ? code : undefined;
}

export function isFtpConnectionLost(err: unknown): boolean {
  for (let e = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (code === 421) return true;
    if (typeof code === 'string' && /^E(CONNRESET|PIPE|TIMEDOUT|CONNABORTED)$/.test(code)) return true;
    if (typeof message === 'string' && LOST_MESSAGE.test(message)) return true;
    if ((e as { cause?: unknown }).cause === e) break;
  }
  return false;
}

/** Dropped connections, timeouts and 4xx replies retry; 5xx (login, missing file, permission) and TLS trust don't. */
export function isFtpRetryable(err: unknown): boolean | undefined {
  if (err instanceof SluiceError && err.retryable !== undefined) return err.retryable;
  if (isFtpConnectionLost(err)) return true;
  const raw = err instanceof SluiceError ? err.cause : err;
  const reply = ftpReplyCode(raw);
  if (reply !== undefined) return reply >= 400 && reply < 500;
  const code = (raw as { code?: unknown })?.code;
  if (typeof code === 'string' && TLS_TRUST_CODES.test(code)) return false;
  return isRetryableByDefault(err);
}

function reasonOf(err: unknown): string {
  const message = (err as { message?: unknown })?.message;
  return typeof message === 'string' ? message : String(err);
}

/* ----------------------------------------------------------------------------- connection */

/** `YYYYMMDDHHMMSS` in UTC, as MFMT, MDTM and MLSD write times (RFC 3659). */
function ftpTimestamp(date: Date): string {
  return date.toISOString().slice(0, 19).replace(/[-T:]/g, '');
}

function entryType(info: FileInfo): RemoteEntry['type'] {
  return info.isFile ? 'file' : info.isDirectory ? 'directory' : 'other';
}

class FtpConnection implements RemoteConnection {
  /** See `mtimeCommand`; null once known that the server cannot set times. */
  private mtimeSetter: 'MFMT' | 'MDTM' | null | undefined;

  private constructor(
    private readonly client: Client,
    /** Login folder: relative paths resolve against it, so `cd` (ensureDir) never shifts them. */
    private readonly home: string,
    private readonly settings: FtpSettings,
  ) {}

  get alive(): boolean {
    return !this.client.closed;
  }

  static async open(ClientClass: typeof Client, settings: FtpSettings): Promise<FtpConnection> {
    const where = `${settings.host}:${settings.port}`;
    const client = new ClientClass(settings.timeoutMs);
    client.ftp.verbose = false;
    try {
      await client.access({
        host: settings.host,
        port: settings.port,
        user: settings.username,
        password: settings.password,
        secure: settings.secure === 'implicit' ? 'implicit' : settings.secure === 'explicit',
        secureOptions: { ...settings.tls },
      });
      return new FtpConnection(client, await client.pwd(), settings);
    } catch (err) {
      client.close();
      const reply = ftpReplyCode(err);
      if (reply === 530) {
        throw new SluiceError(
          settings.errorCode,
          `FTP login failed for user "${settings.username}" at ${where}`,
          {
            cause: err,
            retryable: false,
          },
        );
      }
      const code = (err as { code?: unknown })?.code;
      if (typeof code === 'string' && TLS_TRUST_CODES.test(code)) {
        throw new SluiceError(
          settings.errorCode,
          `TLS certificate of FTP server ${where} is not trusted (${reasonOf(err)}): set ca_file to its CA or certificate`,
          { cause: err, retryable: false },
        );
      }
      throw new SluiceError(settings.errorCode, `cannot connect to FTP server ${where}: ${reasonOf(err)}`, {
        cause: err,
        retryable: isFtpRetryable(err) ?? true,
      });
    }
  }

  private absolute(path: string): string {
    return posix.resolve(this.home, path);
  }

  /** Runs one FTP exchange, turning its error into a SluiceError naming operation and path. */
  private async request<T>(operation: string, path: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw this.wrap(operation, path, err);
    }
  }

  private wrap(operation: string, path: string, err: unknown): SluiceError {
    if (err instanceof SluiceError) return err;
    return new SluiceError(this.settings.errorCode, `FTP ${operation} ${path} failed: ${reasonOf(err)}`, {
      cause: err,
      retryable: isFtpRetryable(err),
    });
  }

  async keepalive(): Promise<void> {
    await this.client.send('NOOP');
  }

  async list(dir: string): Promise<RemoteEntry[]> {
    const where = this.absolute(dir);
    // LIST takes its argument as a pattern on some servers (vsftpd): list the working folder instead.
    const infos = await this.request('list', where, async () => {
      await this.client.cd(where);
      return this.client.list();
    });
    const entries: RemoteEntry[] = [];
    for (const info of infos) {
      if (info.name === '.' || info.name === '..') continue;
      const path = posix.join(where, info.name);
      if (info.isSymbolicLink) {
        const target = await this.stat(path).catch(() => undefined);
        if (target) entries.push({ name: info.name, ...target, link: true });
        continue;
      }
      // Without MLSD, LIST dates are minute-precise local text: ask MDTM for files (UTC seconds).
      const mtime = info.modifiedAt ?? (info.isFile ? await this.modifiedAt(path) : undefined);
      entries.push({ name: info.name, type: entryType(info), size: info.size, mtime });
    }
    return entries;
  }

  private async modifiedAt(path: string): Promise<Date | undefined> {
    try {
      return await this.client.lastMod(path);
    } catch (err) {
      if (!this.alive) throw this.wrap('mdtm', path, err);
      return undefined;
    }
  }

  async stat(path: string): Promise<RemoteStat | undefined> {
    const where = this.absolute(path);
    try {
      const size = await this.client.size(where);
      return { type: 'file', size, mtime: await this.modifiedAt(where) };
    } catch (err) {
      if (ftpReplyCode(err) !== 550) throw this.wrap('stat', where, err);
    }
    // SIZE refuses folders and missing files alike: a folder is one we can enter.
    try {
      await this.client.cd(where);
      return { type: 'directory', size: 0 };
    } catch (err) {
      if (ftpReplyCode(err) === 550) return undefined;
      throw this.wrap('stat', where, err);
    }
  }

  async openRead(path: string, onDone: (err?: Error) => void): Promise<Readable> {
    const where = this.absolute(path);
    const out = new PassThrough({ highWaterMark: STREAM_CHUNK });
    let settled = false;
    // basic-ftp ends its destination even after a failed transfer: hand it an adapter and end
    // `out` ourselves only when the transfer really completed, so a failure can't look like EOF.
    const adapter = new Writable({
      highWaterMark: STREAM_CHUNK,
      write(chunk: Buffer, _encoding, callback) {
        if (out.destroyed) return callback(new Error('reader went away'));
        if (out.write(chunk)) return callback();
        const resume = () => {
          out.off('drain', resume);
          out.off('close', resume);
          callback();
        };
        out.on('drain', resume);
        out.on('close', resume);
      },
    });
    out.once('close', () => {
      // A consumer that stopped early: abandon the transfer (the connection is then dropped).
      if (!settled) this.client.close();
    });
    this.client.downloadTo(adapter, where).then(
      () => {
        settled = true;
        out.end();
        onDone();
      },
      (err: unknown) => {
        settled = true;
        const error = this.wrap('read', where, err);
        out.destroy(error);
        onDone(error);
      },
    );
    return out;
  }

  async upload(path: string, body: Readable): Promise<void> {
    const where = this.absolute(path);
    let bodyError: unknown;
    body.once('error', (err) => {
      bodyError = err;
    });
    try {
      await this.client.uploadFrom(body, where);
    } catch (err) {
      // basic-ftp closes the connection on a body error; report the body's own error.
      throw bodyError ?? this.wrap('write', where, err);
    }
  }

  async renameOver(from: string, to: string): Promise<void> {
    const source = this.absolute(from);
    const target = this.absolute(to);
    try {
      await this.client.rename(source, target);
    } catch (err) {
      // Servers on file systems without replacing rename refuse a taken target: delete, then rename.
      if (ftpReplyCode(err) === undefined || !(await this.stat(target)))
        throw this.wrap('rename', `${source} -> ${target}`, err);
      await this.request('delete', target, () => this.client.remove(target));
      await this.request('rename', `${source} -> ${target}`, () => this.client.rename(source, target));
    }
  }

  async renameIfAbsent(from: string, to: string): Promise<boolean> {
    // FTP has no exclusive rename: check, then rename (a concurrent writer can slip in between).
    if (await this.stat(to)) return false;
    const source = this.absolute(from);
    const target = this.absolute(to);
    await this.request('rename', `${source} -> ${target}`, () => this.client.rename(source, target));
    return true;
  }

  async remove(path: string): Promise<void> {
    const where = this.absolute(path);
    await this.request('delete', where, () => this.client.remove(where));
  }

  async setMtime(path: string, mtime: Date): Promise<boolean> {
    const where = this.absolute(path);
    const command = await this.mtimeCommand();
    if (command === undefined) return false;
    const stamp = ftpTimestamp(mtime);
    try {
      await this.client.send(command === 'MFMT' ? `MFMT ${stamp} ${where}` : `MDTM ${stamp} ${where}`);
      return true;
    } catch (err) {
      // A server that reads `MDTM <time> <path>` as a query for a file of that name refuses it:
      // it cannot set times this way, so do not ask again on this connection.
      const reply = ftpReplyCode(err);
      if (command === 'MDTM' && this.alive && reply !== undefined && reply >= 500) {
        this.mtimeSetter = null;
        return false;
      }
      throw this.wrap('set mtime of', where, err);
    }
  }

  /**
   * How this server sets a file's time: MFMT when FEAT advertises it (ProFTPD, Pure-FTPd,
   * FileZilla Server…), else the two-argument MDTM form vsftpd and Serv-U take (not
   * advertised; tried once and dropped when refused); undefined when neither works.
   */
  private async mtimeCommand(): Promise<'MFMT' | 'MDTM' | undefined> {
    if (this.mtimeSetter === undefined) {
      const features = await this.request('feat', this.home, () => this.client.features());
      this.mtimeSetter = features.has('MFMT') ? 'MFMT' : features.has('MDTM') ? 'MDTM' : null;
    }
    return this.mtimeSetter ?? undefined;
  }

  async mkdirp(dir: string): Promise<void> {
    const where = this.absolute(dir);
    await this.request('mkdir', where, () => this.client.ensureDir(where));
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
