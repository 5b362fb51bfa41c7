/**
 * `azure_blob` sink: stages blocks while the body streams and commits the block list only at a
 * clean end (`uploadStream`), so a blob appears whole or not at all. Untouched items from an
 * azure_blob source of the same account are copied server-side.
 */
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { definePlugin } from '../../core/plugin-api.js';
import { Size, sinkCommon } from '../../core/schema-fragments.js';
import { parseSize } from '../../core/units.js';
import { takenError } from '../object-store/if-exists.js';
import { compileMetadata, type MetadataOptions } from '../object-store/metadata.js';
import { azureMtimeValue, preserveMtimeField } from '../object-store/mtime.js';
import { createObjectStoreSink, type SinkBackend } from '../object-store/sink.js';
import {
  AZURE_ORIGIN_KIND,
  AZURE_SHA256_METADATA,
  azureCheckTarget,
  azureConnectionFields,
  azureError,
  azureLocation,
  azureObjectAccess,
  blobUrl,
  connectAzure,
  copyBlob,
  deleteBlob,
  isAzureRetryable,
  isConditionNotMet,
  validateAzureConnection,
} from './client.js';

/** Azure's largest block (API 2019-12-12 and later). */
const MAX_BLOCK_SIZE = 4000 * 1024 * 1024;

function metadataOptions(preserveMtime: boolean | undefined): MetadataOptions {
  return {
    sha256Key: AZURE_SHA256_METADATA,
    mtimeValue: preserveMtime === false ? undefined : azureMtimeValue,
  };
}

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
    preserve_mtime: preserveMtimeField,
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
    compileMetadata(cfg.metadata ?? {}, metadataOptions(cfg.preserve_mtime));
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
    const blockSize = parseSize(cfg.block_size);
    if (cfg.create_container) {
      try {
        await conn.container.createIfNotExists({ abortSignal: ctx.signal });
      } catch (err) {
        throw azureError('SLUICE_E_SINK', `cannot create container ${conn.container.containerName}`, err);
      }
    }

    const backend: SinkBackend = {
      ...azureObjectAccess(conn),

      async upload(name, body, metadata, { exclusive, signal }) {
        let bodyError: unknown;
        body.once('error', (err) => {
          bodyError ??= err;
        });
        try {
          // The conditions apply to the block list commit: the blob appears only if the name
          // is still free (409 BlobAlreadyExists otherwise).
          await conn.container.getBlockBlobClient(name).uploadStream(body, blockSize, cfg.concurrency, {
            metadata,
            abortSignal: signal,
            conditions: exclusive ? { ifNoneMatch: '*' } : undefined,
          });
        } catch (err) {
          body.destroy();
          if (bodyError !== undefined) throw bodyError;
          if (exclusive && isConditionNotMet(err)) throw takenError(azureLocation(conn, name));
          throw azureError('SLUICE_E_SINK', `cannot upload ${azureLocation(conn, name)}`, err);
        }
        return undefined;
      },

      copyableFrom(item) {
        const origin = item.origin;
        if (origin?.kind !== AZURE_ORIGIN_KIND || origin.endpoint !== conn.endpointId) return undefined;
        return {
          key: origin.location.container === conn.container.containerName ? origin.location.blob : undefined,
        };
      },

      async copy(item, name, { metadata, exclusive, signal }) {
        const { container, blob } = item.origin!.location;
        const where = `cannot copy ${blob} to ${azureLocation(conn, name)}`;
        try {
          await copyBlob(conn, blobUrl(conn, container, blob), name, {
            metadata,
            signal,
            ifMatch: item.etag,
            ifNoneMatch: exclusive,
          });
        } catch (err) {
          // The sink's credentials may not read the source container: let the runtime stream it.
          const status = (err as { statusCode?: number }).statusCode;
          if (status === 403 || status === 401) return null;
          if (isConditionNotMet(err)) {
            throw new SluiceError(
              'SLUICE_E_SINK',
              `${where}: ${exclusive ? 'the source changed since it was listed, or the destination was created meanwhile' : 'the source changed since it was listed'}`,
              { cause: err, retryable: exclusive },
            );
          }
          throw azureError('SLUICE_E_SINK', where, err);
        }
        return undefined;
      },

      delete: (name) => deleteBlob(conn, name),
      error: (what, err) => azureError('SLUICE_E_SINK', what, err),
      checks: azureCheckTarget(conn),
    };

    return {
      ...createObjectStoreSink(backend, {
        prefix: cfg.prefix,
        ifExists: cfg.if_exists ?? 'overwrite',
        metadata: compileMetadata(cfg.metadata ?? {}, metadataOptions(cfg.preserve_mtime)),
        tempDir: ctx.tempDir,
      }),
      isRetryable: isAzureRetryable,
    };
  },
});
