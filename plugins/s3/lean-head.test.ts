import { createHash } from 'node:crypto';
import { Sha256 } from '@aws-sdk/checksums/sha';
import { HttpRequest } from '@smithy/core/transport';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { signHead, signRequest } from './lean-head.js';

/** The AWS SDK's own S3 signer (S3 signs paths unescaped again). */
const sdkSigner = (options: Pick<Parameters<typeof signHead>[0], 'credentials' | 'region'>) =>
  new SignatureV4({
    credentials: options.credentials,
    region: options.region,
    service: 's3',
    sha256: Sha256,
    uriEscapePath: false,
  });

/** What the AWS SDK's own S3 signer makes of the same HEAD. */
async function sdkSigned(options: Parameters<typeof signHead>[0]) {
  const signer = sdkSigner(options);
  const ours = signHead(options);
  const request = new HttpRequest({
    method: 'HEAD',
    protocol: 'http:',
    hostname: options.host.split(':')[0],
    port: Number(options.host.split(':')[1]),
    path: ours.path,
    headers: {
      host: options.host,
      'x-amz-content-sha256': ours.headers['x-amz-content-sha256'],
    },
  });
  const signed = await signer.sign(request, { signingDate: options.now });
  return { ours, sdk: signed.headers };
}

describe('signHead', () => {
  const base = {
    host: '127.0.0.1:9000',
    basePath: '',
    bucket: 'my-bucket',
    region: 'eu-west-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
    now: new Date('2026-12-02T11:22:33.456Z'),
  };

  for (const key of [
    'incoming/CHARGINGCDR_A-20240131-07.dat',
    "odd/a file (1)!*'~.txt",
    'odd/ü #1+2%&=;:@$,.dat',
    'odd/日本/x.txt',
  ]) {
    it(`signs a HEAD of ${JSON.stringify(key)} exactly as the SDK does`, async () => {
      const { ours, sdk } = await sdkSigned({ ...base, key });
      expect(ours.headers.authorization).toBe(sdk.authorization);
      expect(ours.headers['x-amz-date']).toBe(sdk['x-amz-date']);
    });
  }

  it('signs the session token and an endpoint path like the SDK', async () => {
    const { ours, sdk } = await sdkSigned({
      ...base,
      basePath: '/s3',
      key: 'a/b.txt',
      credentials: { ...base.credentials, sessionToken: 'FQoGZXIvYXdzEXAMPLE//token+=' },
    });
    expect(ours.path).toBe('/s3/my-bucket/a/b.txt');
    expect(ours.headers['x-amz-security-token']).toBe('FQoGZXIvYXdzEXAMPLE//token+=');
    expect(ours.headers.authorization).toBe(sdk.authorization);
  });
});

describe('signRequest', () => {
  it('signs a PUT with its body hash, metadata and If-None-Match exactly as the SDK does', async () => {
    const options = {
      method: 'PUT' as const,
      host: '127.0.0.1:9000',
      basePath: '',
      bucket: 'my-bucket',
      key: 'odd/a  file (1).csv',
      region: 'us-east-1',
      credentials: {
        accessKeyId: 'AKIDEXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
      },
      now: new Date('2026-12-02T11:22:33.456Z'),
      payloadHash: createHash('sha256').update('body').digest('hex'),
      headers: {
        'if-none-match': '*',
        'x-amz-meta-sluice-sha256': 'abc',
        'x-amz-meta-note': ' two  spaces ',
      },
    };
    const ours = signRequest(options);
    const signer = sdkSigner(options);
    const { authorization: _, ...sent } = ours.headers;
    const request = new HttpRequest({
      method: 'PUT',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 9000,
      path: ours.path,
      headers: { ...sent },
    });
    const signed = await signer.sign(request, { signingDate: options.now });
    expect(ours.path).toBe('/my-bucket/odd/a%20%20file%20%281%29.csv');
    expect(ours.headers.authorization).toBe(signed.headers.authorization);
  });
  for (const key of ['a//b.csv', `long/${'x'.repeat(900)}.csv`, 'odd/+%;ü #1.csv']) {
    it(`signs a CopyObject onto ${JSON.stringify(key.slice(0, 40))} with a session token and a base path as the SDK does`, async () => {
      const options = {
        method: 'PUT' as const,
        host: 'minio.example:9000',
        basePath: '/s3',
        bucket: 'my-bucket',
        key,
        region: 'eu-west-1',
        credentials: {
          accessKeyId: 'AKIDEXAMPLE',
          secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
          sessionToken: 'FQoGZXIvYXdzEXAMPLE//token+=',
        },
        now: new Date('2026-12-02T11:22:33.456Z'),
        payloadHash: 'UNSIGNED-PAYLOAD',
        headers: {
          'x-amz-copy-source': 'src-bucket/odd/%2B%25%3B%C3%BC%20%231.csv',
          'x-amz-copy-source-if-match': '"0123456789abcdef0123456789abcdef"',
          'x-amz-metadata-directive': 'REPLACE',
          'content-type': 'text/csv',
          'if-none-match': '*',
        },
      };
      const ours = signRequest(options);
      const { authorization: _, ...sent } = ours.headers;
      const signed = await sdkSigner(options).sign(
        new HttpRequest({
          method: 'PUT',
          protocol: 'http:',
          hostname: 'minio.example',
          port: 9000,
          path: ours.path,
          headers: { ...sent },
        }),
        { signingDate: options.now },
      );
      expect(ours.headers.authorization).toBe(signed.headers.authorization);
    });
  }
});
