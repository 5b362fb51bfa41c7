/** The logger every component receives: pino's shape, so pino can be used directly. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  debug(msg: string): void;
  info(obj: object, msg?: string): void;
  info(msg: string): void;
  warn(obj: object, msg?: string): void;
  warn(msg: string): void;
  error(obj: object, msg?: string): void;
  error(msg: string): void;
  child(bindings: Record<string, unknown>): Logger;
  /**
   * Whether a record at `level` would be written (pino has it). Lets a hot path skip building a
   * line nobody reads; a logger without it is taken to write every level.
   */
  isLevelEnabled?(level: 'debug' | 'info' | 'warn' | 'error'): boolean;
}

/** False only when `log` says it would drop `level` (a logger that cannot tell writes it). */
export function logsAt(log: Logger, level: 'debug' | 'info' | 'warn' | 'error'): boolean {
  return log.isLevelEnabled?.(level) ?? true;
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
  isLevelEnabled() {
    return false;
  },
};
