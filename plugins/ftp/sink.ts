import { Type } from '@sinclair/typebox';
import { definePlugin } from '../../core/plugin-api.js';
import { sinkCommon } from '../../core/schema-fragments.js';
import { createRemoteSink } from '../remote-fs/sink.js';
import { createFtpPool, ftpConnectionFields, ftpLocation, ftpSettings, isFtpRetryable } from './client.js';

export const ftpSink = definePlugin({
  name: 'ftp',
  kind: 'sink',
  summary: 'Writes files to an FTP or FTPS server: upload to a temp name, then RNFR/RNTO into place.',
  description:
    'Uploads each item to a hidden temp file `.<name>.sluice-tmp-<hex>` in the destination folder (created as needed), then renames it (RNFR/RNTO). A failed upload removes its temp file. FTP has no exclusive rename, so `if_exists: skip/fail/rename` check the target just before renaming (a concurrent writer can slip in between). Up to `max_connections` uploads run at once.',
  config: Type.Object({ ...sinkCommon, ...ftpConnectionFields }, { additionalProperties: false }),
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
      isRetryable: isFtpRetryable,
    });
  },
});
