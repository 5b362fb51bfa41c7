import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { checkError } from '../object-store/check.js';
import {
  copySource,
  etagMd5,
  isS3Retryable,
  type S3Connection,
  s3CheckTarget,
  storedFromHead,
} from './client.js';

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

describe('s3 pre-flight failures', () => {
  // s3rver has no access policies: AccessDenied is classified here from S3's own error shape.
  const target = s3CheckTarget({ bucket: 'b', endpointId: 'aws' } as S3Connection, 'eu-west-1');
  it('tells a denial from refused credentials, a missing bucket and an unreachable service', () => {
    expect(target.failureOf(s3Err('AccessDenied', 403))).toBe('denied');
    expect(target.failureOf(s3Err('InvalidAccessKeyId', 403))).toBe('credentials');
    expect(target.failureOf(s3Err('SignatureDoesNotMatch', 403))).toBe('credentials');
    expect(target.failureOf(s3Err('NoSuchBucket', 404))).toBe('missing');
    expect(target.failureOf(s3Err('NotFound', 404))).toBe('missing');
    expect(target.failureOf(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(
      'unreachable',
    );
    expect(target.failureOf(s3Err('InternalError', 500))).toBeUndefined();
  });

  it('says what a denial stops and which permission to grant', () => {
    const err = checkError(target, 'SLUICE_E_SINK', 'write', s3Err('AccessDenied', 403));
    expect(err.message).toBe(
      'access denied to bucket "b" at AWS S3 (eu-west-1): the credentials are valid but may not write to it (AccessDenied)',
    );
    expect(err.context.hint).toBe('grant s3:PutObject under the prefix');
  });
});
