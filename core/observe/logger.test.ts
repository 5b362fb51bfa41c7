import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { type Logger, logsAt, silentLogger } from './logger.js';

describe('logsAt', () => {
  it('follows pino’s level, children included', () => {
    const log = pino({ level: 'warn' }, { write: () => undefined }) as unknown as Logger;
    expect(logsAt(log, 'info')).toBe(false);
    expect(logsAt(log.child({ pipeline: 'p' }), 'info')).toBe(false);
    expect(logsAt(log.child({ pipeline: 'p' }), 'warn')).toBe(true);
  });

  it('takes a logger that cannot tell (a pool thread’s forwarding one) to write every level', () => {
    const forwarding: Logger = { ...silentLogger, isLevelEnabled: undefined };
    expect(logsAt(forwarding, 'debug')).toBe(true);
    expect(logsAt(silentLogger, 'error')).toBe(false);
  });
});
