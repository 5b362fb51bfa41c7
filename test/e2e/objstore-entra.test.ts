/**
 * azure_blob with Entra ID (`credential: default`) against a real Azurite started with
 * `--oauth basic` over HTTPS (a self-signed certificate made here with openssl, trusted by the
 * sluice process through NODE_EXTRA_CA_CERTS). DefaultAzureCredential finds an App Service
 * managed identity (IDENTITY_ENDPOINT / IDENTITY_HEADER) served by a local token endpoint; the
 * bearer token it hands out is checked by Azurite for lifetime, issuer and audience (`basic`
 * does not verify signatures: no Entra ID tenant is reachable from here).
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/workflows.js';
import { makeWorkspace } from '../helpers/workspace.js';
import { type AzuriteHandle, startAzurite } from '../servers/azurite.js';
import { selfSignedCert } from '../servers/self-signed.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
let azurite: AzuriteHandle;
let tokens: Server;
let endpoint: string;
let tokenEndpoint: string;
let certFile: string;
/** Token requests the local managed-identity endpoint answered. */
const tokenRequests: string[] = [];

const b64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An access token shaped as Entra ID issues them for Azure Storage (unsigned: Azurite `basic`). */
function accessToken(): { token: string; expiresOn: number } {
  const now = Math.floor(Date.now() / 1000);
  const expiresOn = now + 3600;
  const payload = {
    aud: 'https://storage.azure.com',
    iss: `https://sts.windows.net/${TENANT}/`,
    iat: now - 60,
    nbf: now - 60,
    exp: expiresOn,
    oid: '11111111-2222-3333-4444-555555555555',
    tid: TENANT,
  };
  return { token: `${b64url({ alg: 'RS256', typ: 'JWT' })}.${b64url(payload)}.c2lnbmF0dXJl`, expiresOn };
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-entra-'));
  certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  selfSignedCert(keyFile, certFile, 1);

  tokens = createServer((req, res) => {
    tokenRequests.push(`${req.url} ${req.headers['x-identity-header'] ?? ''}`);
    const { token, expiresOn } = accessToken();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        access_token: token,
        expires_on: String(expiresOn),
        resource: 'https://storage.azure.com',
        token_type: 'Bearer',
      }),
    );
  });
  await new Promise<void>((resolve) => tokens.listen(0, '127.0.0.1', resolve));
  tokenEndpoint = `http://127.0.0.1:${(tokens.address() as AddressInfo).port}/msi/token`;

  azurite = await startAzurite({ oauth: { cert: certFile, key: keyFile } });
  endpoint = azurite.accountUrl;
});

afterAll(async () => {
  await new Promise<void>((resolve) => (tokens ? tokens.close(() => resolve()) : resolve()));
  await azurite?.stop();
});

describe('azure_blob with Entra ID (credential: default)', () => {
  it('writes and reads blobs with a managed identity’s bearer token over HTTPS', async () => {
    const ws = makeWorkspace();
    try {
      ws.write('in/report.csv', 'a,b\n1,2\n');
      const azure = [
        '  azure_blob:',
        '    account: devstoreaccount1',
        `    endpoint: ${endpoint}`,
        '    credential: default',
        '    container: entra',
      ];
      ws.pipeline(
        [
          'name: up',
          'source:',
          '  local: { path: ./in }',
          'sink:',
          ...azure,
          '    create_container: true',
        ].join('\n'),
        'up.yaml',
      );
      ws.pipeline(
        ['name: down', 'source:', ...azure, 'sink:', '  local: { path: ./back }'].join('\n'),
        'down.yaml',
      );
      const env = {
        NODE_EXTRA_CA_CERTS: certFile,
        IDENTITY_ENDPOINT: tokenEndpoint,
        IDENTITY_HEADER: 'sluice-test-header',
      };
      const up = await runCli(['run', 'up.yaml'], ws.dir, env);
      expect(up.code, up.stderr).toBe(0);
      const down = await runCli(['run', 'down.yaml'], ws.dir, env);
      expect(down.code, down.stderr).toBe(0);
      expect(ws.read('back/report.csv')).toBe('a,b\n1,2\n');
      expect(tokenRequests.length).toBeGreaterThan(0);
      expect(tokenRequests[0]).toMatch(/resource=https%3A%2F%2Fstorage\.azure\.com.* sluice-test-header$/);

      // Without the managed identity, DefaultAzureCredential finds nothing: one clear failure.
      const none = await runCli(['run', 'down.yaml'], ws.dir, { NODE_EXTRA_CA_CERTS: certFile });
      expect(none.code).not.toBe(0);
      expect(none.stdout + none.stderr).toMatch(
        /(cannot list azure:\/\/|cannot reach container ")[^\n]*entra[^\n]*(CredentialUnavailable|credential)/i,
      );
    } finally {
      ws.cleanup();
    }
  }, 120_000);
});
