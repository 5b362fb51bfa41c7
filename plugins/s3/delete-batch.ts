/**
 * Batched tidy-up deletes for the s3 source: DeleteObjects requests of up to 1,000 keys, each with
 * its listed ETag, through the object stores' `BatchDeleter` (which see: batches form only while
 * a request is on its way, each caller learns its own key's outcome).
 *
 * Nothing about what is deleted changes: a caller asks only for a key it has just checked (the
 * HeadObject of `deleteObjectVersion`), and only the request that carries it is shared.
 */
import type { _Error as BatchError, DeletedObject } from '@aws-sdk/client-s3';
import { BatchDeleter } from '../object-store/delete-batch.js';
import { quotedEtag } from '../object-store/keys.js';
import { changedError } from '../object-store/source.js';

/** The most keys one DeleteObjects request may carry. */
export const MAX_DELETE_BATCH = 1000;

/** The client calls the batcher needs (a subset of the S3 connection). */
export interface DeleteTransport {
  /** One DeleteObjects request; what the service answered for each key. */
  deleteMany(objects: { key: string; etag?: string }[]): Promise<{
    deleted: DeletedObject[];
    errors: BatchError[];
  }>;
  /** One DeleteObject request (If-Match on `etag`), for what cannot go in a batch. */
  deleteOne(key: string, etag: string | undefined): Promise<void>;
  /** `s3://bucket/key`, for messages. */
  location(key: string): string;
}

/** Half of a surrogate pair without the other half (no UTF-8 form). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * True when `key` survives an XML round trip through any reasonable parser unchanged. Keys with
 * control characters (which XML 1.0 cannot carry, or normalises: `\r`), surrounding whitespace
 * (parsers that trim, s3rver's among them), a number's spelling (s3rver reads `<Key>0012</Key>`
 * as 12) or ill-formed UTF-16 are deleted one by one, by URL, as before.
 */
export function batchableKey(key: string): boolean {
  return (
    key !== '' &&
    key.trim() === key &&
    !/[\u0000-\u001f\u007f-\u009f\ufffe\uffff]/.test(key) &&
    Number.isNaN(Number(key)) &&
    !LONE_SURROGATE.test(key)
  );
}

/** Codes that say the service does not do DeleteObjects at all (then: one request per key). */
const UNSUPPORTED = new Set(['NotImplemented', 'MethodNotAllowed']);

function unsupported(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  return (e?.name !== undefined && UNSUPPORTED.has(e.name)) || status === 501 || status === 405;
}

/** A key's entry in the answer's Errors, as an error the plugin's classification understands. */
function keyError(transport: DeleteTransport, key: string, entry: BatchError): Error | undefined {
  const code = entry.Code ?? 'Error';
  // AWS answers a conditional delete of a key that is gone with NoSuchKey: gone is what was asked.
  if (code === 'NoSuchKey' || code === 'NotFound') return undefined;
  if (code === 'PreconditionFailed') {
    return changedError(transport.location(key), 'deleted', 'its ETag no longer matches');
  }
  const err = new Error(entry.Message ? entry.Message : code);
  // `name` is what isS3Retryable and s3Reason read; a conflicting concurrent write (409) and
  // the service's own trouble are worth another attempt, which checks the version again.
  return Object.assign(err, {
    name: code,
    $retryable: code === 'ConditionalRequestConflict' || code === 'SlowDown' || code === 'InternalError',
  });
}

/** The s3 source's batcher: DeleteObjects answers read key by key. */
export class DeleteBatcher extends BatchDeleter {
  constructor(transport: DeleteTransport, options: { maxBatch?: number; maxInFlight?: number } = {}) {
    super(
      {
        requestName: 'DeleteObjects',
        async deleteMany(objects) {
          const answer = await transport.deleteMany(objects);
          const outcomes = new Map<string, Error | null>();
          for (const d of answer.deleted) if (d.Key !== undefined) outcomes.set(d.Key, null);
          for (const e of answer.errors) {
            if (e.Key !== undefined) outcomes.set(e.Key, keyError(transport, e.Key, e) ?? null);
          }
          return outcomes;
        },
        deleteOne: (key, etag) => transport.deleteOne(key, etag),
        location: (key) => transport.location(key),
        unsupported,
        batchable: batchableKey,
      },
      { maxBatch: options.maxBatch ?? MAX_DELETE_BATCH, maxInFlight: options.maxInFlight },
    );
  }
}

/** The DeleteObjects request a batch becomes (exported for tests of its shape). */
export function deleteObjectsInput(bucket: string, objects: { key: string; etag?: string }[]) {
  return {
    Bucket: bucket,
    Delete: {
      Objects: objects.map(({ key, etag }) => ({
        Key: key,
        ...(etag !== undefined ? { ETag: quotedEtag(etag) } : {}),
      })),
      Quiet: false,
    },
    // Content-MD5 rather than the SDK's default CRC32: MinIO, older Ceph and others refuse a
    // DeleteObjects without it; AWS takes either.
    ChecksumAlgorithm: 'MD5' as const,
  };
}
