import { Type } from '@sinclair/typebox';
import { definePlugin } from '../../core/plugin-api.js';
import { sinkCommon } from '../../core/schema-fragments.js';
import { createRemoteSink } from '../remote-fs/sink.js';
import {
  createSftpPool,
  isSftpRetryable,
  sftpConnectionFields,
  sftpLocation,
  sftpSettings,
} from './client.js';

export const sftpSink = definePlugin({
  name: 'sftp',
  kind: 'sink',
  summary: 'Writes files to an SFTP server atomically (temp name, then rename), host key pinned.',
  description:
    'Uploads each item to a hidden temp file `.<name>.sluice-tmp-<hex>` in the destination folder (created as needed), then renames it into place: OpenSSH posix-rename for `if_exists: overwrite` (atomic replace), a plain SFTP rename (which refuses an existing target) for skip/fail/rename. A failed or aborted upload removes its temp file. Up to `max_connections` uploads run at once.',
  config: Type.Object({ ...sinkCommon, ...sftpConnectionFields }, { additionalProperties: false }),
  examples: [
    {
      title: 'Password auth into a folder',
      yaml: 'host: ${PARTNER_HOST}\nusername: ${PARTNER_USER}\npassword: ${PARTNER_PASSWORD}\nhost_key_sha256: ${PARTNER_HOST_KEY}\npath: /incoming\nif_exists: rename',
    },
  ],
  async create(config, ctx) {
    const settings = await sftpSettings(config, ctx, 'SLUICE_E_SINK');
    return createRemoteSink({
      pool: await createSftpPool(settings, config.max_connections),
      root: config.path,
      ifExists: config.if_exists ?? 'overwrite',
      describe: (path) => sftpLocation(settings, path),
      isRetryable: isSftpRetryable,
    });
  },
});
