/**
 * Credentials as teams hold them: an S3 `profile` of the shared config files (read by the SDK's
 * own provider) against a real s3rver, and the validation of every credential field of s3 and
 * azure_blob. What cannot run here (STS AssumeRole, Entra ID token endpoints) is validated only.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Item, Plugin } from '../../core/plugin-api.js';
import { azureBlobSink } from '../../plugins/azure-blob/sink.js';
import { azureBlobSource } from '../../plugins/azure-blob/source.js';
import { s3Sink } from '../../plugins/s3/sink.js';
import { s3Source } from '../../plugins/s3/source.js';
import { makePluginContext } from '../helpers/context.js';
import { collect, configure, readAll } from '../helpers/object-store.js';
import { type S3rverHandle, s3Client, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-creds';
let s3: S3rverHandle;
let client: S3Client;
const savedEnv = {
  config: process.env.AWS_CONFIG_FILE,
  credentials: process.env.AWS_SHARED_CREDENTIALS_FILE,
};

beforeAll(async () => {
  s3 = await startS3rver();
  await s3.createBucket(BUCKET);
  client = s3Client(s3);
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'in/a.txt', Body: 'from a profile' }));
});

afterAll(async () => {
  client?.destroy();
  await s3?.stop();
});

afterEach(() => {
  for (const [name, value] of [
    ['AWS_CONFIG_FILE', savedEnv.config],
    ['AWS_SHARED_CREDENTIALS_FILE', savedEnv.credentials],
  ] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

/** Shared config files in a temp folder, as `aws configure` writes them, pointed to by the env. */
function sharedFiles(): void {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-aws-'));
  const credentials = join(dir, 'credentials');
  const config = join(dir, 'config');
  writeFileSync(
    credentials,
    [
      '[partner]',
      'aws_access_key_id = S3RVER',
      'aws_secret_access_key = S3RVER',
      '[stale]',
      'aws_access_key_id = NOT-S3RVER',
      'aws_secret_access_key = whatever',
    ].join('\n'),
  );
  writeFileSync(config, ['[profile partner]', 'region = us-east-1'].join('\n'));
  process.env.AWS_SHARED_CREDENTIALS_FILE = credentials;
  process.env.AWS_CONFIG_FILE = config;
}

const s3Base = () => ({ bucket: BUCKET, endpoint: s3.endpoint });

describe('s3 profile', () => {
  it('lists, reads and writes with the keys of a named profile', async () => {
    sharedFiles();
    const source = await s3Source.create(
      configure(s3Source, { ...s3Base(), profile: 'partner', prefix: 'in/' }),
      makePluginContext(),
    );
    const [item] = await collect(source.list(new AbortController().signal));
    expect((await readAll(await item.open())).toString()).toBe('from a profile');
    const sink = await s3Sink.create(
      configure(s3Sink, { ...s3Base(), profile: 'partner', prefix: 'out/' }),
      makePluginContext(),
    );
    const commit = await sink.write({
      item: { ...item, checksums: {} } as Item,
      destination: 'a.txt',
      body: Readable.from([Buffer.from('written')]),
      signal: new AbortController().signal,
    });
    expect(commit).toMatchObject({ location: `s3://${BUCKET}/out/a.txt`, size: 7 });
    expect((await sink.check!({ depth: 'cheap', signal: new AbortController().signal })).detail).toMatch(
      /credentials accepted/,
    );
    await Promise.all([source.close?.(), sink.close?.()]);
  });

  it('reports a profile whose keys are refused, and one that does not exist', async () => {
    sharedFiles();
    for (const [profile, reason] of [
      ['stale', /InvalidAccessKeyId/],
      ['nope', /Could not resolve credentials using profile: \[nope\]/],
    ] as const) {
      const source = await s3Source.create(
        configure(s3Source, { ...s3Base(), profile }),
        makePluginContext(),
      );
      await expect(
        source.check!({ depth: 'cheap', signal: new AbortController().signal }),
      ).rejects.toMatchObject({
        message: expect.stringMatching(reason),
        context: { hint: expect.stringContaining('profile') },
      });
      await source.close?.();
    }
  });
});

describe('credential field validation', () => {
  const s3Rejects = (extra: Record<string, unknown>, field: string, message: RegExp) => {
    for (const plugin of [s3Source, s3Sink] as Plugin[]) {
      expect(() =>
        (plugin.validate as (cfg: unknown) => void)(configure(plugin, { bucket: BUCKET, ...extra })),
      ).toThrowError(
        expect.objectContaining({
          code: 'SLUICE_E_CONFIG',
          context: { jsonPath: field },
          message: expect.stringMatching(message),
        }),
      );
    }
  };

  it('s3: profile or keys, role options only with role_arn', () => {
    s3Rejects(
      { profile: 'p', access_key_id: 'k', secret_access_key: 's' },
      '/profile',
      /either access_key_id.*or profile/,
    );
    s3Rejects({ session_token: 't' }, '/session_token', /goes with access_key_id/);
    s3Rejects({ external_id: 'x' }, '/external_id', /only used with role_arn/);
    s3Rejects({ session_name: 'sluice' }, '/session_name', /only used with role_arn/);
    s3Rejects({ access_key_id: 'k' }, '/secret_access_key', /required/);
    for (const ok of [
      { profile: 'p', role_arn: 'arn:aws:iam::1:role/r', external_id: 'x', session_name: 'nightly' },
      { access_key_id: 'k', secret_access_key: 's', role_arn: 'arn:aws:iam::1:role/r' },
      { role_arn: 'arn:aws:iam::1:role/r' },
    ]) {
      expect(() => s3Sink.validate!(configure(s3Sink, { bucket: BUCKET, ...ok }))).not.toThrow();
    }
  });

  const azRejects = (cfg: Record<string, unknown>, field: string, message: RegExp) => {
    for (const plugin of [azureBlobSource, azureBlobSink] as Plugin[]) {
      expect(() =>
        (plugin.validate as (cfg: unknown) => void)(configure(plugin, { container: 'box', ...cfg })),
      ).toThrowError(
        expect.objectContaining({
          code: 'SLUICE_E_CONFIG',
          context: { jsonPath: field },
          message: expect.stringMatching(message),
        }),
      );
    }
  };

  it('azure: Entra ID as default credential or service principal, never mixed with keys', () => {
    azRejects(
      { account: 'a', credential: 'default', client_secret: 's', tenant_id: 't', client_id: 'c' },
      '/client_secret',
      /give one or the other/,
    );
    azRejects({ account: 'a', client_secret: 's', client_id: 'c' }, '/tenant_id', /tenant_id is required/);
    azRejects({ account: 'a', client_secret: 's', tenant_id: 't' }, '/client_id', /client_id is required/);
    azRejects({ account: 'a', account_key: 'k', client_id: 'c' }, '/client_id', /only used with Entra ID/);
    azRejects({ account: 'a', account_key: 'k', credential: 'default' }, '', /exactly one of/);
    azRejects({ credential: 'default' }, '/account', /account \(or endpoint\) is required with Entra ID/);
    for (const ok of [
      { account: 'a', credential: 'default' },
      { account: 'a', credential: 'default', client_id: 'user-assigned-identity' },
      { endpoint: 'https://a.blob.core.windows.net', tenant_id: 't', client_id: 'c', client_secret: 's' },
    ]) {
      expect(() =>
        azureBlobSink.validate!(configure(azureBlobSink, { container: 'box', ...ok })),
      ).not.toThrow();
    }
  });

  it('marks every credential secret for masking', () => {
    const props = (plugin: { config: unknown }) =>
      (plugin.config as { properties: Record<string, Record<string, unknown>> }).properties;
    for (const field of ['secret_access_key', 'session_token', 'external_id'])
      expect(props(s3Sink)[field]['x-secret'], field).toBe(true);
    expect(props(azureBlobSource).client_secret['x-secret']).toBe(true);
    for (const field of ['profile', 'role_arn', 'tenant_id', 'client_id'])
      expect(
        props(field.includes('_id') && field !== 'role_arn' ? azureBlobSink : s3Sink)[field]['x-secret'],
      ).toBeUndefined();
  });
});
