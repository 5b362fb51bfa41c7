/**
 * Loggers for the CLI: pino JSON lines (off a TTY, or `--log-format json`) or short human
 * lines on a TTY. Every line passes through `redact`, so secrets never reach the output.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from './logger.js';
import { redact } from './redact.js';

export type LogFormat = 'json' | 'pretty';

export interface LogOptions {
  format: LogFormat;
  level?: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Where lines go (default stderr). */
  destination?: NodeJS.WritableStream;
  /** Also append JSON lines to this file. */
  file?: string;
  color?: boolean;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const LEVEL_COLORS: Record<number, string> = { 20: '\x1b[90m', 30: '\x1b[36m', 40: '\x1b[33m', 50: '\x1b[31m', 60: '\x1b[31m' };
const OMIT = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

export function createLogger(options: LogOptions): { logger: Logger; close(): Promise<void> } {
  const out = options.destination ?? process.stderr;
  const fileStream: WriteStream | undefined = options.file ? createWriteStream(options.file, { flags: 'a' }) : undefined;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const line = redact(chunk.toString());
      fileStream?.write(line);
      out.write(options.format === 'json' ? line : humanLine(line, options.color === true));
      cb();
    },
  });
  const logger = pino({ level: options.level ?? 'info', base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, sink);
  return {
    logger: logger as unknown as Logger,
    close: () =>
      new Promise<void>((resolve) => {
        if (!fileStream) return resolve();
        fileStream.end(resolve);
      }),
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
