import { Type } from '@sinclair/typebox';
import { definePlugin } from '../../core/plugin-api.js';
import { sinkCommon } from '../../core/schema-fragments.js';
import { remoteSinkFields } from '../remote-fs/fields.js';
import { createRemoteSink } from '../remote-fs/sink.js';
import {
  createFtpPool,
  ftpConnectionFields,
  ftpLocation,
  ftpPreflight,
  ftpSettings,
  isFtpRetryable,
} from './client.js';

export const ftpSink = definePlugin({
  name: 'ftp',
  kind: 'sink',
  summary: 'Writes files to an FTP or FTPS server: upload to a temp name, then RNFR/RNTO into place.',
  description:
    'Uploads each item to a hidden temp file `.<name>.sluice-tmp-<hex>` in the destination folder (created as needed), then renames it (RNFR/RNTO). A failed upload removes its temp file. FTP has no exclusive rename, so `if_exists: skip/fail/rename` check the target just before renaming (a concurrent writer can slip in between). FTP cannot tell a symbolic link on the server from what it leads to, so unlike the sftp sink this one cannot refuse a link planted under `path`: keep the folder writable only by the pipeline’s login. With `preserve_mtime` (default) the temp file gets the item mtime before the rename — `MFMT` when the server advertises it in FEAT, else the two-argument `MDTM` vsftpd and Serv-U take — and the MDTM read back after it is reported for verification (whole seconds, UTC); a server with neither keeps the upload time, says so once at debug level and reports no mtime. FTP has no checksums: the sink reports size and mtime only. Up to `max_connections` uploads run at once. `sluice check` logs in and proves `path` is a folder (or that the first write will create it); at full depth it writes and removes a probe `.sluice-check-<hex>` there.',
  config: Type.Object(
    { ...sinkCommon, ...ftpConnectionFields, ...remoteSinkFields },
    { additionalProperties: false },
  ),
  examples: [
    {
      title: 'Implicit TLS with a private CA',
      yaml: 'host: ftp.example.com\nusername: ${FTP_USER}\npassword: ${FTP_PASSWORD}\nsecure: implicit\nca_file: ./certs/partner-ca.pem\npath: /inbound\nif_exists: fail',
    },
  ],
  async create(config, ctx) {
    const settings = await ftpSettings(config, ctx, 'SLUICE_E_SINK');
    return createRemoteSink({
      pool: await createFtpPool(settings, config.max_connections),
      root: config.path,
      ifExists: config.if_exists ?? 'overwrite',
      describe: (path) => ftpLocation(settings, path),
      preserveMtime: config.preserve_mtime,
      preflight: ftpPreflight(settings),
      log: ctx.log,
      isRetryable: isFtpRetryable,
    });
  },
});
