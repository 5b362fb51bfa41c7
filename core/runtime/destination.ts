import { escapeControl, SluiceError } from '../errors.js';

/**
 * Normalises a relative destination and refuses anything that could escape a sink's root:
 * `..` segments, absolute paths, drive letters, NUL and other control characters. Backslashes
 * are refused rather than converted: on POSIX they are legal name characters, and guessing
 * would let `..\\..\\x` through somewhere.
 */
export function safeDestination(dest: string, context: { item?: string; step?: string } = {}): string {
  if (dest.length === 0) throw refused(dest, 'is empty', context);
  if (/[\u0000-\u001f\u007f]/.test(dest))
    throw refused(dest, 'contains a control character (NUL, newline…)', context);
  if (dest.includes('\\')) throw refused(dest, 'contains a backslash', context);
  if (dest.startsWith('/') || /^[A-Za-z]:/.test(dest))
    throw refused(dest, 'is absolute; destinations are relative to the sink root', context);
  // Already normal (no empty, `.` or `..` segment): the same string, without splitting it.
  if (!ODD_SEGMENT.test(dest)) return dest;
  const segments = dest.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) throw refused(dest, 'escapes the sink root (`..`)', context);
  if (segments.length === 0) throw refused(dest, 'names no file', context);
  return segments.join('/');
}

/** An empty, `.` or `..` segment anywhere (a leading or trailing `/`, `//`, `./`, `../`). */
const ODD_SEGMENT = /(?:^|\/)\.{0,2}(?:\/|$)/;

function refused(dest: string, why: string, context: { item?: string; step?: string }): SluiceError {
  return new SluiceError('SLUICE_E_DESTINATION', `destination "${escapeControl(dest)}" ${why}`, {
    context,
    retryable: false,
  });
}
