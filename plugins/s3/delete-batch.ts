/**
 * Batched tidy-up deletes for the s3 source: the deletes asked for while one DeleteObjects
 * request is on its way go out together in the next one (up to 1,000 keys), each key with its
 * listed ETag as condition, and each caller learns its own key's outcome.
 *
 * Nothing about what is deleted changes: a caller asks only for a key it has just checked (the
 * HeadObject of `deleteObjectVersion`), and only the request that carries it is shared. A lone
 * delete is sent at once (no timer): batches form only while a request is in flight, so they grow
 * with the load and cost no latency when there is none.
 */
import type { _Error as BatchError, DeletedObject } from '@aws-sdk/client-s3';
import { SluiceError } from '../../core/errors.js';
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

interface Pending {
  key: string;
  etag?: string;
  resolve(): void;
  reject(err: unknown): void;
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

export class DeleteBatcher {
  private readonly queue: Pending[] = [];
  private readonly running = new Set<Promise<void>>();
  private batching = true;
  private closed = false;
  private scheduled = false;

  constructor(
    private readonly transport: DeleteTransport,
    private readonly options: { maxBatch?: number; maxInFlight?: number } = {},
  ) {}

  /** Deletes `key` if it is still `etag` (where the service honours the condition). */
  delete(key: string, etag: string | undefined): Promise<void> {
    if (this.closed) {
      return Promise.reject(
        new SluiceError(
          'SLUICE_E_SOURCE',
          `${this.transport.location(key)} was not deleted: the source is closed`,
          {
            retryable: false,
          },
        ),
      );
    }
    if (!this.batching || !batchableKey(key)) return this.transport.deleteOne(key, etag);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ key, etag, resolve, reject });
      this.schedule();
    });
  }

  /** Sends what is waiting and waits for every request on its way; later deletes are refused. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0 || this.running.size > 0) {
      this.pump(true);
      await Promise.allSettled([...this.running]);
    }
  }

  /** Callers of the same turn of the event loop share the first request. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump(false);
    });
  }

  /**
   * Starts requests: one whenever none is on its way, more only for full batches (or at close);
   * deletes asked for meanwhile wait for the next.
   */
  private pump(all: boolean): void {
    const maxBatch = this.options.maxBatch ?? MAX_DELETE_BATCH;
    const maxInFlight = this.options.maxInFlight ?? 4;
    while (
      this.queue.length > 0 &&
      (this.running.size === 0 || all || this.queue.length >= maxBatch) &&
      this.running.size < maxInFlight
    ) {
      const batch = this.take(maxBatch);
      const request = this.send(batch).finally(() => {
        this.running.delete(request);
        if (this.queue.length > 0) this.pump(this.closed);
      });
      this.running.add(request);
    }
  }

  /** Up to `max` waiting deletes of distinct keys (a repeated key waits for the next batch). */
  private take(max: number): Pending[] {
    const keys = new Set<string>();
    const batch: Pending[] = [];
    for (let i = 0; i < this.queue.length && batch.length < max; ) {
      const entry = this.queue[i];
      if (keys.has(entry.key)) {
        i++;
        continue;
      }
      keys.add(entry.key);
      batch.push(entry);
      this.queue.splice(i, 1);
    }
    return batch;
  }

  private async send(batch: Pending[]): Promise<void> {
    let answer: Awaited<ReturnType<DeleteTransport['deleteMany']>>;
    try {
      answer = await this.transport.deleteMany(batch.map(({ key, etag }) => ({ key, etag })));
    } catch (err) {
      if (unsupported(err)) {
        // The service has no multi-object delete: each key on its own, from now on.
        this.batching = false;
        await Promise.all(
          batch.map((p) => this.transport.deleteOne(p.key, p.etag).then(p.resolve, p.reject)),
        );
        return;
      }
      for (const p of batch) p.reject(err);
      return;
    }
    const deleted = new Set(answer.deleted.map((d) => d.Key));
    const errors = new Map(answer.errors.map((e) => [e.Key, e]));
    for (const p of batch) {
      const error = errors.get(p.key);
      if (error !== undefined) {
        const err = keyError(this.transport, p.key, error);
        if (err === undefined) p.resolve();
        else p.reject(err);
      } else if (deleted.has(p.key)) {
        p.resolve();
      } else {
        // Asked without Quiet, the service must name every key: one it did not is in doubt.
        p.reject(
          new SluiceError(
            'SLUICE_E_SOURCE',
            `${this.transport.location(p.key)} may not have been deleted: the service's DeleteObjects answer does not mention it`,
            { retryable: true },
          ),
        );
      }
    }
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
