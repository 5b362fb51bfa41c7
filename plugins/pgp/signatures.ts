/** What signature checks found, and the verdict the `verify_signature` policy draws from it. */
import { SluiceError } from '../../core/errors.js';

export interface SignatureOutcome {
  /** Valid signatures made by one of the configured keys (fingerprints or key ids). */
  good: string[];
  /** Signatures that are cryptographically wrong: the data or the signature was altered. */
  bad: string[];
  /** Signatures by keys that are not configured, or that could not be checked. */
  unknown: string[];
}

export const noSignatures = (): SignatureOutcome => ({ good: [], bad: [], unknown: [] });

export function mergeOutcomes(...outcomes: SignatureOutcome[]): SignatureOutcome {
  return {
    good: outcomes.flatMap((o) => o.good),
    bad: outcomes.flatMap((o) => o.bad),
    unknown: outcomes.flatMap((o) => o.unknown),
  };
}

/**
 * A bad signature always fails (it means tampering); with `required`, at least one good
 * signature by a configured key must be present. Returns the error to raise, if any.
 */
export function judgeSignatures(outcome: SignatureOutcome, required: boolean): SluiceError | undefined {
  if (outcome.bad.length > 0) {
    return new SluiceError('SLUICE_E_BAD_DATA', `bad PGP signature: ${outcome.bad.join('; ')}`, {
      retryable: false,
    });
  }
  if (required && outcome.good.length === 0) {
    const seen = outcome.unknown.length > 0 ? ` (found only: ${outcome.unknown.join('; ')})` : '';
    return new SluiceError(
      'SLUICE_E_BAD_DATA',
      `no valid PGP signature by a configured key, inline or detached (.sig/.asc)${seen}`,
      { retryable: false },
    );
  }
  return undefined;
}
