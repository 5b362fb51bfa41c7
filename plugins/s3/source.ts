/** `s3` source: lists objects under one or more prefixes of a bucket, lazily, page by page. */
import { Type } from '@sinclair/typebox';
import { definePlugin } from '../../core/plugin-api.js';
import { sourceCommon } from '../../core/schema-fragments.js';
import { quotedEtag } from '../object-store/keys.js';
import { prefixFields, validatePrefixes } from '../object-store/prefixes.js';
import { createObjectStoreSource, type SourceBackend } from '../object-store/source.js';
import {
  connectS3,
  copyObjectVersion,
  deleteObjectVersion,
  deleteTransport,
  getObjectStream,
  isNotFound,
  isS3Retryable,
  listObjectsPage,
  S3_ORIGIN_KIND,
  s3CheckTarget,
  s3ConnectionFields,
  s3Error,
  s3Location,
  validateS3Connection,
  withStoredMetadata,
} from './client.js';
import { DeleteBatcher } from './delete-batch.js';

const config = Type.Object(
  {
    ...s3ConnectionFields,
    ...prefixFields('key', 'incoming/'),
    recursive: Type.Boolean({
      default: true,
      description: 'List keys at any depth below the prefix; false: only keys directly under it.',
    }),
    page_size: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 1000,
      description: 'Keys per ListObjectsV2 page.',
    }),
    read_metadata: Type.Boolean({
      default: false,
      description:
        "One HeadObject per listed object (16 at a time) to read what a listing does not carry: the stored mtime (metadata `mtime`, as Sluice's and rclone's sinks write it) becomes the item's mtime, the stored `sluice-sha256` its sha256 checksum, and SSE-KMS/SSE-C objects lose the ETag as md5. Off: an item's mtime is the object's LastModified, and its md5 the single-part ETag.",
    }),
    ...sourceCommon,
  },
  { additionalProperties: false },
);

export const s3Source = definePlugin({
  name: 's3',
  kind: 'source',
  summary: 'Lists and reads objects under a prefix of an S3 (or S3-compatible) bucket.',
  description:
    'Listing is paginated and lazy. Item version (`identity: version`) is the listed ETag alone: an object rewritten with the same bytes in one part keeps its ETag, so it is not taken again (use `identity: content` to compare bytes, `name` to ignore rewrites); reads are pinned to the listed etag (If-Match), so a replaced object is never processed under the old identity. A key that is not a plain relative path below the prefix (`a//b`, `./a`, `../a`, a backslash, a control character) is reported as a failed item and left in place, never read or tidied under another name. `after_success` deletes or moves only the listed version (If-Match, after a HeadObject check for services that ignore it); a replaced object is left for the next pass. Items carry their bucket/key as origin, so an s3 sink on the same endpoint copies them server-side without downloading. Items carry the ETag of a single-part object as checksum `md5` (for `checksum: {expect: metadata}`); a multipart ETag (`…-N`) is not an MD5 and gives none, and neither is the ETag of an object encrypted with SSE-KMS or SSE-C (SSE-S3 keeps it an MD5): a listing cannot tell those apart, so for such buckets set `read_metadata: true` (its HeadObject tells, and drops the md5) or check sha256 instead. With `read_metadata`, the item mtime is the stored metadata `mtime` (Sluice’s `preserve_mtime`, rclone) and its sha256 the stored `sluice-sha256`. `after_success: {move_to: dir}` moves objects to `dir/<path>` in the same bucket (dir is a key prefix from the bucket root).',
  config,
  examples: [
    {
      title: 'Files directly under incoming/, deleted once delivered',
      yaml: 'bucket: cdr-bucket\nprefix: incoming/\nrecursive: false\nafter_success: delete\n',
    },
    {
      title: 'An S3-compatible store with explicit credentials',
      yaml: 'bucket: exports\nendpoint: http://minio.internal:9000\naccess_key_id: ${MINIO_KEY}\nsecret_access_key: ${MINIO_SECRET}\nprefixes: [daily/, weekly/]\n',
    },
  ],
  validate(cfg) {
    validateS3Connection(cfg);
    validatePrefixes(cfg);
  },
  async create(cfg, ctx) {
    s3Source.validate!(cfg);
    const conn = await connectS3(cfg);
    // Tidy-up deletes of items finishing at the same time share DeleteObjects requests.
    const deletes = new DeleteBatcher(deleteTransport(conn));
    const backend: SourceBackend = {
      location: (key) => s3Location(conn.bucket, key),
      listPage: (prefix, recursive, token, signal) =>
        listObjectsPage(conn, prefix, { recursive, pageSize: cfg.page_size, token, signal }),
      describe: cfg.read_metadata
        ? (objects, signal) => withStoredMetadata(conn, objects, signal)
        : undefined,
      read: (key, { signal, etag }) =>
        getObjectStream(conn, key, { signal, ifMatch: etag === undefined ? undefined : quotedEtag(etag) }),
      isNotFound,
      origin: (key) => ({
        kind: S3_ORIGIN_KIND,
        endpoint: conn.endpointId,
        location: { bucket: conn.bucket, key },
      }),
      keyFromOrigin: (origin) =>
        origin?.kind === S3_ORIGIN_KIND &&
        origin.endpoint === conn.endpointId &&
        origin.location.bucket === conn.bucket
          ? origin.location.key
          : undefined,
      deleteVersion: (key, version) => deleteObjectVersion(conn, key, version, deletes),
      copyVersion: (key, version, toKey) => copyObjectVersion(conn, key, version, toKey),
      error: (what, err) => s3Error('SLUICE_E_SOURCE', what, err),
      checks: s3CheckTarget(conn, cfg.region),
    };
    return {
      ...createObjectStoreSource(backend, {
        sourceName: cfg.name ?? 's3',
        prefixes: cfg.prefixes ?? [cfg.prefix],
        match: cfg.match,
        recursive: cfg.recursive,
        log: ctx.log,
      }),
      isRetryable: isS3Retryable,
      async close() {
        await deletes.close();
        conn.client.destroy();
      },
    };
  },
});
