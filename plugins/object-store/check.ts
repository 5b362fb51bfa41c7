/**
 * Pre-flight checks shared by the S3 and Azure Blob connectors (`sluice check`, and the cheap
 * part at the start of `run`/`watch`): each failure is named for what it is — the bucket or
 * container is missing, the credentials are refused, they are valid but not allowed, the service
 * cannot be reached — with a hint, never as the SDK's raw message alone.
 */
import type { ErrorCode } from '../../core/errors.js';
import { SluiceError } from '../../core/errors.js';

export type CheckFailure = 'missing' | 'credentials' | 'denied' | 'unreachable';

/** What a backend tells the shared checks. */
export interface CheckTarget {
  /** `bucket` or `container`. */
  readonly noun: string;
  readonly name: string;
  /** Where the service is, for messages (`http://127.0.0.1:9000`, `AWS (eu-west-1)`). */
  readonly endpoint: string;
  /** The config fields that hold the credentials, for the hint. */
  readonly credentialFields: string;
  /** The permission a denied action needs, for the hint (`s3:ListBucket`, `SAS permission l`). */
  permission(action: CheckAction): string;
  /** One cheap request proving the root exists and the credentials are accepted. */
  proveRoot(signal: AbortSignal): Promise<void>;
  /** What kind of failure `err` is, or undefined for any other. */
  failureOf(err: unknown): CheckFailure | undefined;
  /** The service's reason, one line. */
  reason(err: unknown): string;
}

export type CheckAction = 'reach' | 'list' | 'write' | 'delete';

const ACTION_TEXT: Record<CheckAction, string> = {
  reach: 'reach it',
  list: 'list it',
  write: 'write to it',
  delete: 'delete from it',
};

/** The SluiceError a check reports for `err`, raised while trying to `action` the root. */
export function checkError(
  target: CheckTarget,
  code: Extract<ErrorCode, 'SLUICE_E_SOURCE' | 'SLUICE_E_SINK'>,
  action: CheckAction,
  err: unknown,
): SluiceError {
  // A connector's own SluiceError (an upload's) keeps the service's error as its cause.
  const cause = err instanceof SluiceError && err.cause !== undefined ? err.cause : err;
  const failure = target.failureOf(cause);
  if (err instanceof SluiceError && failure === undefined) return err;
  const root = `${target.noun} "${target.name}"`;
  const reason = target.reason(cause);
  const make = (message: string, hint: string, retryable = false) =>
    new SluiceError(code, message, { cause: err, retryable, context: { hint } });
  switch (failure) {
    case 'missing':
      return make(
        `${root} does not exist at ${target.endpoint}`,
        `check the ${target.noun} name and the endpoint/account it is looked up at`,
      );
    case 'credentials':
      return make(
        `the credentials were refused by ${target.endpoint} (${reason})`,
        `check ${target.credentialFields}`,
      );
    case 'denied':
      return make(
        `access denied to ${root} at ${target.endpoint}: the credentials are valid but may not ${ACTION_TEXT[action]} (${reason})`,
        `grant ${target.permission(action)}`,
      );
    case 'unreachable':
      return make(
        `cannot reach ${target.endpoint} (${reason})`,
        'check the endpoint URL, DNS, the network path and any proxy',
        true,
      );
    default:
      return make(
        `cannot ${ACTION_TEXT[action].replace(' it', '')} ${root} at ${target.endpoint}: ${reason}`,
        'see the cause',
      );
  }
}

/** Runs `call`, reporting a failure as `checkError` does. */
export async function checking<T>(
  target: CheckTarget,
  code: Extract<ErrorCode, 'SLUICE_E_SOURCE' | 'SLUICE_E_SINK'>,
  action: CheckAction,
  call: () => Promise<T>,
): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw checkError(target, code, action, err);
  }
}

/** Network failures that mean the service was never reached. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ECONNRESET',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** True when `err` (or its cause) is a network failure that never reached the service. */
export function isUnreachable(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string' && UNREACHABLE_CODES.has(e.code)) return true;
    e = e.cause as typeof e;
  }
  return false;
}
