import { Type } from '@sinclair/typebox';
import { definePlugin } from '../../core/plugin-api.js';
import { sourceCommon } from '../../core/schema-fragments.js';
import { remoteSourceFields, rootsOf, validateRoots } from '../remote-fs/fields.js';
import { createRemoteSource } from '../remote-fs/source.js';
import {
  createFtpPool,
  ftpConnectionFields,
  ftpLocation,
  ftpPreflight,
  ftpSettings,
  isFtpRetryable,
} from './client.js';

export const ftpSource = definePlugin({
  name: 'ftp',
  kind: 'source',
  summary: 'Lists and reads files on an FTP or FTPS (explicit/implicit TLS) server.',
  description:
    'Walks `path` (recursively by default, one folder at a time) in passive mode; a link to a folder is not descended into. A name that is not valid UTF-8 or holds a control character, and a folder that cannot be read, are reported as failed items; the listing goes on. basic-ftp lists with MLSD when the server offers it and falls back to LIST; with LIST, file mtimes come from MDTM (one round trip per file) because LIST dates are minute-precise text. Each transfer borrows one of `max_connections` pooled control connections (FTP runs one transfer per connection); a dropped connection is replaced on the next borrow. `after_success` acts only on the listed version: the file is renamed aside to a hidden `.<name>.sluice-tidy-<hex>`, its size and MDTM (whole seconds) checked, then deleted or moved — a file changed meanwhile is put back. `move_to` keeps the relative path and replaces an existing target (delete-then-rename on servers that refuse RNTO onto a file). The server keeps no checksums, so items carry none (`checksum: {expect: metadata}` has nothing to compare). `sluice check` logs in and proves `path` is a folder; at full depth it also lists it.',
  config: Type.Object(
    {
      ...sourceCommon,
      ...ftpConnectionFields,
      ...remoteSourceFields,
      recursive: Type.Boolean({ default: true, description: 'Also list files in sub-folders of `path`.' }),
    },
    { additionalProperties: false },
  ),
  examples: [
    {
      title: 'Explicit TLS (FTPES), zip exports only',
      yaml: 'name: partner_a\nhost: ${PARTNER_A_HOST}\nusername: ${PARTNER_A_USER}\npassword: ${PARTNER_A_PASSWORD}\nsecure: explicit\npath: /exports\ninclude: ["*.zip"]',
    },
  ],
  validate: validateRoots,
  async create(config, ctx) {
    const settings = await ftpSettings(config, ctx, 'SLUICE_E_SOURCE');
    return createRemoteSource({
      pool: await createFtpPool(settings, config.max_connections),
      sourceName: config.name ?? 'ftp',
      ...rootsOf(config),
      recursive: config.recursive,
      moveTo: typeof config.after_success === 'object' ? config.after_success.move_to : undefined,
      isRetryable: isFtpRetryable,
      describe: (path) => ftpLocation(settings, path),
      preflight: ftpPreflight(settings),
    });
  },
});
