/**
 * The step chain: one listed item through every step, depth first (an unpacker's entries go
 * one by one to the end before the next is pulled), each final item handed to delivery.
 */
import { existsSync, fstat, readFile, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type { StreamOrigin } from '../errors.js';
import { deriveItem } from '../item.js';
import type { Item, LocalFile, StepContext, StepOutput } from '../plugin-api.js';
import { HashTap, pipeThrough } from '../streams.js';
import { deliver } from './deliver.js';
import { attributedOpen, label, located, type StepRuntime, siblingPath } from './driver.js';
import { type Job, listedSizeMismatch, type Stage, sourceOrigin } from './stage.js';

const fstatAsync = promisify(fstat);
const readFileAsync = promisify(readFile);

/**
 * The listed item as the step chain starts from it: its read errors named after the source,
 * the bytes read from the source counted when steps change bytes (else in = out), and those
 * bytes compared with the size the source listed — a file truncated or grown while it is
 * read fails instead of being committed short.
 */
export function chainRoot(stage: Stage, listed: Item, job: Job): Item {
  const origin = sourceOrigin(stage, job);
  const item = { ...listed, open: attributedOpen(listed.open, origin) };
  const progress = stage.reading
    ? { source: job.source.name, path: item.path, size: item.size, started: performance.now() }
    : undefined;
  if (progress) stage.reading?.set(job, progress);
  const expected =
    listed.size === undefined
      ? undefined
      : { bytes: listed.size, mismatch: (read: number) => listedSizeMismatch(listed.size!, read, origin) };
  if (!stage.driver.hasByteSteps && !progress && !expected) return item;
  return {
    ...item,
    open: async (signal?: AbortSignal) => {
      const tap = new HashTap(null, expected);
      if (progress) stage.reading?.set(job, { ...progress, tap });
      tap.on('end', () => {
        job.bytesIn += tap.bytes;
      });
      return pipeThrough(await item.open(signal), tap);
    },
  };
}

export async function runChain(stage: Stage, item: Item, index: number, job: Job): Promise<void> {
  if (job.signal.aborted) throw job.signal.reason;
  const { steps } = stage.driver;
  if (index === steps.length) {
    await deliver(stage, item, job);
    return;
  }
  const step = steps[index];
  const input = stepInput(step, item);
  if (!input) {
    // Not selected by the step's `when`: the item goes on exactly as it came (bytes, name, all).
    await runChain(stage, item, index + 1, job);
    return;
  }
  applied(job).add(step.ref.stepId);
  item = input;
  const context = stage.driver.where(step.ref, label(item));
  const ctx: StepContext = {
    ...step.ctx,
    signal: job.signal,
    report: (figure) => job.figures.push(figure),
    reportCompanion: (of, name) => {
      if (of.source === job.source.name) job.companions.add(siblingPath(of, name));
    },
    openLocal: (of, signal) => openLocal(stage, job, of, signal),
  };
  const started = performance.now();
  const out: StepOutput = timed(stage, step, item, await stage.driver.process(step, item, ctx), started);
  if (out === null) {
    job.filtered++;
    return;
  }
  // Bytes this step made: their stream errors are its own, even when a sink reports them.
  const origin: StreamOrigin = { context, code: 'SLUICE_E_PLUGIN' };
  const attributed = (next: Item): Item => {
    if (next.open === item.open) return next;
    // New bytes: a `writeTo` is theirs only if this step made it, not one it passed on (an
    // item spread with a new `open` keeps the old one, which writes the bytes before this step).
    const { writeTo, ...rest } = next;
    const own = writeTo !== undefined && writeTo !== item.writeTo;
    return {
      ...rest,
      open: attributedOpen(next.open, origin),
      ...(own ? { writeTo: attributedWriter(writeTo, origin) } : {}),
    };
  };
  if (Array.isArray(out)) {
    for (const next of out) await runChain(stage, attributed(next), index + 1, job);
  } else if (isAsyncIterable(out)) {
    try {
      for await (const next of out) await runChain(stage, attributed(next), index + 1, job);
    } catch (err) {
      throw located(err, context);
    }
  } else {
    await runChain(stage, attributed(out), index + 1, job);
  }
}

/** The item as the step sees it (with the captures of its `when`), or null when `when` does not match. */
function stepInput(step: StepRuntime, item: Item): Item | null {
  if (!step.when) return item;
  const captures = step.when(item, new Date());
  if (captures === null) return null;
  return Object.keys(captures).length > 0 ? deriveItem(item, { match: captures }) : item;
}

/** Steps each job's items went through (not skipped by `when`), in pipeline order. */
const appliedByJob = new WeakMap<Job, Set<string>>();

function applied(job: Job): Set<string> {
  const set = appliedByJob.get(job) ?? new Set<string>();
  appliedByJob.set(job, set);
  return set;
}

/** The ids of the steps that applied to at least one of the job's items (`plan` shows them). */
export function appliedSteps(job: Job): string[] {
  return [...(appliedByJob.get(job) ?? [])];
}

/**
 * `--log-level debug`: a line per step per item with its time. A step that makes new bytes is
 * timed until they have all passed (its work happens while they stream), an unpacker until it
 * has returned its entries' iterator, any other step until it returned.
 */
function timed(stage: Stage, step: StepRuntime, item: Item, out: StepOutput, started: number): StepOutput {
  const log = () =>
    stage.log.debug(
      { item: label(item), step: step.ref.stepId, ms: Math.round(performance.now() - started) },
      `step ${step.ref.stepId} took ${Math.round(performance.now() - started)}ms`,
    );
  if (out === null || Array.isArray(out) || isAsyncIterable(out) || out.open === item.open) {
    log();
    return out;
  }
  return {
    ...out,
    open: async (signal?: AbortSignal) => {
      const stream = await out.open(signal);
      stream.once('end', log);
      return stream;
    },
    ...(out.writeTo && out.writeTo !== item.writeTo
      ? {
          writeTo: async (fd: number, signal?: AbortSignal) => {
            await out.writeTo!(fd, signal);
            log();
          },
        }
      : {}),
  };
}

/** A `writeTo` whose failures are attributed to `origin` (as `attributedOpen` does for streams). */
function attributedWriter(writeTo: NonNullable<Item['writeTo']>, origin: StreamOrigin): Item['writeTo'] {
  return async (fd, signal) => {
    try {
      await writeTo(fd, signal);
    } catch (err) {
      throw located(err, origin.context, origin.code);
    }
  };
}

/** Whether this platform shows a descriptor's offset (`/proc/self/fdinfo`), which `LocalFile.finish` checks. */
let fdOffsets: boolean | undefined;

/** The offset of our descriptor `fd` (shared with a child that inherited it). */
function offsetOf(text: string): number {
  const pos = /^pos:\s*(\d+)$/m.exec(text);
  return pos ? Number(pos[1]) : -1;
}

/**
 * `StepContext.openLocal`: the listed file itself, for a child process to read, while `item`
 * still carries the bytes the chain started from (its `open` is the chain's own: no step
 * changed them — the rule a server-side copy follows too), from a source that opens files.
 * Its `finish` does what the chain root's counting tap does for a stream: compares what was
 * read with the listed size, counts the bytes in; progress shows the reader's offset.
 */
async function openLocal(
  stage: Stage,
  job: Job,
  item: Item,
  signal?: AbortSignal,
): Promise<LocalFile | null> {
  const source = job.source.instance;
  const size = job.root.size;
  if (!source.openFile || item.open !== job.chainOpen || size === undefined) return null;
  fdOffsets ??= existsSync('/proc/self/fdinfo');
  if (!fdOffsets) return null;
  const origin = sourceOrigin(stage, job);
  // The listed item, not `item`: a rename step changes the path, not the file.
  const opened = await stage.driver.openFile(job.source, job.root, signal);
  if (!opened) return null;
  const { fd } = opened;
  const info = `/proc/self/fdinfo/${fd}`;
  let closed = false;
  let counted = false;
  const progress = stage.reading?.get(job);
  if (progress) {
    const reader = {
      get bytes() {
        if (closed) return size;
        try {
          return Math.max(0, offsetOf(readFileSync(info, 'utf8')));
        } catch {
          return 0;
        }
      },
    };
    stage.reading?.set(job, { ...progress, tap: reader as HashTap });
  }
  return {
    fd,
    size,
    async finish(options) {
      // Another file may have this descriptor's number once it is closed.
      if (closed) throw new Error('LocalFile.finish() after close()');
      const [st, text] = await Promise.all([fstatAsync(fd), readFileAsync(info, 'utf8')]);
      const read = offsetOf(text);
      if (st.size !== size) throw listedSizeMismatch(size, st.size, origin);
      // A reader that failed on its own stopped where it gave up: its verdict says why.
      if (read !== size && options?.readerFailed !== true) throw listedSizeMismatch(size, read, origin);
      if (!counted) job.bytesIn += size;
      counted = true;
    },
    async close() {
      if (closed) return;
      closed = true;
      await opened.close();
    },
  };
}

function isAsyncIterable(v: unknown): v is AsyncIterable<Item> {
  return typeof v === 'object' && v !== null && Symbol.asyncIterator in v;
}
