/**
 * The verification contract the runtime enforces, whatever the sink: what the backend reports
 * it holds is compared with what was read and sent; a failure removes only what this attempt
 * wrote; a skip stands for the item only with the same bytes; a redo after a crash finds the
 * copy under a name it had reserved.
 */
import { PassThrough } from 'node:stream';
import { type ErrorContext, SluiceError } from '../errors.js';
import type { Item, SinkCommit } from '../plugin-api.js';
import { drainInto, HashTap, hashStream, pipeThrough } from '../streams.js';
import { label, type SinkRuntime } from './driver.js';
import type { Job, Stage } from './stage.js';

/** A sink an item is delivered to, with its index in the pipeline and its committed-set key. */
export interface Target {
  sink: SinkRuntime;
  index: number;
  key: string;
}

/** What was sent to a sink. */
export interface Sent {
  /** Bytes sent, or -1 when a server-side copy of an item of unknown size sent none. */
  bytes: number;
  sha256?: string;
}

/**
 * The verification contract: what the backend reports it holds is compared with what was
 * sent. A sink that reports no size fails `verify: size`; a failure removes only what this
 * attempt wrote. A skip counts as delivered when the source is kept, or when the existing
 * object holds the same bytes. Returns the commit to record (a crashed run's copy, when the
 * redo finds one of the names it reserved holding these bytes).
 */
export async function verify(
  stage: Stage,
  target: Target,
  destination: string,
  commit: SinkCommit,
  sent: Sent,
  job: Job,
  item: Item,
): Promise<SinkCommit> {
  const { sink } = target;
  const where = stage.driver.where(sink.ref, label(item));
  const written = commit.destination ?? destination;
  if (commit.skipped) {
    if (job.touchesSource) await checkSkip(stage, sink, written, commit, sent, job, where, item);
    return commit;
  }
  const mismatch = async (what: string, options: { retryable?: boolean; hint?: string } = {}) => {
    await job.fence(); // removing is a side effect too: a worker that lost the item removes nothing
    await stage.driver.removeAt(sink, written).catch(() => undefined);
    return new SluiceError('SLUICE_E_VERIFY', `${commit.location}: ${what}`, {
      context: { ...where, hint: options.hint },
      retryable: options.retryable ?? true,
    });
  };
  if (sink.verify !== 'none') {
    if (commit.size === undefined) {
      throw await mismatch('the sink did not report what it stored, so the copy cannot be verified', {
        retryable: false,
        hint: `set verify: none on ${sink.ref.stepId} to accept copies nobody can check`,
      });
    }
    if (sent.bytes >= 0 && commit.size !== sent.bytes)
      throw await mismatch(`stored ${commit.size} bytes but ${sent.bytes} were sent`);
    if (commit.sha256 && sent.sha256 && commit.sha256 !== sent.sha256) {
      throw await mismatch(`stored sha256 ${commit.sha256} differs from the sent ${sent.sha256}`);
    }
    const mtimeDiffers = differentMtime(item.mtime, commit.mtime, sink.instance.mtimePrecisionMs);
    if (mtimeDiffers) {
      // The sink kept another time than the source's (a backend rounding more coarsely than it
      // declares, or ignoring the time it was given): writing again would store the same.
      throw await mismatch(`stored mtime ${mtimeDiffers}`, {
        retryable: false,
        hint: `set preserve_mtime: false on ${sink.ref.stepId} to keep the backend's own time, or verify: none`,
      });
    }
    if (sink.verify === 'sha256' && sent.sha256 && !commit.sha256) {
      if (!sink.instance.readBack)
        throw await mismatch(
          'verify: sha256 was asked, but the sink neither reported a sha256 nor can re-read the object',
          { retryable: false },
        );
      const stored = await hashAt(stage, sink, written, job.signal);
      if (stored !== sent.sha256)
        throw await mismatch(`re-read sha256 ${stored} differs from the sent ${sent.sha256}`);
    }
  }
  // Only a redo after a crash has names reserved earlier (one map lookup, not an async call).
  if (job.reservedEarlier.size === 0) return commit;
  return reuseReserved(stage, target, written, commit, sent, job);
}

/** A skip may stand for the item only if the object already there holds the same bytes. */
async function checkSkip(
  stage: Stage,
  sink: SinkRuntime,
  written: string,
  commit: SinkCommit,
  sent: Sent,
  job: Job,
  where: ErrorContext,
  item: Item,
): Promise<void> {
  const differs = () =>
    new SluiceError(
      'SLUICE_E_EXISTS',
      `${commit.location} already holds other bytes; if_exists: ${sink.ifExists} left it in place, so the source is kept`,
      {
        retryable: false,
        context: { ...where, hint: 'use if_exists: rename or overwrite, or after_success: keep' },
      },
    );
  if (commit.size !== undefined && sent.bytes >= 0 && commit.size !== sent.bytes) throw differs();
  if (!sink.instance.readBack && !commit.sha256) {
    throw new SluiceError(
      'SLUICE_E_EXISTS',
      `${commit.location} exists and the sink cannot re-read it to show it holds the same bytes, so the source is kept`,
      {
        retryable: false,
        context: where,
      },
    );
  }
  const expected = sent.sha256 ?? (await hashStream(await item.open(job.signal))).digest;
  const existing = commit.sha256 ?? (await hashAt(stage, sink, written, job.signal));
  if (existing !== expected) throw differs();
}

/**
 * A redo after a crash between a rename-mode commit and its ledger record: if one of the
 * names the crashed run reserved holds exactly these bytes, that is this item's copy — the
 * twin this attempt just wrote is removed and the earlier copy recorded, and so is any twin an
 * earlier redo wrote and was killed before removing (the same bytes under another reserved name).
 */
async function reuseReserved(
  stage: Stage,
  target: Target,
  written: string,
  commit: SinkCommit,
  sent: Sent,
  job: Job,
): Promise<SinkCommit> {
  const earlier = job.reservedEarlier.get(target.index)?.filter((name) => name !== written);
  if (!earlier?.length || !target.sink.instance.readBack) return commit;
  // A server-side copy sent no bytes to hash: what it wrote is read back instead.
  const mine = sent.sha256 ?? (await hashAt(stage, target.sink, written, job.signal));
  for (const name of earlier) {
    const existing = await hashAt(stage, target.sink, name, job.signal).catch(() => undefined);
    if (existing !== mine) continue;
    await job.fence();
    await stage.driver.removeAt(target.sink, written);
    // A redo killed between writing its twin and removing it left that twin under a name this
    // item reserved too: the same bytes under another of its own names go as well.
    for (const other of earlier) {
      if (other === name) continue;
      const twin = await hashAt(stage, target.sink, other, job.signal).catch(() => undefined);
      if (twin === mine) await stage.driver.removeAt(target.sink, other);
    }
    const location = commit.location.endsWith(written)
      ? commit.location.slice(0, -written.length) + name
      : name;
    return { ...commit, location, destination: name };
  }
  return commit;
}

/**
 * How a stored mtime differs from the item's, at the sink's precision (both truncated to it),
 * or undefined when they agree or either is unknown: a sink that keeps no mtime is not wrong.
 */
export function differentMtime(
  expected: Date | undefined,
  stored: Date | undefined,
  precisionMs = 1,
): string | undefined {
  if (!expected || !stored) return undefined;
  const step = Math.max(1, precisionMs);
  if (Math.floor(expected.getTime() / step) === Math.floor(stored.getTime() / step)) return undefined;
  return `${stored.toISOString()} differs from the source's ${expected.toISOString()}${step > 1 ? ` (compared to ${step} ms)` : ''}`;
}

async function hashAt(
  stage: Stage,
  sink: SinkRuntime,
  destination: string,
  signal: AbortSignal,
): Promise<string> {
  const tap = new HashTap();
  await drainInto(
    pipeThrough(await stage.driver.readBack(sink, destination, signal), tap),
    new PassThrough().resume(),
    signal,
  );
  return tap.digest()!;
}
