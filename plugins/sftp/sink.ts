import { Type } from '@sinclair/typebox';
import { definePlugin } from '../../core/plugin-api.js';
import { sinkCommon } from '../../core/schema-fragments.js';
import { remoteSinkFields } from '../remote-fs/fields.js';
import { createRemoteSink } from '../remote-fs/sink.js';
import {
  createSftpPool,
  isSftpRetryable,
  sftpConnectionFields,
  sftpLocation,
  sftpPreflight,
  sftpSettings,
  sftpUploadFields,
} from './client.js';
import { SFTP_UPLOAD_CHANNELS } from './pipelined-write.js';

export const sftpSink = definePlugin({
  name: 'sftp',
  kind: 'sink',
  summary: 'Writes files to an SFTP server atomically (temp name, then rename), host key pinned.',
  description:
    'Uploads each item to a hidden temp file `.<name>.sluice-tmp-<hex>` in the destination folder (created as needed), then renames it into place: OpenSSH posix-rename for `if_exists: overwrite` (atomic replace), a plain SFTP rename (which refuses an existing target) for skip/fail/rename. A failed or aborted upload removes its temp file. Nothing is written through a symbolic link under `path` on the server: a folder on the way that is a link, or (with `skip` or `fail`) a link at the destination name, fails the item with SLUICE_E_DESTINATION and the source is kept. With `preserve_mtime` (default) the temp file gets the item mtime (SFTP setstat, whole seconds) before the rename, and the mtime read back after it is reported for verification (SFTP v3 holds 32-bit seconds: times after 2106 or before 1970 cannot be stored and fail verification). A server that refuses SETSTAT by policy keeps the upload time, says so once at debug level and reports no mtime. SFTP has no checksums: the sink reports size and mtime only. Up to `max_connections` uploads run at once. `sluice check` logs in and proves `path` is a folder (or that the first write will create it); at full depth it writes and removes a probe `.sluice-check-<hex>` there.',
  config: Type.Object(
    { ...sinkCommon, ...sftpConnectionFields, ...sftpUploadFields, ...remoteSinkFields },
    { additionalProperties: false },
  ),
  examples: [
    {
      title: 'Password auth into a folder',
      yaml: 'host: ${PARTNER_HOST}\nusername: ${PARTNER_USER}\npassword: ${PARTNER_PASSWORD}\nhost_key_sha256: ${PARTNER_HOST_KEY}\npath: /incoming\nif_exists: rename',
    },
  ],
  async create(config, ctx) {
    // Configs built in code (tests, embedders) may skip the schema's defaults.
    const uploadChannels = config.upload_channels ?? SFTP_UPLOAD_CHANNELS;
    const settings = await sftpSettings({ ...config, upload_channels: uploadChannels }, ctx, 'SLUICE_E_SINK');
    return createRemoteSink({
      pool: await createSftpPool(settings, config.max_connections),
      root: config.path,
      ifExists: config.if_exists ?? 'overwrite',
      describe: (path) => sftpLocation(settings, path),
      preserveMtime: config.preserve_mtime,
      preflight: sftpPreflight(settings),
      log: ctx.log,
      isRetryable: isSftpRetryable,
    });
  },
});
