import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateAgainst } from '../../core/config/validate.js';
import { ftpSink, ftpSource } from '../ftp/index.js';
import { sftpSink, sftpSource } from '../sftp/index.js';

// The sftp/ftp blocks of the reference pipelines (shared/examples), verbatim.
const OCTO_SOURCE = `
sftp:
  host: \${ACME_SFTP_HOST}
  port: \${ACME_SFTP_PORT:-22}
  username: \${ACME_SFTP_USER}
  private_key_file: \${ACME_SFTP_KEY_FILE}
  host_key_sha256: \${ACME_SFTP_HOST_KEY}
  path: /outgoing
  include: ["*.gpg", "*.pgp"]
  exclude: ["*.sig"]
  min_age: 1m
  after_success:
    move_to: /outgoing/processed
`;
const PARTNER_SOURCES = `
- ftp:
    name: partner_a
    host: \${PARTNER_A_HOST}
    port: 21
    username: \${PARTNER_A_USER}
    password: \${PARTNER_A_PASSWORD}
    secure: explicit
    path: /exports
    include: ["*.zip"]
- sftp:
    name: partner_b
    host: \${PARTNER_B_HOST}
    username: \${PARTNER_B_USER}
    password: \${PARTNER_B_PASSWORD}
    host_key_sha256: \${PARTNER_B_HOST_KEY}
    path: /out
    include: ["*.zip"]
`;

/** Replaces `${VAR}` / `${VAR:-default}` as the loader would, with plausible values. */
function fakeEnv(text: string): string {
  return text.replace(/\$\{([A-Z0-9_]+)(?::-([^}]*))?\}/g, (_m, name: string, fallback?: string) =>
    fallback ? fallback : `value-of-${name}`,
  );
}

describe('sftp/ftp config schemas', () => {
  it('accept the shared example pipelines', () => {
    const octo = parse(fakeEnv(OCTO_SOURCE));
    expect(validateAgainst(sftpSource.config, octo.sftp)).toEqual([]);
    expect(octo.sftp.port).toBe(22);
    expect(octo.sftp.recursive).toBe(true);

    const [ftp, sftp] = parse(fakeEnv(PARTNER_SOURCES));
    expect(validateAgainst(ftpSource.config, ftp.ftp)).toEqual([]);
    expect(ftp.ftp.secure).toBe('explicit');
    expect(validateAgainst(sftpSource.config, sftp.sftp)).toEqual([]);
    expect(sftp.sftp.port).toBe(22);
  });

  it('accept their own examples', () => {
    for (const plugin of [sftpSource, sftpSink, ftpSource, ftpSink]) {
      for (const example of plugin.examples ?? []) {
        expect(
          validateAgainst(plugin.config, parse(fakeEnv(example.yaml))),
          `${plugin.name} ${plugin.kind}: ${example.title}`,
        ).toEqual([]);
      }
    }
  });

  it('reject unknown keys and bad values', () => {
    expect(validateAgainst(sftpSource.config, { host: 'h', username: 'u', pasword: 'x' })).not.toEqual([]);
    expect(validateAgainst(ftpSink.config, { host: 'h', secure: 'sometimes' })).not.toEqual([]);
  });
});
