import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { makePluginContext } from '../../test/helpers/context.js';
import { type FtpConnectionConfig, ftpSettings, isFtpRetryable } from './client.js';

const base: FtpConnectionConfig = {
  host: 'ftp.example.com',
  username: 'u',
  secure: 'explicit',
  insecure_tls: false,
  path: '/x',
  max_connections: 1,
  timeout: '30s',
  keepalive_interval: '60s',
};

describe('ftpSettings ca_file', () => {
  it('treats an empty ca_file (an unset ${VAR:-}) as absent: system CAs, certificate checked', async () => {
    const settings = await ftpSettings({ ...base, ca_file: '' }, makePluginContext(), 'SLUICE_E_SOURCE');
    expect(settings.tls.ca).toBeUndefined();
    expect(settings.tls.rejectUnauthorized).toBe(true);
  });

  it('reads a ca_file relative to the pipeline folder, and names a missing one', async () => {
    const ctx = makePluginContext();
    writeFileSync(join(ctx.baseDir, 'ca.pem'), 'PEM');
    expect(String((await ftpSettings({ ...base, ca_file: 'ca.pem' }, ctx, 'SLUICE_E_SOURCE')).tls.ca)).toBe(
      'PEM',
    );
    const missing = ftpSettings({ ...base, ca_file: 'nope.pem' }, ctx, 'SLUICE_E_SOURCE');
    await expect(missing).rejects.toBeInstanceOf(SluiceError);
    await expect(missing).rejects.toThrow(/cannot read ca_file .*nope\.pem/);
  });
});

describe('isFtpRetryable', () => {
  it('retries a reply cut off mid-line (the control connection broke), not a refused login', () => {
    expect(isFtpRetryable(new Error("Can't parse response to 'EPSV': 229"))).toBe(true);
    expect(isFtpRetryable(Object.assign(new Error('530 Login incorrect.'), { code: 530 }))).toBe(false);
  });
});
