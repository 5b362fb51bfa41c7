/**
 * Fencing a worker's item by its BullMQ job lock. A worker paused past the stall interval (a
 * long GC, a frozen VM) loses its job: the stalled checker hands it to another worker, which
 * delivers the item and tidies the source. When the first one resumes, its item must not commit
 * a second copy nor delete a newer file of the same name: the runtime awaits `check()` right
 * before every commit and tidy-up, and the worker aborts the item's reads when BullMQ reports
 * the lock could not be renewed.
 */
import type { Readable } from 'node:stream';
import type { Job } from 'bullmq';
import { SluiceError } from '../errors.js';
import type { ListedItem } from '../runtime/runner.js';

export class JobFence {
  private readonly lost = new AbortController();

  constructor(
    private readonly job: Job,
    /** The token this worker took the job with: BullMQ's lock key holds it while the job is ours. */
    private readonly token: string,
    private readonly lockMs: number,
  ) {}

  /** Aborted (with a SLUICE_E_FENCED reason) once the job is known to be lost. */
  get signal(): AbortSignal {
    return this.lost.signal;
  }

  get fenced(): boolean {
    return this.lost.signal.aborted;
  }

  /**
   * Throws SLUICE_E_FENCED unless this worker still holds the job. One round trip: BullMQ's
   * extendLock script compares the lock with our token and, when it matches, renews it for a
   * full lock duration, so the step that follows (a commit, a tidy-up) runs inside a lock that
   * cannot expire for that long, rather than in whatever was left of it.
   */
  async check(): Promise<void> {
    this.lost.signal.throwIfAborted();
    if ((await this.job.extendLock(this.token, this.lockMs)) !== 1) {
      this.markLost();
      this.lost.signal.throwIfAborted();
    }
  }

  /** Aborts the item's work: its job belongs to another worker now (or to nobody, stalled). */
  private markLost(): void {
    if (this.fenced) return;
    this.lost.abort(
      new SluiceError(
        'SLUICE_E_FENCED',
        `this worker lost the lock of job ${this.job.id} (paused or cut off from Redis longer than the ${this.lockMs} ms lock); another worker redoes the item`,
        { retryable: false },
      ),
    );
  }

  /**
   * The listed item with its reads tied to the fence: a stream opened for it is destroyed as
   * soon as the job is lost, so the item stops at its next chunk instead of streaming the rest
   * of the file into a commit the fence would refuse anyway.
   */
  guard(listed: ListedItem): ListedItem {
    const { signal } = this;
    const open = listed.item.open.bind(listed.item);
    const guarded = async (runtimeSignal?: AbortSignal): Promise<Readable> => {
      signal.throwIfAborted();
      // Not handed to the source: a source may end the stream with a plain AbortError, which
      // the runtime would take for an item failure rather than a lost job.
      const stream = await open(runtimeSignal);
      const stop = () => stream.destroy(signal.reason as Error);
      if (signal.aborted) stop();
      else {
        signal.addEventListener('abort', stop, { once: true });
        stream.once('close', () => signal.removeEventListener('abort', stop));
      }
      return stream;
    };
    return { ...listed, item: { ...listed.item, open: guarded } };
  }
}
