/**
 * Loggers for the CLI: pino JSON lines (off a TTY, or `--log-format json`) or short human
 * lines on a TTY. Every line passes through `redact`, so secrets never reach the output.
 */
import { closeSync, existsSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import pino from 'pino';
import { SluiceError } from '../errors.js';
import { parseSize } from '../units.js';
import type { Logger } from './logger.js';
import { redact } from './redact.js';

export type LogFormat = 'json' | 'pretty';
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `--log-level`, `SLUICE_LOG_LEVEL` or `log_level:`, checked; `where` names which one it came from. */
export function parseLogLevel(value: string, where: string): LogLevel {
  const level = value.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new SluiceError('SLUICE_E_USAGE', `${where} is one of ${LOG_LEVELS.join(', ')}, got "${value}"`);
}

export interface LogOptions {
  format: LogFormat;
  level?: LogLevel | 'silent';
  /** Format of `file` and `errorFile` (default json: one object per line). */
  fileFormat?: LogFormat;
  /** Where lines go (default stderr). */
  destination?: NodeJS.WritableStream;
  /** Also append JSON lines to this file. */
  file?: string;
  /** Also append error (and fatal) JSON lines to this file. */
  errorFile?: string;
  /** Rotation of `file` and `errorFile`. */
  rotate?: RotationPolicy;
  color?: boolean;
}

/** Rotate when a file would pass `maxBytes`, and/or when the (local) day changes; keep `keep` old files. */
export interface RotationPolicy {
  maxBytes?: number;
  daily?: boolean;
  keep: number;
}

/** `--log-rotate 10MiB|daily` and `--log-keep N` into a policy. */
export function parseRotation(
  rotate: string | undefined,
  keep: string | number | undefined,
): RotationPolicy | undefined {
  if (rotate === undefined) return undefined;
  const keepN = keep === undefined ? 5 : Number(keep);
  if (!Number.isInteger(keepN) || keepN < 1)
    throw new SluiceError('SLUICE_E_USAGE', `--log-keep takes a whole number ≥ 1, got "${keep}"`);
  if (rotate === 'daily') return { daily: true, keep: keepN };
  let maxBytes: number;
  try {
    maxBytes = parseSize(rotate);
  } catch {
    throw new SluiceError('SLUICE_E_USAGE', `--log-rotate takes a size (10MiB) or "daily", got "${rotate}"`);
  }
  if (!(maxBytes > 0))
    throw new SluiceError('SLUICE_E_USAGE', `--log-rotate size must be more than 0, got "${rotate}"`);
  return { maxBytes, keep: keepN };
}

/**
 * An append-only log file with rotation: `app.log` → `app.log.1` → … → `app.log.<keep>`
 * (newest first). Writes are synchronous so lines keep their order and none is lost on exit.
 */
export class RotatingFile {
  private fd: number;
  private size: number;
  private day: string;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly policy: RotationPolicy | undefined,
  ) {
    try {
      this.fd = openSync(path, 'a');
    } catch (err) {
      throw new SluiceError(
        'SLUICE_E_USAGE',
        `cannot open the log file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        {
          context: { hint: 'its folder must exist and be writable' },
        },
      );
    }
    const st = statSync(path);
    this.size = st.size;
    this.day = localDay(st.size > 0 ? st.mtime : new Date());
  }

  write(line: string): void {
    if (this.closed) return;
    const bytes = Buffer.byteLength(line);
    const p = this.policy;
    if (p && this.size > 0) {
      const today = localDay(new Date());
      if ((p.maxBytes !== undefined && this.size + bytes > p.maxBytes) || (p.daily && today !== this.day))
        this.rotate();
    }
    writeSync(this.fd, line);
    this.size += bytes;
  }

  private rotate(): void {
    closeSync(this.fd);
    const keep = this.policy!.keep;
    rmSync(`${this.path}.${keep}`, { force: true });
    for (let i = keep - 1; i >= 1; i--)
      if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    renameSync(this.path, `${this.path}.1`);
    this.fd = openSync(this.path, 'a');
    this.size = 0;
    this.day = localDay(new Date());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

function localDay(d: Date): string {
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const LEVEL_COLORS: Record<number, string> = {
  20: '\x1b[90m',
  30: '\x1b[36m',
  40: '\x1b[33m',
  50: '\x1b[31m',
  60: '\x1b[31m',
};
const OMIT = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

export interface CreatedLogger {
  logger: Logger;
  /**
   * Appends an info line to the log file whatever the level (a pass's summary must reach the
   * file under --quiet too). Nothing when there is no log file.
   */
  toFile(fields: Record<string, unknown>, msg: string): void;
  close(): Promise<void>;
}

export function createLogger(options: LogOptions): CreatedLogger {
  const out = options.destination ?? process.stderr;
  const file = options.file ? new RotatingFile(options.file, options.rotate) : undefined;
  const errorFile = options.errorFile ? new RotatingFile(options.errorFile, options.rotate) : undefined;
  const inFile = (line: string) => (options.fileFormat === 'pretty' ? humanLine(line, false) : line);
  const writeFiles = (line: string) => {
    try {
      file?.write(inFile(line));
      if (errorFile && /"level":(5|6)\d\b/.test(line)) errorFile.write(inFile(line));
    } catch (err) {
      out.write(`sluice: cannot write the log file: ${(err as Error).message}\n`);
    }
  };
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const line = redact(chunk.toString());
      writeFiles(line);
      out.write(options.format === 'json' ? line : humanLine(line, options.color === true));
      cb();
    },
  });
  const logger = pino(
    { level: options.level ?? 'info', base: undefined, timestamp: pino.stdTimeFunctions.isoTime },
    sink,
  );
  return {
    logger: logger as unknown as Logger,
    toFile(fields, msg) {
      if (!file) return;
      const line = JSON.stringify({ level: 30, time: new Date().toISOString(), ...fields, msg });
      writeFiles(`${redact(line)}\n`);
    },
    close: async () => {
      file?.close();
      errorFile?.close();
    },
  };
}

function humanLine(jsonLine: string, color: boolean): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const level = rec.level as number;
  const time = typeof rec.time === 'string' ? rec.time.slice(11, 19) : '';
  const name = LEVEL_NAMES[level] ?? String(level);
  const extras = Object.entries(rec)
    .filter(([k]) => !OMIT.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const tag = color ? `${LEVEL_COLORS[level] ?? ''}${name.padEnd(5)}\x1b[0m` : name.padEnd(5);
  return `${time} ${tag} ${rec.msg ?? ''}${extras ? `  ${extras}` : ''}\n`;
}
