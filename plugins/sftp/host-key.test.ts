import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fingerprintOf, normalizeFingerprint } from './host-key.js';

const blob = Buffer.from('not a real key, just bytes to hash');
const digest = createHash('sha256').update(blob).digest();
const b64 = digest.toString('base64').replace(/=+$/, '');

describe('host key fingerprints', () => {
  it('formats like ssh-keygen -lf', () => {
    expect(fingerprintOf(blob)).toBe(`SHA256:${b64}`);
    expect(fingerprintOf(blob)).not.toContain('=');
  });

  it('accepts the forms users paste', () => {
    const want = `SHA256:${b64}`;
    expect(normalizeFingerprint(want)).toBe(want);
    expect(normalizeFingerprint(`  ${b64}=  `)).toBe(want);
    expect(normalizeFingerprint(b64)).toBe(want);
    expect(normalizeFingerprint(`256 ${want} root@host (ED25519)`)).toBe(want);
    expect(normalizeFingerprint(digest.toString('hex'))).toBe(want);
    expect(
      normalizeFingerprint(
        digest
          .toString('hex')
          .toUpperCase()
          .replace(/(..)(?!$)/g, '$1:'),
      ),
    ).toBe(want);
  });

  it('rejects what is not a sha256 fingerprint', () => {
    expect(normalizeFingerprint('MD5:aa:bb')).toBeUndefined();
    expect(normalizeFingerprint('SHA256:short')).toBeUndefined();
    expect(normalizeFingerprint('')).toBeUndefined();
  });
});
