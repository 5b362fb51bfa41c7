/**
 * `s3` sink: multipart upload (./multipart.ts) completed only when the body ends
 * cleanly, aborted otherwise, so an object appears whole or not at all. Untouched items from an
 * s3 source on the same endpoint are copied server-side (CopyObject) without downloading.
 */
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { definePlugin } from '../../core/plugin-api.js';
import { Size, sinkCommon } from '../../core/schema-fragments.js';
import { HashTap, pipeThrough } from '../../core/streams.js';
import { parseSize } from '../../core/units.js';
import { takenError } from '../object-store/if-exists.js';
import { compileMetadata, type MetadataOptions } from '../object-store/metadata.js';
import { preserveMtimeField, s3MtimeValue } from '../object-store/mtime.js';
import { createObjectStoreSink, type SinkBackend } from '../object-store/sink.js';
import {
  connectS3,
  copyObject,
  deleteObject,
  endpointIdentity,
  isPreconditionFailed,
  isS3Retryable,
  S3_SHA256_METADATA,
  s3CheckTarget,
  s3ConnectionFields,
  s3Copies,
  s3Error,
  s3Location,
  s3ObjectAccess,
  validateS3Connection,
} from './client.js';
import { PartBufferPool, uploadObject } from './multipart.js';

/** S3's smallest allowed part (all but the last). */
const MIN_PART_SIZE = 5 * 1024 * 1024;

function metadataOptions(preserveMtime: boolean | undefined): MetadataOptions {
  return { sha256Key: S3_SHA256_METADATA, mtimeValue: preserveMtime === false ? undefined : s3MtimeValue };
}

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
      description:
        'Multipart part size (at least 5 MiB); an upload holds at most part_size × (queue_size + 1) in memory.',
    }),
    queue_size: Type.Integer({
      minimum: 1,
      default: 4,
      description: 'Parts uploaded in parallel per object.',
    }),
    preserve_mtime: preserveMtimeField,
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
    validateS3Connection(cfg);
    compileMetadata(cfg.metadata ?? {}, metadataOptions(cfg.preserve_mtime));
    if (parseSize(cfg.part_size) < MIN_PART_SIZE) {
      throw new SluiceError('SLUICE_E_CONFIG', 'part_size must be at least 5MiB (the S3 minimum)', {
        context: { jsonPath: '/part_size' },
      });
    }
  },
  copies(cfg, item) {
    // The object store sink copies only what it can also give its metadata (see its copy()).
    const metadata = compileMetadata(cfg.metadata ?? {}, metadataOptions(cfg.preserve_mtime));
    return s3Copies(endpointIdentity(cfg.endpoint), item) && metadata.hasDigests(item, {});
  },
  async create(cfg, ctx) {
    s3Sink.validate!(cfg);
    const conn = await connectS3(cfg);
    const partSize = parseSize(cfg.part_size);
    // Part buffers reused across this sink's uploads (one upload holds at most queue_size + 1).
    const pool = new PartBufferPool(partSize, cfg.queue_size + 1);

    const backend: SinkBackend = {
      ...s3ObjectAccess(conn),

      async upload(key, body, metadata, { exclusive, size, signal }) {
        // A single-part upload's ETag is the MD5 of the bytes S3 received: when it equals the
        // MD5 of what was sent, the object is verified (bytes, so size too) without a
        // HeadObject. Multipart uploads, KMS-encrypted buckets (other ETags) and bodies of
        // unknown size keep the HeadObject.
        const md5 = size !== undefined && size < partSize ? new HashTap('md5') : undefined;
        const sent = md5 ? pipeThrough(body, md5) : body;
        let bodyError: unknown;
        sent.once('error', (err) => {
          bodyError ??= err;
        });
        let etag: string | undefined;
        try {
          etag = await uploadObject(conn, sent, {
            key,
            metadata,
            exclusive,
            size,
            queueSize: cfg.queue_size,
            pool,
            signal,
          });
        } catch (err) {
          sent.destroy();
          if (bodyError !== undefined) throw bodyError;
          if (exclusive && isPreconditionFailed(err)) throw takenError(s3Location(conn.bucket, key));
          throw s3Error('SLUICE_E_SINK', `cannot upload ${s3Location(conn.bucket, key)}`, err);
        }
        return md5 && md5.bytes < partSize && etag !== undefined && etag === md5.digest()
          ? md5.bytes
          : undefined;
      },

      copyableFrom(item) {
        if (!s3Copies(conn.endpointId, item)) return undefined;
        const { location } = item.origin!;
        return { key: location.bucket === conn.bucket ? location.key : undefined };
      },

      async copy(item, key, { metadata, exclusive, signal }) {
        const from = { bucket: item.origin!.location.bucket, key: item.origin!.location.key };
        let copyEtag: string | undefined;
        try {
          copyEtag = await copyObject(conn, from, key, {
            metadata,
            signal,
            ifMatch: item.etag,
            ifNoneMatch: exclusive,
          });
        } catch (err) {
          // The sink's credentials may not read the source bucket: let the runtime stream it.
          if ((err as { name?: string }).name === 'AccessDenied') return null;
          // Exclusive and pinned: a 412 is either condition; the retry tells which.
          if (isPreconditionFailed(err)) {
            throw new SluiceError(
              'SLUICE_E_SINK',
              `cannot copy ${s3Location(from.bucket, from.key)} to ${s3Location(conn.bucket, key)}: ${exclusive ? 'the source changed since it was listed, or the destination was created meanwhile' : 'the source changed since it was listed'}`,
              { cause: err, retryable: exclusive },
            );
          }
          throw s3Error(
            'SLUICE_E_SINK',
            `cannot copy ${s3Location(from.bucket, from.key)} to ${s3Location(conn.bucket, key)}`,
            err,
          );
        }
        // A single-part object's ETag is the MD5 of its bytes: the copy reporting the listed
        // ETag is a content check stronger than the stored size, without a HeadObject. Multipart
        // sources ("…-N"), KMS-encrypted ones and anything else fall back to the HeadObject.
        const sameBytes =
          copyEtag !== undefined &&
          item.etag !== undefined &&
          !item.etag.includes('-') &&
          copyEtag === item.etag;
        return sameBytes ? item.size : undefined;
      },

      delete: (key) => deleteObject(conn, key),
      error: (what, err) => s3Error('SLUICE_E_SINK', what, err),
      checks: s3CheckTarget(conn, cfg.region),
    };

    return {
      ...createObjectStoreSink(backend, {
        prefix: cfg.prefix,
        ifExists: cfg.if_exists ?? 'overwrite',
        metadata: compileMetadata(cfg.metadata ?? {}, metadataOptions(cfg.preserve_mtime)),
        tempDir: ctx.tempDir,
      }),
      isRetryable: isS3Retryable,
      async close() {
        conn.client.destroy();
      },
    };
  },
});
