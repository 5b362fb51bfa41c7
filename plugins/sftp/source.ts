import { Type } from '@sinclair/typebox';
import { definePlugin } from '../../core/plugin-api.js';
import { sourceCommon } from '../../core/schema-fragments.js';
import { remoteSourceFields, rootsOf, validateRoots } from '../remote-fs/fields.js';
import { createRemoteSource } from '../remote-fs/source.js';
import {
  createSftpPool,
  isSftpRetryable,
  sftpConnectionFields,
  sftpLocation,
  sftpPreflight,
  sftpSettings,
} from './client.js';

export const sftpSource = definePlugin({
  name: 'sftp',
  kind: 'source',
  summary: 'Lists and reads files on an SFTP server (OpenSSH and compatible), host key pinned.',
  description:
    'Walks `path` (recursively by default, one folder at a time) and lists every regular file with its size and mtime; a symbolic link to a file is followed, a link to a folder is not descended into (it could lead outside `path` or loop). `move_to` never moves a file through a folder below it that is a symbolic link (SLUICE_E_DESTINATION; the file stays). A name that is not valid UTF-8 or holds a control character, and a folder that cannot be read, are reported as failed items; the listing goes on. Each read borrows one of `max_connections` pooled SSH sessions; a dropped session is replaced on the next borrow. `after_success` acts only on the listed version: the file is renamed aside to a hidden `.<name>.sluice-tidy-<hex>`, its size and mtime (whole seconds) checked, then deleted or moved — a file changed meanwhile is put back for the next pass. `move_to` keeps the relative path under the target folder and replaces an existing file there (OpenSSH posix-rename). The server key must be pinned with `host_key_sha256`; a refused connection names the fingerprint the server presented. The server keeps no checksums, so items carry none (`checksum: {expect: metadata}` has nothing to compare). `sluice check` logs in and proves `path` is a folder; at full depth it also lists it.',
  config: Type.Object(
    {
      ...sourceCommon,
      ...sftpConnectionFields,
      ...remoteSourceFields,
      recursive: Type.Boolean({ default: true, description: 'Also list files in sub-folders of `path`.' }),
    },
    { additionalProperties: false },
  ),
  examples: [
    {
      title: 'Key auth, pinned host key, move processed files away',
      yaml: [
        'host: sftp.example.com',
        'username: acme',
        'private_key_file: ./keys/acme_ed25519',
        'host_key_sha256: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"',
        'path: /outgoing',
        'include: ["*.gpg"]',
        'min_age: 1m',
        'after_success:',
        '  move_to: /outgoing/processed',
      ].join('\n'),
    },
    {
      title: 'Behind a bastion (jump host, its key pinned too), reached through an HTTP proxy',
      yaml: [
        'host: sftp.internal.example.com',
        'username: acme',
        'private_key_file: ./keys/acme_ed25519',
        'host_key_sha256: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"',
        'path: /outgoing',
        'jump:',
        '  host: bastion.example.com',
        '  username: acme',
        '  private_key_file: ./keys/acme_ed25519',
        '  host_key_sha256: "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"',
        'proxy:',
        '  url: http://proxy.example.com:3128',
      ].join('\n'),
    },
  ],
  validate: validateRoots,
  async create(config, ctx) {
    const settings = await sftpSettings(config, ctx, 'SLUICE_E_SOURCE');
    return createRemoteSource({
      pool: await createSftpPool(settings, config.max_connections),
      sourceName: config.name ?? 'sftp',
      ...rootsOf(config),
      recursive: config.recursive,
      moveTo: typeof config.after_success === 'object' ? config.after_success.move_to : undefined,
      isRetryable: isSftpRetryable,
      describe: (path) => sftpLocation(settings, path),
      preflight: sftpPreflight(settings),
    });
  },
});
