/**
 * A read stream over one SFTP file that keeps many READ requests outstanding.
 *
 * ssh2's `createReadStream` sends the next READ only when the previous one has answered, so a
 * file arrives at one request per round trip (about 5 MB/s at 50 ms). OpenSSH's `sftp` and
 * rclone keep 64 requests of 32 KiB in flight; this stream does the same: requests go out in
 * file order, their answers are held in order slots and pushed as the head slot fills.
 */
import { Readable } from 'node:stream';
import type { SFTPWrapper, Stats } from 'ssh2';

/** OpenSSH's sftp default (`-B 32768`): small enough for every server's maximum READ length. */
export const SFTP_READ_CHUNK = 32 * 1024;
/** OpenSSH's sftp default (`-R 64`): 2 MiB outstanding, the SSH channel window ssh2 opens. */
export const SFTP_REQUESTS_IN_FLIGHT = 64;
/**
 * How far a read whose consumer waits on the server may grow its requests in flight, unless
 * configured (`requests_in_flight_max`): 4×, to at most 128 (4 MiB; rclone keeps 4 streams of
 * 64 requests for a big file). 256 measured 1.42× rclone over 50 ms but raised the peak memory
 * of a 4 GiB sftp → s3 copy by ~50 MiB; `requestsInFlight` itself when that is already more.
 */
export function grownRequestsInFlight(requestsInFlight: number, configured?: number): number {
  return Math.max(requestsInFlight, configured ?? Math.min(4 * requestsInFlight, 128));
}

/** The part of an ssh2 SFTP session the stream uses. */
export type SftpFileOps = Pick<SFTPWrapper, 'open' | 'read' | 'close' | 'stat'>;

export interface PipelinedReadOptions {
  /** READ requests outstanding at once at first; also the most chunks held for a slow consumer. */
  requestsInFlight: number;
  /**
   * The most they may grow to while the consumer waits on the server (the head request not
   * answered, every allowed one outstanding): over a link with latency the requests, not the
   * consumer, decide throughput. Never for a consumer that holds the stream back. Default:
   * `requestsInFlight` (no growth).
   */
  maxRequestsInFlight?: number;
  chunkSize?: number;
  highWaterMark?: number;
  /** Turns an SFTP error into the stream's error, naming operation and file. */
  describeError: (operation: 'open' | 'read', err: unknown) => Error;
  /**
   * Calls `listener` when the SSH session dies: ssh2 never answers a request sent after that,
   * so the handle's close must not be waited for. Returns the function that unregisters it.
   */
  onSessionLost: (listener: (err: Error) => void) => () => void;
}

/** One READ request, in file order; settled once answered. */
interface Slot {
  offset: number;
  length: number;
  settled: boolean;
  data?: Buffer;
  /** The server answered "end of file" at `offset`. */
  eof?: boolean;
}

export function pipelinedRead(sftp: SftpFileOps, path: string, options: PipelinedReadOptions): Readable {
  return new PipelinedRead(sftp, path, options);
}

class PipelinedRead extends Readable {
  private handle?: Buffer;
  private opening = true;
  /** Requests not yet delivered, in file order (answered or not). */
  private readonly slots: Slot[] = [];
  /** Offset of the next new request. */
  private next = 0;
  /** A request answered end of file: no new offsets are asked for. */
  private endSeen = false;
  /** The consumer's buffer is full: hold answered chunks until it reads again. */
  private paused = false;
  /**
   * The size `stat` gave when the file was opened: requests stop one past it (the end-of-file
   * probe), so a small file costs a few requests, not 64. Dropped when bytes come from beyond
   * it (the file grew); the runtime's listed-size check reports such a file.
   */
  private sizeHint?: number;
  private sessionLost = false;
  /** End of file was pushed: answers still arriving for later offsets are dropped. */
  private ended = false;
  private pendingDestroy?: () => void;
  private readonly chunk: number;
  private readonly offLost: () => void;
  /** Requests allowed outstanding now: from requestsInFlight up to maxRequestsInFlight. */
  private limit: number;
  /** Chunks pushed since `limit` last grew: it grows only after the consumer took a whole round. */
  private pushedSinceGrowth = 0;

  constructor(
    private readonly sftp: SftpFileOps,
    private readonly path: string,
    private readonly options: PipelinedReadOptions,
  ) {
    super({ highWaterMark: options.highWaterMark });
    this.chunk = options.chunkSize ?? SFTP_READ_CHUNK;
    this.limit = options.requestsInFlight;
    this.offLost = options.onSessionLost((err) => {
      this.sessionLost = true;
      this.destroy(options.describeError('read', err));
      this.pendingDestroy?.();
    });
    this.open();
  }

  /** Sends OPEN and STAT together: the size arrives right behind the handle, no extra round trip. */
  private open(): void {
    let waiting = 2;
    let openError: unknown;
    const both = () => {
      if (--waiting > 0) return;
      this.opening = false;
      if (this.handle && this.destroyed) this.closeHandle();
      else if (openError !== undefined) {
        if (this.destroyed) this.pendingDestroy?.();
        else this.destroy(this.options.describeError('open', openError));
      } else this.fill();
    };
    this.sftp.open(this.path, 'r', (err, handle) => {
      if (err) openError = err;
      else this.handle = handle;
      both();
    });
    this.sftp.stat(this.path, (err: Error | undefined, stats: Stats) => {
      if (!err && stats.isFile()) this.sizeHint = stats.size;
      both();
    });
  }

  /** Whether more of the file may still be asked for. */
  private moreToAsk(): boolean {
    return !this.endSeen && (this.sizeHint === undefined || this.next <= this.sizeHint);
  }

  /** Issues requests until `limit` chunks are outstanding or held. */
  private fill(): void {
    if (!this.handle || this.destroyed) return;
    while (this.slots.length < this.limit && this.moreToAsk()) {
      this.request({ offset: this.next, length: this.chunk, settled: false });
      this.next += this.chunk;
    }
  }

  private request(slot: Slot, at = this.slots.length): void {
    this.slots.splice(at, 0, slot);
    const buffer = Buffer.allocUnsafe(slot.length);
    this.sftp.read(this.handle!, buffer, 0, slot.length, slot.offset, (err, bytesRead, data) => {
      if (this.destroyed || this.ended) return;
      if (err) {
        this.destroy(this.options.describeError('read', err));
        return;
      }
      if (bytesRead === 0) {
        slot.eof = true;
        this.endSeen = true;
      } else {
        slot.data = bytesRead === data.length ? data : data.subarray(0, bytesRead);
        if (this.sizeHint !== undefined && slot.offset + bytesRead > this.sizeHint) this.sizeHint = undefined;
        if (bytesRead < slot.length) {
          // A short answer (a server may cap READ lengths): ask for the rest before what follows.
          const rest = { offset: slot.offset + bytesRead, length: slot.length - bytesRead, settled: false };
          this.request(rest, this.slots.indexOf(slot) + 1);
        }
      }
      slot.settled = true;
      this.deliver();
      this.fill();
    });
  }

  /** Pushes answered chunks from the head, in file order, while the consumer takes them. */
  private deliver(): void {
    while (!this.paused && this.slots[0]?.settled) {
      const slot = this.slots.shift()!;
      if (slot.eof) {
        // Answers still due for later offsets are ignored; the handle's close waits for them.
        this.slots.length = 0;
        this.ended = true;
        this.push(null);
        return;
      }
      this.pushedSinceGrowth++;
      if (!this.push(slot.data)) this.paused = true;
    }
  }

  override _read(): void {
    this.paused = false;
    this.deliver();
    // The consumer took a whole round of `limit` chunks and waits again with every allowed
    // request out: the server's answers are the bottleneck (a round trip per `limit` chunks),
    // so more go out at once, up to the cap. A consumer slower than the server never waits.
    const max = this.options.maxRequestsInFlight ?? this.options.requestsInFlight;
    if (
      this.limit < max &&
      !this.paused &&
      this.pushedSinceGrowth >= this.limit &&
      this.slots.length >= this.limit &&
      this.slots[0]?.settled === false &&
      this.moreToAsk()
    ) {
      this.limit = Math.min(max, this.limit * 2);
      this.pushedSinceGrowth = 0;
    }
    this.fill();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.slots.length = 0;
    const done = () => {
      this.pendingDestroy = undefined;
      this.offLost();
      callback(err);
    };
    if (this.sessionLost || (!this.opening && !this.handle)) {
      done();
      return;
    }
    this.pendingDestroy = done;
    if (!this.opening) this.closeHandle();
  }

  /**
   * CLOSE goes behind any READs still outstanding and the server answers in order, so once it
   * is answered no request of this stream is left on the session.
   */
  private closeHandle(): void {
    const handle = this.handle!;
    this.handle = undefined;
    this.sftp.close(handle, () => this.pendingDestroy?.());
  }
}
