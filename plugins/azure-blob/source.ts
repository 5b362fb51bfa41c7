/** `azure_blob` source: lists blobs under a prefix of a container, lazily, page by page. */
import { Type } from '@sinclair/typebox';
import { definePlugin } from '../../core/plugin-api.js';
import { sourceCommon } from '../../core/schema-fragments.js';
import { quotedEtag } from '../object-store/keys.js';
import { prefixFields, validatePrefixes } from '../object-store/prefixes.js';
import { createObjectStoreSource, type SourceBackend } from '../object-store/source.js';
import {
  AZURE_ORIGIN_KIND,
  azureCheckTarget,
  azureConnectionFields,
  azureError,
  azureLocation,
  connectAzure,
  copyBlobVersion,
  downloadBlob,
  isAzureRetryable,
  isBlobNotFound,
  listBlobsPage,
  validateAzureConnection,
} from './client.js';
import { blobDeleteBatcher } from './delete-batch.js';

const config = Type.Object(
  {
    ...azureConnectionFields,
    ...prefixFields('name', 'exports/'),
    recursive: Type.Boolean({
      default: true,
      description: 'List blobs at any depth below the prefix; false: only blobs directly under it.',
    }),
    page_size: Type.Integer({
      minimum: 1,
      maximum: 5000,
      default: 5000,
      description: 'Blobs per listing page.',
    }),
    ...sourceCommon,
  },
  { additionalProperties: false },
);

export const azureBlobSource = definePlugin({
  name: 'azure_blob',
  kind: 'source',
  summary: 'Lists and reads blobs under a prefix of an Azure Storage container.',
  description:
    'Listing is paginated and lazy. Item version (`identity: version`) is the ETag of the blob alone (every write gives a new one, so a re-upload of the same bytes is taken again; `identity: content` or `name` skip it); reads are pinned to the listed etag, so a replaced blob is never processed under the old identity. A name that is not a plain relative path below the prefix (`a//b`, `./a`, `../a`, a backslash, a control character) is reported as a failed item and left in place, never read or tidied under another name. `after_success` deletes or moves only the listed version (If-Match); a replaced blob is left for the next pass. The listing includes metadata at no extra request: the item mtime is the stored metadata `mtime` (Sluice’s `preserve_mtime`, rclone) when present, else Last-Modified; its checksums are the blob’s Content-MD5 as `md5` (set by single-shot uploads and tools that send it; Sluice’s block uploads have none) and the stored `sluice_sha256` as `sha256`, for `checksum: {expect: metadata}`. `after_success: {move_to: dir}` copies the blob server-side to `dir/<path>` in the same container, then deletes it.',
  config,
  examples: [
    {
      title: 'Blobs under exports/, moved to done/ once delivered',
      yaml: 'connection_string: ${AZURE_STORAGE_CONNECTION_STRING}\ncontainer: partner\nprefix: exports/\nafter_success:\n  move_to: done/\n',
    },
  ],
  validate(cfg) {
    validateAzureConnection(cfg);
    validatePrefixes(cfg);
  },
  async create(cfg, ctx) {
    azureBlobSource.validate!(cfg);
    const conn = await connectAzure(cfg);
    const container = conn.container.containerName;
    // Tidy-up deletes of items finishing at the same time share Blob Batch requests.
    const deletes = blobDeleteBatcher(conn);
    const backend: SourceBackend = {
      location: (blob) => azureLocation(conn, blob),
      listPage: (prefix, recursive, token, signal) =>
        listBlobsPage(conn, prefix, { recursive, pageSize: cfg.page_size, token, signal }),
      read: (blob, { signal, etag }) =>
        downloadBlob(conn, blob, { signal, ifMatch: etag === undefined ? undefined : quotedEtag(etag) }),
      isNotFound: isBlobNotFound,
      origin: (blob) => ({
        kind: AZURE_ORIGIN_KIND,
        endpoint: conn.endpointId,
        location: { container, blob },
      }),
      keyFromOrigin: (origin) =>
        origin?.kind === AZURE_ORIGIN_KIND &&
        origin.endpoint === conn.endpointId &&
        origin.location.container === container
          ? origin.location.blob
          : undefined,
      deleteVersion: (blob, version) => deletes.delete(blob, version.etag),
      copyVersion: (blob, version, toBlob) => copyBlobVersion(conn, blob, version, toBlob),
      error: (what, err) => azureError('SLUICE_E_SOURCE', what, err),
      checks: azureCheckTarget(conn),
    };
    return {
      ...createObjectStoreSource(backend, {
        sourceName: cfg.name ?? 'azure_blob',
        prefixes: cfg.prefixes ?? [cfg.prefix],
        match: cfg.match,
        recursive: cfg.recursive,
        log: ctx.log,
      }),
      isRetryable: isAzureRetryable,
      close: () => deletes.close(),
    };
  },
});
