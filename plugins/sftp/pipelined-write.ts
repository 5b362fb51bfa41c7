/**
 * A write stream into one SFTP file that keeps many WRITE requests outstanding.
 *
 * ssh2's `createWriteStream` sends a chunk and takes the next only once it is acknowledged
 * (plus whatever piled up meanwhile), about 3 MB/s at a 50 ms round trip. This stream sends
 * each chunk as 32 KiB WRITEs at explicit offsets and accepts more while fewer than
 * `requestsInFlight` are unanswered; the handle's CLOSE goes out after the last answer, and
 * its error (a server that flushes on close) fails the upload.
 *
 * One SSH channel carries at most the server's window of unacknowledged bytes: OpenSSH's is
 * 2 MiB, topped up once half of it is used, so one channel moves about 1.5 MiB a round trip
 * (30 MB/s over 50 ms) however many requests are out. A write that has sent two rounds and
 * still waits on the server asks for a second lane (`extraLane`: another SFTP channel on the
 * same connection), opens the file there for writing (no create, no truncate) and spreads its
 * WRITEs over both, each lane with its own `requestsInFlight`.
 */
import { Writable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';
import { SFTP_READ_CHUNK } from './pipelined-read.js';

export type SftpWriteOps = Pick<SFTPWrapper, 'open' | 'write' | 'close'>;

/** Channels an upload spreads over by default (the sink's `upload_channels`). */
export const SFTP_UPLOAD_CHANNELS = 2;

/** SSH_FXF_WRITE alone: the file the first lane created, opened again without truncating it. */
const OPEN_WRITE_ONLY = 0x02;

export interface PipelinedWriteOptions {
  requestsInFlight: number;
  chunkSize?: number;
  highWaterMark?: number;
  describeError: (operation: 'open' | 'write' | 'close', err: unknown) => Error;
  /** As for pipelinedRead: ssh2 never answers a request on a dead session. */
  onSessionLost: (listener: (err: Error) => void) => () => void;
  /**
   * Another SFTP channel to the same server, the `index`th (1, 2, …; undefined when there is
   * none to have), asked for when the stream still waits on the server after two rounds of
   * WRITEs on the lanes it has.
   */
  extraLane?: (index: number) => Promise<SftpWriteOps | undefined>;
  /** Most lanes (channels) one file is written over; default 1 (no `extraLane`). */
  maxLanes?: number;
}

/** Creates or truncates `path` and writes the stream's bytes into it. */
export function pipelinedWrite(sftp: SftpWriteOps, path: string, options: PipelinedWriteOptions): Writable {
  return new PipelinedWrite(sftp, path, options);
}

/** One channel's handle on the file and its unanswered WRITEs. */
interface Lane {
  ops: SftpWriteOps;
  handle?: Buffer;
  outstanding: number;
}

class PipelinedWrite extends Writable {
  private readonly lanes: Lane[];
  private position = 0;
  /** WRITEs unanswered on every lane together. */
  private outstanding = 0;
  /** WRITEs sent so far, to tell a big write from a small one. */
  private sent = 0;
  /** `sent` when the last lane was asked for. */
  private sentAtLastLane = 0;
  /** Lanes asked for, the first one included (each is asked for once). */
  private lanesAsked = 1;
  /** A lane's OPEN on its way: `_final` waits for it, so that its handle gets closed. */
  private laneOpening?: Promise<void>;
  /** The callback of the last `_write`, held while the window is full. */
  private held?: () => void;
  /** `_final`, waiting for the last answers. */
  private whenIdle?: () => void;
  private sessionLost = false;
  /** What must run when the session dies while the stream waits for the server. */
  private pending?: (err: Error) => void;
  private readonly chunk: number;
  private readonly offLost: () => void;

  constructor(
    sftp: SftpWriteOps,
    private readonly path: string,
    private readonly options: PipelinedWriteOptions,
  ) {
    super({ highWaterMark: options.highWaterMark });
    this.lanes = [{ ops: sftp, outstanding: 0 }];
    this.chunk = options.chunkSize ?? SFTP_READ_CHUNK;
    this.offLost = options.onSessionLost((err) => {
      this.sessionLost = true;
      const failure = options.describeError('write', err);
      const pending = this.pending;
      this.pending = undefined;
      if (pending) pending(failure);
      else this.destroy(failure);
    });
  }

  override _construct(callback: (err?: Error | null) => void): void {
    this.pending = callback;
    this.lanes[0].ops.open(this.path, 'w', (err, handle) => {
      if (this.pending !== callback) return;
      this.pending = undefined;
      if (err) callback(this.options.describeError('open', err));
      else {
        this.lanes[0].handle = handle;
        callback();
      }
    });
  }

  /** WRITEs allowed unanswered now: `requestsInFlight` on each open lane. */
  private get limit(): number {
    return this.options.requestsInFlight * this.lanes.filter((lane) => lane.handle).length;
  }

  override _write(data: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    for (let offset = 0; offset < data.length; offset += this.chunk) {
      this.send(data.subarray(offset, Math.min(offset + this.chunk, data.length)));
    }
    if (this.outstanding < this.limit) {
      callback();
      return;
    }
    this.held = callback;
    // Two rounds sent and still waiting on the server: the channel's window (or the link) is the
    // bound, and another channel has a window of its own.
    const { extraLane, maxLanes = 1 } = this.options;
    if (
      extraLane &&
      this.laneOpening === undefined &&
      this.lanesAsked < maxLanes &&
      this.sent - this.sentAtLastLane >= 2 * this.limit
    ) {
      this.sentAtLastLane = this.sent;
      const index = this.lanesAsked++;
      this.laneOpening = this.openLane(() => extraLane(index))
        .catch((err: unknown) => {
          this.destroy(this.options.describeError('open', err));
        })
        .finally(() => {
          this.laneOpening = undefined;
        });
    }
  }

  /** Opens the file on another channel; any failure leaves the write on the lanes it has. */
  private async openLane(extraLane: () => Promise<SftpWriteOps | undefined>): Promise<void> {
    const ops = await extraLane().catch(() => undefined);
    if (!ops || this.destroyed || this.sessionLost) return;
    const handle = await new Promise<Buffer | undefined>((resolve) => {
      try {
        ops.open(this.path, OPEN_WRITE_ONLY, (err, opened) => resolve(err ? undefined : opened));
      } catch {
        resolve(undefined);
      }
    });
    if (!handle) return;
    // Destroyed while the OPEN was out: `_destroy` waits for this and closes it with the others.
    this.lanes.push({ ops, handle, outstanding: 0 });
    if (!this.destroyed) this.release();
  }

  private send(piece: Buffer): void {
    const at = this.position;
    this.position += piece.length;
    let lane = this.lanes[0];
    for (const other of this.lanes) if (other.handle && other.outstanding < lane.outstanding) lane = other;
    lane.outstanding++;
    this.outstanding++;
    this.sent++;
    lane.ops.write(lane.handle!, piece, 0, piece.length, at, (err) => {
      lane.outstanding--;
      this.outstanding--;
      if (this.destroyed) return;
      if (err) {
        this.destroy(this.options.describeError('write', err));
        return;
      }
      this.release();
      if (this.outstanding === 0) this.whenIdle?.();
    });
  }

  /** Lets the held `_write` go on once there is room. */
  private release(): void {
    if (this.held && this.outstanding < this.limit) {
      const held = this.held;
      this.held = undefined;
      held();
    }
  }

  override _final(callback: (err?: Error | null) => void): void {
    const closeAll = () => {
      this.whenIdle = undefined;
      this.pending = callback;
      this.closeLanes((err) => {
        if (this.pending !== callback) return;
        this.pending = undefined;
        callback(err ? this.options.describeError('close', err) : undefined);
      });
    };
    const whenIdle = () => {
      if (this.destroyed) return;
      if (this.outstanding === 0) closeAll();
      else this.whenIdle = closeAll;
    };
    // A lane still opening is waited for, so that its handle is closed with the others.
    // (`laneOpening` never rejects: a failing open destroys the stream.)
    if (this.laneOpening) void this.laneOpening.then(whenIdle);
    else whenIdle();
  }

  /** CLOSE on every open handle, the extra lanes' first; `done` gets the first error. */
  private closeLanes(done: (err?: unknown) => void): void {
    const open = this.lanes.filter((lane) => lane.handle);
    let waiting = open.length;
    let first: unknown;
    if (waiting === 0) {
      done();
      return;
    }
    for (const lane of open.reverse()) {
      const handle = lane.handle!;
      lane.handle = undefined;
      lane.ops.close(handle, (err) => {
        if (err && first === undefined) first = err;
        if (--waiting === 0) done(first);
      });
    }
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const done = () => {
      this.offLost();
      callback(err);
    };
    this.held = undefined;
    this.whenIdle = undefined;
    if (this.sessionLost) {
      done();
      return;
    }
    // Behind any WRITEs still unanswered: once every CLOSE is answered, nothing of this stream is
    // left. A lane whose OPEN is still out is waited for, so that its handle is closed too.
    this.pending = done;
    const closeAll = () =>
      this.closeLanes(() => {
        if (this.pending !== done) return;
        this.pending = undefined;
        done();
      });
    if (this.laneOpening) void this.laneOpening.then(closeAll);
    else closeAll();
  }
}
