/**
 * `s3` sink: multipart upload (`@aws-sdk/lib-storage`) completed only when the body ends
 * cleanly, aborted otherwise, so an object appears whole or not at all. Untouched items from an
 * s3 source on the same endpoint are copied server-side (CopyObject) without downloading.
 */
import type { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { HashTap, pipeThrough } from '../../core/streams.js';
import { definePlugin, type Item, type SinkCommit, type SinkWriteRequest } from '../../core/plugin-api.js';
import { Size, sinkCommon } from '../../core/schema-fragments.js';
import { parseSize } from '../../core/units.js';
import { decideForCopy, decideForWrite } from '../object-store/if-exists.js';
import { folderPrefix, joinKey } from '../object-store/keys.js';
import { compileMetadata, spoolHashed } from '../object-store/metadata.js';
import {
  connectS3,
  copyObject,
  deleteObject,
  getObjectStream,
  isS3Retryable,
  MAX_SINGLE_COPY_BYTES,
  S3_ORIGIN_KIND,
  S3_SHA256_METADATA,
  s3ConnectionFields,
  s3Error,
  s3Location,
  s3ObjectAccess,
} from './client.js';

/** S3's smallest allowed part (all but the last). */
const MIN_PART_SIZE = 5 * 1024 * 1024;

const config = Type.Object(
  {
    ...s3ConnectionFields,
    prefix: Type.String({
      default: '',
      description: 'Folder (key prefix) under which destinations are written; a trailing `/` is implied.',
      examples: ['landing/'],
    }),
    metadata: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9_-]+$' }), Type.String(), {
        additionalProperties: false,
        description:
          'User metadata (`x-amz-meta-*`) stored with each object; values are templates (`{name}`, `{meta.KEY}`, `{now:%Y-%m-%dT%H:%M:%SZ}`…); `{sha256}` is the hex sha256 of the bytes, computed before the upload when the runtime does not know it (by spooling to a temp file).',
        examples: [{ 'source-sha256': '{sha256}', 'uploaded-at': '{now:%Y-%m-%dT%H:%M:%SZ}' }],
      }),
    ),
    part_size: Size({
      default: '8MiB',
      description: 'Multipart part size (at least 5 MiB); memory use is part_size × queue_size.',
    }),
    queue_size: Type.Integer({
      minimum: 1,
      default: 4,
      description: 'Parts uploaded in parallel per object.',
    }),
    ...sinkCommon,
  },
  { additionalProperties: false },
);

export const s3Sink = definePlugin({
  name: 's3',
  kind: 'sink',
  summary: 'Writes objects to an S3 (or S3-compatible) bucket with atomic multipart uploads.',
  description:
    'Each object is uploaded as a multipart upload that is completed only when the stream ends cleanly and aborted on any error, so nothing partial becomes visible. When Sluice knows the sha256 of the bytes it records it in `x-amz-meta-sluice-sha256`; `if_exists: fail` uses it to recognise an earlier copy of the same bytes (and reads the existing object when it is missing). Items from an s3 source on the same endpoint are copied server-side.',
  config,
  examples: [
    {
      title: 'AWS bucket, keep existing objects',
      yaml: 'bucket: octo-data\nregion: eu-west-1\nif_exists: skip\n',
    },
    {
      title: 'Checksum metadata and read-back verification',
      yaml: 'bucket: results\nmetadata:\n  source-sha256: "{sha256}"\nverify: sha256\n',
    },
  ],
  validate(cfg) {
    compileMetadata(cfg.metadata ?? {}, S3_SHA256_METADATA);
    if (parseSize(cfg.part_size) < MIN_PART_SIZE) {
      throw new SluiceError('SLUICE_E_CONFIG', 'part_size must be at least 5MiB (the S3 minimum)', {
        context: { jsonPath: '/part_size' },
      });
    }
  },
  async create(cfg, ctx) {
    s3Sink.validate!(cfg);
    const conn = await connectS3(cfg);
    const { Upload } = await import('@aws-sdk/lib-storage');
    const prefix = folderPrefix(cfg.prefix);
    const access = s3ObjectAccess(conn);
    const ifExists = cfg.if_exists ?? 'overwrite';
    const metadata = compileMetadata(cfg.metadata ?? {}, S3_SHA256_METADATA);
    const partSize = parseSize(cfg.part_size);

    const storedSize = async (key: string): Promise<number | undefined> => {
      try {
        return (await access.stat(key))?.size;
      } catch (err) {
        throw s3Error('SLUICE_E_SINK', `cannot check ${s3Location(conn.bucket, key)} after writing it`, err);
      }
    };

    /**
     * Uploads `body` to `key`; rejects with the body's own error when the body failed. Returns
     * the object's ETag (unquoted) as the server reported it.
     */
    const upload = async (
      key: string,
      item: Item,
      body: Readable,
      sha256: string | undefined,
      signal: AbortSignal,
    ): Promise<string | undefined> => {
      let bodyError: unknown;
      body.once('error', (err) => {
        bodyError ??= err;
      });
      const abort = new AbortController();
      const onAbort = () => abort.abort(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      const uploader = new Upload({
        client: conn.client,
        params: {
          Bucket: conn.bucket,
          Key: key,
          Body: body,
          Metadata: metadata.render(item, sha256),
        },
        partSize,
        queueSize: cfg.queue_size,
        leavePartsOnError: false,
        abortController: abort,
      });
      try {
        const result = (await uploader.done()) as { ETag?: string };
        return result.ETag?.replace(/^"|"$/g, '');
      } catch (err) {
        body.destroy();
        // lib-storage reports the abort call's failure in place of the cause when the abort fails.
        if (bodyError !== undefined) throw bodyError;
        throw s3Error('SLUICE_E_SINK', `cannot upload ${s3Location(conn.bucket, key)}`, err);
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    };

    return {
      async write(req: SinkWriteRequest): Promise<SinkCommit> {
        const decision = await decideForWrite(
          access,
          joinKey(prefix, req.destination),
          ifExists,
          req.body,
          req.signal,
        ).catch((err: unknown) => {
          throw s3Error(
            'SLUICE_E_SINK',
            `cannot check ${s3Location(conn.bucket, joinKey(prefix, req.destination))}`,
            err,
          );
        });
        if (decision.commit) return decision.commit;
        const key = decision.key;
        // A single-part upload's ETag is the MD5 of the bytes S3 received: when it equals the
        // MD5 of what was sent, the object is verified (bytes, so size too) without a
        // HeadObject. Multipart uploads, KMS-encrypted buckets (other ETags) and bodies of
        // unknown size keep the HeadObject.
        const md5 = req.size !== undefined && req.size < partSize ? new HashTap('md5') : undefined;
        let etag: string | undefined;
        if (!metadata.needsSha256 || req.sha256 !== undefined) {
          etag = await upload(key, req.item, md5 ? pipeThrough(req.body, md5) : req.body, req.sha256, req.signal);
        } else {
          const spooled = await spoolHashed(req.body, ctx.tempDir);
          try {
            etag = await upload(key, req.item, md5 ? pipeThrough(spooled.open(), md5) : spooled.open(), spooled.sha256, req.signal);
          } finally {
            await spooled.remove();
          }
        }
        const location = s3Location(conn.bucket, key);
        if (md5 && md5.bytes < partSize && etag !== undefined && etag === md5.digest()) return { location, size: md5.bytes };
        return { location, size: await storedSize(key) };
      },

      async copy(item: Item, destination: string, signal: AbortSignal): Promise<SinkCommit | null> {
        const origin = item.origin;
        if (origin?.kind !== S3_ORIGIN_KIND || origin.endpoint !== conn.endpointId) return null;
        if (item.size !== undefined && item.size > MAX_SINGLE_COPY_BYTES) return null;
        const sha256 = item.checksums.sha256;
        if (metadata.needsSha256 && sha256 === undefined) return null;
        const from = { bucket: origin.location.bucket, key: origin.location.key };
        const target = joinKey(prefix, destination);
        if (from.bucket === conn.bucket && from.key === target) {
          throw new SluiceError(
            'SLUICE_E_DESTINATION',
            `destination ${s3Location(conn.bucket, target)} is the source object itself`,
            { retryable: false },
          );
        }
        let decision: Awaited<ReturnType<typeof decideForCopy>>;
        try {
          decision = await decideForCopy(access, target, ifExists, item, signal);
        } catch (err) {
          throw s3Error('SLUICE_E_SINK', `cannot check ${s3Location(conn.bucket, target)}`, err);
        }
        if (decision === null) return null;
        if (decision.commit) return decision.commit;
        const key = decision.key;
        const replaceMetadata = !metadata.isEmpty || sha256 !== undefined;
        let copyEtag: string | undefined;
        try {
          copyEtag = await copyObject(conn, from, key, {
            metadata: replaceMetadata ? metadata.render(item, sha256) : undefined,
            signal,
          });
        } catch (err) {
          // The sink's credentials may not read the source bucket: let the runtime stream it.
          if ((err as { name?: string }).name === 'AccessDenied') return null;
          throw s3Error(
            'SLUICE_E_SINK',
            `cannot copy ${s3Location(from.bucket, from.key)} to ${s3Location(conn.bucket, key)}`,
            err,
          );
        }
        // A single-part object's ETag is the MD5 of its bytes: the copy reporting the listed
        // ETag is a content check stronger than the stored size, without a HeadObject. Multipart
        // sources ("…-N"), KMS-encrypted ones and anything else fall back to the HeadObject.
        const sameBytes = copyEtag !== undefined && item.etag !== undefined && !item.etag.includes('-') && copyEtag === item.etag;
        if (sameBytes && item.size !== undefined) return { location: s3Location(conn.bucket, key), size: item.size };
        return { location: s3Location(conn.bucket, key), size: await storedSize(key) };
      },

      async readBack(destination: string, signal: AbortSignal): Promise<Readable> {
        const key = joinKey(prefix, destination);
        try {
          return await getObjectStream(conn, key, { signal });
        } catch (err) {
          throw s3Error('SLUICE_E_SINK', `cannot read back ${s3Location(conn.bucket, key)}`, err);
        }
      },

      async remove(destination: string): Promise<void> {
        const key = joinKey(prefix, destination);
        try {
          await deleteObject(conn, key);
        } catch (err) {
          throw s3Error('SLUICE_E_SINK', `cannot delete ${s3Location(conn.bucket, key)}`, err);
        }
      },

      isRetryable: isS3Retryable,

      async close() {
        conn.client.destroy();
      },
    };
  },
});
