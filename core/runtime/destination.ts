import { escapeControl, SluiceError } from '../errors.js';

/**
 * Normalises a relative destination and refuses anything that could escape a sink's root:
 * `..` segments, absolute paths, drive letters, NUL and other control characters. Backslashes
 * are refused rather than converted: on POSIX they are legal name characters, and guessing
 * would let `..\\..\\x` through somewhere.
 */
export function safeDestination(dest: string, context: { item?: string; step?: string } = {}): string {
  const fail = (why: string) =>
    new SluiceError('SLUICE_E_DESTINATION', `destination "${escapeControl(dest)}" ${why}`, {
      context,
      retryable: false,
    });
  if (dest.length === 0) throw fail('is empty');
  if (/[\u0000-\u001f\u007f]/.test(dest)) throw fail('contains a control character (NUL, newline…)');
  if (dest.includes('\\')) throw fail('contains a backslash');
  if (dest.startsWith('/') || /^[A-Za-z]:/.test(dest))
    throw fail('is absolute; destinations are relative to the sink root');
  const segments = dest.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) throw fail('escapes the sink root (`..`)');
  if (segments.length === 0) throw fail('names no file');
  return segments.join('/');
}
