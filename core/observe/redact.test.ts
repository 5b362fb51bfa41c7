import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { errorMessage, SluiceError } from '../errors.js';
import { Secret } from '../schema-fragments.js';
import { credentialsIn, redact, redactDeep, registerSecretsIn } from './redact.js';

describe('redact masks credentials by their form, registered or not', () => {
  it('the password of a URL userinfo, whatever the scheme, keeping the user and host', () => {
    expect(redact('cannot connect to sftp://user:pa55word@host:22/in')).toBe(
      'cannot connect to sftp://user:***@host:22/in',
    );
    expect(redact('GET https://u:p4ss@x.example/a?b=1 failed')).toBe(
      'GET https://u:***@x.example/a?b=1 failed',
    );
    expect(redact('redis://:Redis-Pw-1@127.0.0.1:6379/0')).toBe('redis://:***@127.0.0.1:6379/0');
    // Up to the last `@` of the authority, as URL parsers read it.
    expect(redact('ftp://me:p@ss@w0rd@host/x')).toBe('ftp://me:***@host/x');
  });

  it('leaves URLs without a password alone', () => {
    for (const text of [
      'http://host:8080/x',
      'sftp://user@host/in',
      'see https://a.example/b?c=d@e',
      'mailto:a@b.example',
      'a:b@c',
    ]) {
      expect(redact(text)).toBe(text);
    }
  });

  it('presigned S3/GCS parameters, Azure SAS sig, connection-string keys, token parameters', () => {
    const presigned =
      'https://b.s3.amazonaws.com/k.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=IQoJb3JpZ2luX2Vj&X-Amz-Signature=0a1b2c3d4e';
    expect(redact(presigned)).toBe(
      'https://b.s3.amazonaws.com/k.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&X-Amz-Date=20240101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=***&X-Amz-Signature=***',
    );
    expect(
      redact('https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2030-01-01&sp=r&sig=AbC%2Bd%3D'),
    ).toBe('https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2030-01-01&sp=r&sig=***');
    expect(
      redact(
        'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QUJD+/ODk=;EndpointSuffix=core.windows.net',
      ),
    ).toBe('DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;EndpointSuffix=core.windows.net');
    expect(redact('BlobEndpoint=https://a/;SharedAccessSignature=sv=2022-11-02&sig=Zm9v')).toBe(
      'BlobEndpoint=https://a/;SharedAccessSignature=***&sig=***',
    );
    expect(
      redact(
        'Authorization: AWS4-HMAC-SHA256 Credential=AKIA/20240101/s3, SignedHeaders=host, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024',
      ),
    ).toBe('Authorization: AWS4-HMAC-SHA256 Credential=***, SignedHeaders=host, Signature=***');
    expect(redact('GET /files?access_token=ya29.a0Af&page=2')).toBe('GET /files?access_token=***&page=2');
  });

  it('keeps a JSON log line and an XML body well-formed', () => {
    const line = JSON.stringify({ err: 'GET http://u:Pw-123@h/x?sig=S1g failed', other: 'x@y.example' });
    const masked = redact(line);
    expect(JSON.parse(masked)).toEqual({ err: 'GET http://u:***@h/x?sig=*** failed', other: 'x@y.example' });
    expect(
      redact(
        '<CanonicalQueryString>X-Amz-Credential=AKIA%2F1&amp;X-Amz-Signature=abc</CanonicalQueryString>',
      ),
    ).toBe('<CanonicalQueryString>X-Amz-Credential=***&amp;X-Amz-Signature=***</CanonicalQueryString>');
  });

  it('reaches every error text: SluiceError messages and errorMessage of any thrown value', () => {
    expect(
      new SluiceError('SLUICE_E_SOURCE', 'listing sftp://bob:Bob-Pw-77@10.0.0.1/in failed').message,
    ).toBe('listing sftp://bob:***@10.0.0.1/in failed');
    expect(errorMessage(new Error('403 for https://x/y?X-Amz-Signature=deadbeef'))).toBe(
      '403 for https://x/y?X-Amz-Signature=***',
    );
  });

  it('redactDeep masks every string of a summary-like value and keeps the rest', () => {
    const summary = {
      ok: 1,
      failures: [{ path: 'a.csv', error: 'sftp://u:Deep-Pw-1@h' }],
      interrupted: false,
    };
    expect(redactDeep(summary)).toEqual({
      ok: 1,
      failures: [{ path: 'a.csv', error: 'sftp://u:***@h' }],
      interrupted: false,
    });
  });
});

describe('registerSecretsIn: the schema says what is secret', () => {
  const schema = Type.Object({
    host: Type.String(),
    password: Type.Optional(Secret(Type.String())),
    auth: Type.Optional(Type.Union([Type.Object({ token: Secret(Type.String()) }), Type.Literal('none')])),
    keys: Type.Optional(Type.Array(Secret(Type.String()))),
    headers: Type.Optional(Type.Record(Type.String(), Type.String())),
    key: Type.Optional(Type.String({ description: 'not a secret, whatever its name' })),
    url: Type.Optional(Type.String()),
  });

  it('registers x-secret values (in unions and arrays too), valid or not, and nothing else by its key name', () => {
    registerSecretsIn(schema, {
      host: 'plain-host-name',
      password: 'Schema-Pw-0001',
      auth: { token: 'Schema-Token-0002' },
      keys: ['Schema-Key-0003'],
      key: 'date-meta-key',
      unknown_password: 42,
    });
    expect(redact('Schema-Pw-0001 Schema-Token-0002 Schema-Key-0003')).toBe('*** *** ***');
    // Not marked secret: a `key:` option (a meta key name) must stay readable in every message.
    expect(redact('plain-host-name date-meta-key')).toBe('plain-host-name date-meta-key');
  });

  it('registers credential-named entries of free-form string maps (headers), and numbers under x-secret', () => {
    registerSecretsIn(schema, {
      headers: {
        Authorization: 'Bearer Hdr-Token-0004',
        'X-Api-Key': 'Hdr-Key-0005',
        Accept: 'text/csv-0006',
      },
      password: 12345678,
    });
    expect(redact('Bearer Hdr-Token-0004 / Hdr-Key-0005 / text/csv-0006 / 12345678')).toBe(
      '*** / *** / text/csv-0006 / ***',
    );
  });

  it('registers the credentials inside any string, so they are masked where they appear alone', () => {
    registerSecretsIn(schema, { url: 'sftp://u:Url%2FPw-0007@host/in?sig=Sig-0008' });
    expect(redact('the server said: bad password Url/Pw-0007 (Url%2FPw-0007), bad sig Sig-0008')).toBe(
      'the server said: bad password *** (***), bad sig ***',
    );
  });

  it('searches strings of parts the schema does not describe', () => {
    registerSecretsIn(undefined, { anything: ['x', { deep: 'https://a:Undescribed-0009@b' }] });
    expect(redact('Undescribed-0009')).toBe('***');
  });

  it('credentialsIn lists raw and decoded forms', () => {
    expect(credentialsIn('https://u:a%40b@h/?X-Amz-Signature=s1&x=1')).toEqual(['a%40b', 's1', 'a@b']);
    expect(credentialsIn('nothing secret here: http://h/x?y=1')).toEqual([]);
  });
});
