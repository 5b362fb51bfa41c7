/** SSH host key pinning: fingerprints in the form `ssh-keygen -lf` prints (`SHA256:<base64>`). */
import { createHash } from 'node:crypto';

/** `SHA256:<unpadded base64>` of a raw SSH public key blob, as OpenSSH shows it. */
export function fingerprintOf(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Accepts a pinned fingerprint as users paste it — `SHA256:…` (alone or inside a whole
 * `ssh-keygen -lf` line), bare base64 with or without padding, or 64 hex digits with or without
 * colons — and returns the canonical `SHA256:<unpadded base64>`, or undefined when it is none.
 */
export function normalizeFingerprint(input: string): string | undefined {
  const text = input.trim();
  const prefixed = /SHA256:([A-Za-z0-9+/]{43})=?(?![A-Za-z0-9+/])/.exec(text);
  if (prefixed) return `SHA256:${prefixed[1]}`;
  const hex = text.replace(/:/g, '');
  if (/^[0-9a-fA-F]{64}$/.test(hex)) {
    return `SHA256:${Buffer.from(hex, 'hex').toString('base64').replace(/=+$/, '')}`;
  }
  if (/^[A-Za-z0-9+/]{43}=?$/.test(text)) return `SHA256:${text.replace(/=$/, '')}`;
  return undefined;
}
