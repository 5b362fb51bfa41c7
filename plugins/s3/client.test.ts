import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { copySource, etagMd5, isS3Retryable, storedFromHead } from './client.js';

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

describe('the MD5 an ETag is', () => {
  const md5 = '5d41402abc4b2a76b9719d911017c592';
  it('is a single-part ETag, not a multipart one', () => {
    expect(etagMd5(`"${md5}"`)).toBe(md5);
    expect(etagMd5(md5.toUpperCase())).toBe(md5);
    expect(etagMd5(`"${md5}-2"`)).toBeUndefined();
    expect(etagMd5(undefined)).toBeUndefined();
  });

  it('is none under SSE-KMS or SSE-C, whose ETags are not MD5s (SSE-S3 keeps it)', () => {
    const head = { ETag: `"${md5}"`, ContentLength: 5, $metadata: {} };
    expect(storedFromHead({ ...head, ServerSideEncryption: 'AES256' }).md5).toBe(md5);
    expect(storedFromHead({ ...head, ServerSideEncryption: 'aws:kms' }).md5).toBeUndefined();
    expect(storedFromHead({ ...head, ServerSideEncryption: 'aws:kms:dsse' }).md5).toBeUndefined();
    expect(storedFromHead({ ...head, SSECustomerAlgorithm: 'AES256' }).md5).toBeUndefined();
  });
});
