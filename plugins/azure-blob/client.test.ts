import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { isAzureRetryable, validateAzureConnection } from './client.js';

const restError = (code: string, statusCode?: number) =>
  Object.assign(new Error(code), { name: 'RestError', code, statusCode });

describe('isAzureRetryable', () => {
  it('retries busy, timeouts, 5xx, 429 and failed sends', () => {
    expect(isAzureRetryable(restError('ServerBusy', 503))).toBe(true);
    expect(isAzureRetryable(restError('OperationTimedOut', 500))).toBe(true);
    expect(isAzureRetryable(restError('Anything', 502))).toBe(true);
    expect(isAzureRetryable(restError('TooManyRequests', 429))).toBe(true);
    expect(isAzureRetryable(restError('REQUEST_SEND_ERROR'))).toBe(true);
  });

  it('does not retry auth, missing blobs or containers, bad requests', () => {
    expect(isAzureRetryable(restError('AuthenticationFailed', 403))).toBe(false);
    expect(isAzureRetryable(restError('AuthorizationFailure', 403))).toBe(false);
    expect(isAzureRetryable(restError('BlobNotFound', 404))).toBe(false);
    expect(isAzureRetryable(restError('ContainerNotFound', 404))).toBe(false);
    expect(isAzureRetryable(restError('InvalidHeaderValue', 400))).toBe(false);
    expect(isAzureRetryable(new SluiceError('SLUICE_E_EXISTS', 'x', { retryable: false }))).toBe(false);
  });
});

describe('validateAzureConnection', () => {
  it('accepts each single way to authenticate', () => {
    expect(() => validateAzureConnection({ connection_string: 'x', container: 'abc' })).not.toThrow();
    expect(() => validateAzureConnection({ account: 'a', account_key: 'k', container: 'abc' })).not.toThrow();
    expect(() =>
      validateAzureConnection({ account: 'a', sas_token: 'sv=1', container: 'abc' }),
    ).not.toThrow();
    expect(() =>
      validateAzureConnection({ sas_url: 'https://a.blob.core.windows.net/abc?sv=1' }),
    ).not.toThrow();
  });

  it('rejects none, two, a key without account, or no container', () => {
    expect(() => validateAzureConnection({ container: 'abc' })).toThrow(/exactly one/);
    expect(() =>
      validateAzureConnection({ connection_string: 'x', sas_token: 'y', account: 'a', container: 'abc' }),
    ).toThrow(/exactly one/);
    expect(() => validateAzureConnection({ account_key: 'k', container: 'abc' })).toThrow(/account/);
    expect(() => validateAzureConnection({ connection_string: 'x' })).toThrow(/container is required/);
  });
});
