/**
 * A write stream into one SFTP file that keeps many WRITE requests outstanding.
 *
 * ssh2's `createWriteStream` sends a chunk and takes the next only once it is acknowledged
 * (plus whatever piled up meanwhile), about 3 MB/s at a 50 ms round trip. This stream sends
 * each chunk as 32 KiB WRITEs at explicit offsets and accepts more while fewer than
 * `requestsInFlight` are unanswered; the handle's CLOSE goes out after the last answer, and
 * its error (a server that flushes on close) fails the upload.
 */
import { Writable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';
import { SFTP_READ_CHUNK } from './pipelined-read.js';

export type SftpWriteOps = Pick<SFTPWrapper, 'open' | 'write' | 'close'>;

export interface PipelinedWriteOptions {
  requestsInFlight: number;
  chunkSize?: number;
  highWaterMark?: number;
  describeError: (operation: 'open' | 'write' | 'close', err: unknown) => Error;
  /** As for pipelinedRead: ssh2 never answers a request on a dead session. */
  onSessionLost: (listener: (err: Error) => void) => () => void;
}

/** Creates or truncates `path` and writes the stream's bytes into it. */
export function pipelinedWrite(sftp: SftpWriteOps, path: string, options: PipelinedWriteOptions): Writable {
  return new PipelinedWrite(sftp, path, options);
}

class PipelinedWrite extends Writable {
  private handle?: Buffer;
  private position = 0;
  private outstanding = 0;
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
    private readonly sftp: SftpWriteOps,
    private readonly path: string,
    private readonly options: PipelinedWriteOptions,
  ) {
    super({ highWaterMark: options.highWaterMark });
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
    this.sftp.open(this.path, 'w', (err, handle) => {
      if (this.pending !== callback) return;
      this.pending = undefined;
      if (err) callback(this.options.describeError('open', err));
      else {
        this.handle = handle;
        callback();
      }
    });
  }

  override _write(data: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    for (let offset = 0; offset < data.length; offset += this.chunk) {
      this.send(data.subarray(offset, Math.min(offset + this.chunk, data.length)));
    }
    if (this.outstanding < this.options.requestsInFlight) callback();
    else this.held = callback;
  }

  private send(piece: Buffer): void {
    const at = this.position;
    this.position += piece.length;
    this.outstanding++;
    this.sftp.write(this.handle!, piece, 0, piece.length, at, (err) => {
      this.outstanding--;
      if (this.destroyed) return;
      if (err) {
        this.destroy(this.options.describeError('write', err));
        return;
      }
      if (this.held && this.outstanding < this.options.requestsInFlight) {
        const held = this.held;
        this.held = undefined;
        held();
      }
      if (this.outstanding === 0) this.whenIdle?.();
    });
  }

  override _final(callback: (err?: Error | null) => void): void {
    const close = () => {
      this.whenIdle = undefined;
      const handle = this.handle!;
      this.handle = undefined;
      this.pending = callback;
      this.sftp.close(handle, (err) => {
        if (this.pending !== callback) return;
        this.pending = undefined;
        callback(err ? this.options.describeError('close', err) : undefined);
      });
    };
    if (this.outstanding === 0) close();
    else this.whenIdle = close;
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const done = () => {
      this.offLost();
      callback(err);
    };
    this.held = undefined;
    this.whenIdle = undefined;
    if (this.sessionLost || !this.handle) {
      done();
      return;
    }
    // Behind any WRITEs still unanswered: once CLOSE is answered, nothing of this stream is left.
    const handle = this.handle;
    this.handle = undefined;
    this.pending = done;
    this.sftp.close(handle, () => {
      if (this.pending !== done) return;
      this.pending = undefined;
      done();
    });
  }
}
