import { describe, expect, it } from 'vitest';
import { shortPlaintext } from './gpg.js';
import { outcomeFromStatus } from './gpg-engine.js';
import { detachedSignatureNames, isDetachedSignature, stripPgpExtension } from './names.js';
import { judgeSignatures } from './signatures.js';

describe('pgp names', () => {
  it('strips one PGP extension and keeps other names', () => {
    expect(stripPgpExtension('in/x.csv.gpg')).toBe('in/x.csv');
    expect(stripPgpExtension('in/x.csv.PGP')).toBe('in/x.csv');
    expect(stripPgpExtension('x.tar.gz.asc')).toBe('x.tar.gz');
    expect(stripPgpExtension('in/x.csv')).toBe('in/x.csv');
    expect(stripPgpExtension('in/.gpg')).toBe('in/.gpg');
  });

  it('finds detached signatures', () => {
    expect(detachedSignatureNames('x.gpg')).toEqual(['x.gpg.sig', 'x.gpg.asc']);
    expect(isDetachedSignature('a/x.gpg.sig', false)).toBe(true);
    expect(isDetachedSignature('a/x.gpg.asc', false)).toBe(false);
    expect(isDetachedSignature('a/x.gpg.asc', true)).toBe(true);
    expect(isDetachedSignature('a/x.csv.asc', true)).toBe(false);
  });
});

describe('signature verdicts', () => {
  const fpr = 'F677D6EFB2C85F5AC4264A995F21359A54403D0F';
  const validsig = ['VALIDSIG', fpr, '2026-11-22', '1', '0', '4', '0', '22', '10', '00', fpr];
  it('counts VALIDSIG only for configured keys', () => {
    expect(outcomeFromStatus({ code: 0, messages: [], status: [validsig] }, new Set([fpr])).good).toEqual([
      fpr,
    ]);
    const stranger = outcomeFromStatus({ code: 0, messages: [], status: [validsig] }, new Set(['00']));
    expect(stranger.good).toEqual([]);
    expect(stranger.unknown[0]).toMatch(/not a configured key/);
  });

  it('reads a signature by a revoked key as bad, though gpg also says VALIDSIG', () => {
    // What gpg 2.2 prints for a message signed by a key revoked since (test/e2e/pgp-in-process).
    const outcome = outcomeFromStatus(
      { code: 0, messages: [], status: [['REVKEYSIG', fpr.slice(-16), 'R <r@example.com>'], validsig] },
      new Set([fpr]),
    );
    expect(outcome.good).toEqual([]);
    expect(outcome.bad[0]).toMatch(/revoked/);
  });

  it('reads BADSIG as bad and ERRSIG as unknown', () => {
    const outcome = outcomeFromStatus(
      {
        code: 2,
        messages: [],
        status: [
          ['BADSIG', 'ABCD', 'Signer'],
          ['ERRSIG', '1234', '22', '10', '00', '1795375703', '9', fpr],
        ],
      },
      new Set(),
    );
    expect(outcome.bad).toHaveLength(1);
    expect(outcome.unknown[0]).toMatch(/no public key/);
  });

  it('fails bad signatures always and missing ones only when required', () => {
    expect(judgeSignatures({ good: ['A'], bad: ['x'], unknown: [] }, false)?.message).toMatch(
      /bad PGP signature/,
    );
    expect(judgeSignatures({ good: [], bad: [], unknown: ['k'] }, true)?.message).toMatch(/found only: k/);
    expect(judgeSignatures({ good: [], bad: [], unknown: ['k'] }, false)).toBeUndefined();
    expect(judgeSignatures({ good: ['A'], bad: [], unknown: [] }, true)).toBeUndefined();
  });
});

describe("shortPlaintext (gpg writing into the sink's temp file)", () => {
  // What gpg 2.2 printed when its output was /dev/full: a good decryption, the length it
  // announced, and exit 2 — the same exit as for a signature problem the engine accepts.
  const result = (format: string, length?: string) => ({
    code: 2,
    status: [
      ['PLAINTEXT', format, '1796286062', 'p.bin'],
      ...(length === undefined ? [] : [['PLAINTEXT_LENGTH', length]]),
      ['DECRYPTION_OKAY'],
      ['GOODMDC'],
      ['ERRSIG', '4305EF841C6EC17C', '22', '10', '00', '1796286062', '9'],
    ],
    messages: [],
  });

  it('says a binary plaintext written short is short, and a whole one is not', () => {
    expect(shortPlaintext(result('62', '300000'), 102_400)).toBe(
      'it wrote 102400 of the 300000 bytes of the plaintext',
    );
    expect(shortPlaintext(result('62', '300000'), 300_000)).toBeUndefined();
  });

  it('cannot tell without an announced length, nor for a text-mode literal', () => {
    expect(shortPlaintext(result('62'), 5)).toBeUndefined();
    expect(shortPlaintext(result('74', '300000'), 299_000)).toBeUndefined();
  });
});
