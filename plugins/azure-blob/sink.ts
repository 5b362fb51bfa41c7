/**
 * `azure_blob` sink: stages blocks while the body streams and commits the block list only at a
 * clean end (`uploadStream`), so a blob appears whole or not at all. Untouched items from an
 * azure_blob source of the same account are copied server-side.
 */
import type { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { definePlugin, type Item, type SinkCommit, type SinkWriteRequest } from '../../core/plugin-api.js';
import { Size, sinkCommon } from '../../core/schema-fragments.js';
import { parseSize } from '../../core/units.js';
import { decideForCopy, decideForWrite } from '../object-store/if-exists.js';
import { folderPrefix, joinKey } from '../object-store/keys.js';
import { compileMetadata, spoolHashed } from '../object-store/metadata.js';
import {
  AZURE_ORIGIN_KIND,
  AZURE_SHA256_METADATA,
  azureConnectionFields,
  azureError,
  azureLocation,
  azureObjectAccess,
  blobUrl,
  connectAzure,
  copyBlob,
  deleteBlob,
  downloadBlob,
  isAzureRetryable,
  validateAzureConnection,
} from './client.js';

/** Azure's largest block (API 2019-12-12 and later). */
const MAX_BLOCK_SIZE = 4000 * 1024 * 1024;

const config = Type.Object(
  {
    ...azureConnectionFields,
    prefix: Type.String({
      default: '',
      description: 'Folder (name prefix) under which destinations are written; a trailing `/` is implied.',
      examples: ['partners/'],
    }),
    create_container: Type.Boolean({
      default: false,
      description:
        'Create the container at start when it does not exist. Off by default: a misspelt name should fail, not create a new container (and SAS credentials usually may not create one).',
    }),
    metadata: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String(), {
        additionalProperties: false,
        description:
          'Blob metadata stored with each blob (names must be C# identifiers: letters, digits, `_`); values are templates (`{name}`, `{meta.KEY}`, `{now:%Y-%m-%dT%H:%M:%SZ}`…); `{sha256}` is the hex sha256 of the bytes, computed before the upload when the runtime does not know it (by spooling to a temp file).',
        examples: [{ source_sha256: '{sha256}' }],
      }),
    ),
    block_size: Size({
      default: '8MiB',
      description: 'Size of each staged block; memory use is block_size × concurrency.',
    }),
    concurrency: Type.Integer({
      minimum: 1,
      default: 4,
      description: 'Blocks uploaded in parallel per blob.',
    }),
    ...sinkCommon,
  },
  { additionalProperties: false },
);

export const azureBlobSink = definePlugin({
  name: 'azure_blob',
  kind: 'sink',
  summary: 'Writes blobs to an Azure Storage container, committing each block list only at a clean end.',
  description:
    'Blocks are staged while the stream flows and the block list is committed only when it ends cleanly; on error nothing is committed (staged blocks are discarded by the service). When Sluice knows the sha256 of the bytes it records it in metadata `sluice_sha256`; `if_exists: fail` uses it to recognise an earlier copy of the same bytes. Items from an azure_blob source of the same account are copied server-side.',
  config,
  examples: [
    {
      title: 'Land files under partners/ in the ingest container',
      yaml: 'connection_string: ${AZURE_STORAGE_CONNECTION_STRING}\ncontainer: ingest\nprefix: partners/\n',
    },
  ],
  validate(cfg) {
    validateAzureConnection(cfg);
    compileMetadata(cfg.metadata ?? {}, AZURE_SHA256_METADATA);
    const blockSize = parseSize(cfg.block_size);
    if (blockSize < 1 || blockSize > MAX_BLOCK_SIZE) {
      throw new SluiceError('SLUICE_E_CONFIG', 'block_size must be between 1 byte and 4000MiB', {
        context: { jsonPath: '/block_size' },
      });
    }
  },
  async create(cfg, ctx) {
    azureBlobSink.validate!(cfg);
    const conn = await connectAzure(cfg);
    const prefix = folderPrefix(cfg.prefix);
    const access = azureObjectAccess(conn);
    const ifExists = cfg.if_exists ?? 'overwrite';
    const metadata = compileMetadata(cfg.metadata ?? {}, AZURE_SHA256_METADATA);
    const blockSize = parseSize(cfg.block_size);
    if (cfg.create_container) {
      try {
        await conn.container.createIfNotExists({ abortSignal: ctx.signal });
      } catch (err) {
        throw azureError('SLUICE_E_SINK', `cannot create container ${conn.container.containerName}`, err);
      }
    }

    const storedSize = async (name: string): Promise<number | undefined> => {
      try {
        return (await access.stat(name))?.size;
      } catch (err) {
        throw azureError('SLUICE_E_SINK', `cannot check ${azureLocation(conn, name)} after writing it`, err);
      }
    };

    /** Uploads `body` to `name`; rejects with the body's own error when the body failed. */
    const upload = async (
      name: string,
      item: Item,
      body: Readable,
      sha256: string | undefined,
      signal: AbortSignal,
    ) => {
      let bodyError: unknown;
      body.once('error', (err) => {
        bodyError ??= err;
      });
      try {
        await conn.container.getBlockBlobClient(name).uploadStream(body, blockSize, cfg.concurrency, {
          metadata: metadata.render(item, sha256),
          abortSignal: signal,
        });
      } catch (err) {
        body.destroy();
        if (bodyError !== undefined) throw bodyError;
        throw azureError('SLUICE_E_SINK', `cannot upload ${azureLocation(conn, name)}`, err);
      }
    };

    return {
      async write(req: SinkWriteRequest): Promise<SinkCommit> {
        const wanted = joinKey(prefix, req.destination);
        let decision: Awaited<ReturnType<typeof decideForWrite>>;
        try {
          decision = await decideForWrite(access, wanted, ifExists, req.body, req.signal);
        } catch (err) {
          throw azureError('SLUICE_E_SINK', `cannot check ${azureLocation(conn, wanted)}`, err);
        }
        if (decision.commit) return decision.commit;
        const name = decision.key;
        if (!metadata.needsSha256 || req.sha256 !== undefined) {
          await upload(name, req.item, req.body, req.sha256, req.signal);
        } else {
          const spooled = await spoolHashed(req.body, ctx.tempDir);
          try {
            await upload(name, req.item, spooled.open(), spooled.sha256, req.signal);
          } finally {
            await spooled.remove();
          }
        }
        return { location: azureLocation(conn, name), size: await storedSize(name) };
      },

      async copy(item: Item, destination: string, signal: AbortSignal): Promise<SinkCommit | null> {
        const origin = item.origin;
        if (origin?.kind !== AZURE_ORIGIN_KIND || origin.endpoint !== conn.endpointId) return null;
        const sha256 = item.checksums.sha256;
        if (metadata.needsSha256 && sha256 === undefined) return null;
        const target = joinKey(prefix, destination);
        if (origin.location.container === conn.container.containerName && origin.location.blob === target) {
          throw new SluiceError(
            'SLUICE_E_DESTINATION',
            `destination ${azureLocation(conn, target)} is the source blob itself`,
            {
              retryable: false,
            },
          );
        }
        let decision: Awaited<ReturnType<typeof decideForCopy>>;
        try {
          decision = await decideForCopy(access, target, ifExists, item, signal);
        } catch (err) {
          throw azureError('SLUICE_E_SINK', `cannot check ${azureLocation(conn, target)}`, err);
        }
        if (decision === null) return null;
        if (decision.commit) return decision.commit;
        const name = decision.key;
        const sourceUrl = blobUrl(conn, origin.location.container, origin.location.blob);
        const replaceMetadata = !metadata.isEmpty || sha256 !== undefined;
        try {
          await copyBlob(conn, sourceUrl, name, {
            metadata: replaceMetadata ? metadata.render(item, sha256) : undefined,
            signal,
          });
        } catch (err) {
          // The sink's credentials may not read the source container: let the runtime stream it.
          const status = (err as { statusCode?: number }).statusCode;
          if (status === 403 || status === 401) return null;
          throw azureError(
            'SLUICE_E_SINK',
            `cannot copy ${origin.location.blob} to ${azureLocation(conn, name)}`,
            err,
          );
        }
        return { location: azureLocation(conn, name), size: await storedSize(name) };
      },

      async readBack(destination: string, signal: AbortSignal): Promise<Readable> {
        const name = joinKey(prefix, destination);
        try {
          return await downloadBlob(conn, name, { signal });
        } catch (err) {
          throw azureError('SLUICE_E_SINK', `cannot read back ${azureLocation(conn, name)}`, err);
        }
      },

      async remove(destination: string): Promise<void> {
        const name = joinKey(prefix, destination);
        try {
          await deleteBlob(conn, name);
        } catch (err) {
          throw azureError('SLUICE_E_SINK', `cannot delete ${azureLocation(conn, name)}`, err);
        }
      },

      isRetryable: isAzureRetryable,
    };
  },
});
