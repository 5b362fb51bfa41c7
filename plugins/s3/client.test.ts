import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { copySource, isS3Retryable } from './client.js';

const s3Err = (name: string, status: number) =>
  Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });

describe('isS3Retryable', () => {
  it('retries throttling, timeouts and server errors', () => {
    expect(isS3Retryable(s3Err('SlowDown', 503))).toBe(true);
    expect(isS3Retryable(s3Err('InternalError', 500))).toBe(true);
    expect(isS3Retryable(s3Err('Whatever', 502))).toBe(true);
    expect(isS3Retryable(s3Err('TooManyRequests', 429))).toBe(true);
  });

  it('does not retry auth, missing bucket or key', () => {
    expect(isS3Retryable(s3Err('AccessDenied', 403))).toBe(false);
    expect(isS3Retryable(s3Err('NoSuchBucket', 404))).toBe(false);
    expect(isS3Retryable(s3Err('NoSuchKey', 404))).toBe(false);
    expect(isS3Retryable(s3Err('InvalidAccessKeyId', 403))).toBe(false);
    expect(isS3Retryable(s3Err('Other', 400))).toBe(false);
  });

  it('leaves network errors to the default rules and keeps a SluiceError decision', () => {
    expect(isS3Retryable(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBeUndefined();
    expect(isS3Retryable(new SluiceError('SLUICE_E_EXISTS', 'x', { retryable: false }))).toBe(false);
  });
});

describe('copySource', () => {
  it('encodes each key segment fully by default', () => {
    expect(copySource('b', 'dir/ü #1+2%.dat')).toBe('b/dir/%C3%BC%20%231%2B2%25.dat');
  });

  it('leaves reserved characters literal in the decodeURI spelling', () => {
    expect(copySource('b', 'dir/ü #1+2%.dat', 'uri')).toBe('b/dir/%C3%BC%20#1+2%25.dat');
  });
});
