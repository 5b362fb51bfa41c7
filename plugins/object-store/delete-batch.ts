/**
 * Batched tidy-up deletes for the object-store sources (S3 DeleteObjects, Azure Blob Batch): the
 * deletes asked for while one batch request is on its way go out together in the next one, each
 * key with its listed etag as condition, and each caller learns its own key's outcome.
 *
 * Nothing about what is deleted changes: a caller asks only for a key it may delete (the
 * connector's version check, if it needs one, comes before), and only the request that carries
 * it is shared. A lone delete is sent at once (no timer): batches form only while a request is in
 * flight, so they grow with the load and cost no latency when there is none.
 */
import { SluiceError } from '../../core/errors.js';

/** How a batcher reaches the service (what a connector provides). */
export interface BatchDeleteTransport {
  /** The service's name for one batch request, for messages (`DeleteObjects`, `blob batch`). */
  readonly requestName: string;
  /**
   * One batch request. The answer, per key: `null` when it is deleted (or already gone: gone is
   * what was asked), else the error to give its caller. A key the answer leaves out is in doubt.
   */
  deleteMany(objects: { key: string; etag?: string }[]): Promise<Map<string, Error | null>>;
  /** One conditional delete on its own, for what cannot go in a batch. */
  deleteOne(key: string, etag: string | undefined): Promise<void>;
  /** Display form of a key, for messages. */
  location(key: string): string;
  /** True when a whole request's error says the service does not do batches (then: one per key, for good). */
  unsupported(err: unknown): boolean;
  /** False for a key that must not go in a batch (sent on its own); default: every key may. */
  batchable?(key: string): boolean;
}

export interface BatchDeleterOptions {
  /** The most keys one request may carry. */
  maxBatch: number;
  /** Requests on their way at once (default 4). */
  maxInFlight?: number;
}

interface Pending {
  key: string;
  etag?: string;
  resolve(): void;
  reject(err: unknown): void;
}

export class BatchDeleter {
  private readonly queue: Pending[] = [];
  private readonly running = new Set<Promise<void>>();
  private batching = true;
  private closed = false;
  private scheduled = false;

  constructor(
    private readonly transport: BatchDeleteTransport,
    private readonly options: BatchDeleterOptions,
  ) {}

  /** Deletes `key` if it is still `etag` (where the service honours the condition). */
  delete(key: string, etag: string | undefined): Promise<void> {
    if (this.closed) {
      return Promise.reject(
        new SluiceError(
          'SLUICE_E_SOURCE',
          `${this.transport.location(key)} was not deleted: the source is closed`,
          { retryable: false },
        ),
      );
    }
    if (!this.batching || this.transport.batchable?.(key) === false) {
      return this.transport.deleteOne(key, etag);
    }
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
    const { maxBatch } = this.options;
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
    let answer: Map<string, Error | null>;
    try {
      answer = await this.transport.deleteMany(batch.map(({ key, etag }) => ({ key, etag })));
    } catch (err) {
      if (this.transport.unsupported(err)) {
        // The service does not take batches: each key on its own, from now on.
        this.batching = false;
        await Promise.all(
          batch.map((p) => this.transport.deleteOne(p.key, p.etag).then(p.resolve, p.reject)),
        );
        return;
      }
      for (const p of batch) p.reject(err);
      return;
    }
    for (const p of batch) {
      const outcome = answer.get(p.key);
      if (outcome === null) p.resolve();
      else if (outcome !== undefined) p.reject(outcome);
      else {
        // The service must answer for every key: one it did not is in doubt.
        p.reject(
          new SluiceError(
            'SLUICE_E_SOURCE',
            `${this.transport.location(p.key)} may not have been deleted: the service's ${this.transport.requestName} answer does not mention it`,
            { retryable: true },
          ),
        );
      }
    }
  }
}
