/**
 * Delivery: one final item to every sink — a server-side copy, the whole small file, or one
 * stream fanned out — each commit then checked by the verification contract (verify.ts).
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, fstat } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { promisify } from 'node:util';
import { SluiceError } from '../errors.js';
import { itemIdentity } from '../item.js';
import type { Item, SinkCommit } from '../plugin-api.js';
import { drainInto, HashTap, hashStream, pipeThrough, STREAM_CHUNK } from '../streams.js';
import type { Digest } from '../template.js';
import { safeDestination } from './destination.js';
import { label, located } from './driver.js';
import { alreadyPresent } from './precheck.js';
import { type Job, linkSignals, listedSizeMismatch, RESERVED, type Stage, sourceOrigin } from './stage.js';
import { type Sent, type Target, verify } from './verify.js';

const fstatAsync = promisify(fstat);

/** Largest file read whole into memory on the small-file fast path. */
const WHOLE_FILE_LIMIT = 1024 * 1024;

/** Writes one final item to every sink, verifies, and records where it landed. */
export async function deliver(stage: Stage, item: Item, job: Job): Promise<void> {
  const context = { item: label(item) };
  const destination = safeDestination(item.destination ?? item.path, context);
  outsideSources(stage, destination, context);
  await claim(destination, job, context);
  let pending: Target[] = stage.driver.sinks
    .map((sink, index) => ({ sink, index, key: `${index}\u0000${destination}` }))
    .filter((t) => !job.committed.has(t.key));
  const locations: string[] = [];
  let bytes = 0;
  const settle = (t: Target, commit: SinkCommit) => {
    job.committed.add(t.key);
    if (!commit.skipped) job.written.push({ sink: t.sink, destination: commit.destination ?? destination });
    locations.push(commit.location);
  };
  const present = await alreadyPresent(stage, item, destination, pending, job);
  for (const { target, stat } of present)
    settle(target, { location: destination, size: stat.size, mtime: stat.mtime, skipped: true });
  if (present.length > 0 && present.length === pending.length) {
    job.leaves.push({ destination, locations, bytes: 0, present: true });
    return;
  }
  if (present.length > 0) pending = pending.filter((t) => !present.some((p) => p.target === t));

  const copied: Target[] = [];
  // A server-side copy takes the bytes from where the source keeps them, so only for an item
  // whose bytes no step touched: its open() is still the one the chain started from (a plugin
  // that forgot to clear `origin` must not have its transform skipped).
  if (item.origin && item.open === job.chainOpen) {
    for (const t of pending) {
      if (!t.sink.instance.copy) continue;
      await job.fence();
      const copy = await stage.driver.copy(t.sink, item, destination, job.signal, reserver(stage, t, job));
      if (!copy) continue;
      if (!copy.skipped && copy.size !== undefined && item.size !== undefined && copy.size !== item.size) {
        // The copy took the bytes the source holds now: a file that changed since it was listed.
        await job.fence();
        await stage.driver.removeAt(t.sink, copy.destination ?? destination).catch(() => undefined);
        throw listedSizeMismatch(item.size, copy.size, sourceOrigin(stage, job));
      }
      const commit = await verify(
        stage,
        t,
        destination,
        copy,
        { bytes: item.size ?? -1, sha256: item.checksums.sha256 },
        job,
        item,
      );
      settle(t, commit);
      bytes = item.size ?? commit.size ?? 0;
      if (copied.length === 0) job.bytesIn += bytes; // never read through the counting tap
      copied.push(t);
    }
  }
  const toWrite = pending.filter((t) => !copied.includes(t));
  if (toWrite.length > 0 && canWriteWhole(stage, item, toWrite, job)) {
    // The listed item, not `item`: a rename step changes the path but not the bytes, and a
    // source reads by the path it listed.
    const data = await stage.driver.readAll(job.source, job.root, job.signal);
    if (data.length !== item.size)
      throw listedSizeMismatch(item.size!, data.length, sourceOrigin(stage, job));
    const hashed = wantsSha256(toWrite, job) ? createHash('sha256').update(data).digest('hex') : undefined;
    const sent = { bytes: data.length, sha256: hashed };
    const needed = digestsNeeded(toWrite);
    const digestOf = (d: Digest) =>
      item.checksums[d] ?? (needed.includes(d) ? createHash(d).update(data).digest('hex') : undefined);
    const sha256 = hashed ?? digestOf('sha256');
    const md5 = digestOf('md5');
    for (const t of toWrite) {
      await job.fence();
      const commit = await stage.driver.writeBuffer(t.sink, context.item, {
        item,
        destination,
        data,
        size: data.length,
        sha256,
        md5,
        signal: job.signal,
        reserve: reserver(stage, t, job),
      });
      settle(t, await verify(stage, t, destination, commit, sent, job, item));
    }
    bytes = data.length;
  } else if (toWrite.length === 1 && canWriteIntoFile(stage, item, toWrite[0])) {
    const written = await writeIntoFile(stage, item, destination, toWrite[0], job);
    settle(toWrite[0], written.commit);
    bytes = written.bytes;
  } else if (toWrite.length > 0 || pending.length === 0) {
    const result = await streamToSinks(stage, item, destination, toWrite, job);
    for (const [i, t] of toWrite.entries()) settle(t, result.commits[i]);
    bytes = result.bytes;
  }
  job.leaves.push({ destination, locations, bytes });
}

/**
 * A sink whose root contains a source's root is valid (validate checks the roots), but a
 * destination under that source's folder would be listed again: delivered again every pass,
 * or the only copy deleted with `after_success: delete`.
 */
function outsideSources(stage: Stage, destination: string, context: { item: string }): void {
  for (const [index, folders] of stage.driver.sourceFolders) {
    const folder = folders.find((f) => destination === f || destination.startsWith(`${f}/`));
    if (!folder) continue;
    const sink = stage.driver.sinks[index];
    throw new SluiceError(
      'SLUICE_E_DESTINATION',
      `destination "${destination}" of ${sink.ref.stepId} lies in "${folder}", where a source lists: it would be delivered again`,
      {
        retryable: false,
        context: {
          ...context,
          step: sink.ref.stepId,
          hint: 'route it to a folder outside every source root',
        },
      },
    );
  }
}

/**
 * One destination holds one item per pass: a second item (or a second entry of one archive)
 * aiming at a destination already claimed fails, naming both, and keeps its source.
 */
async function claim(destination: string, job: Job, context: { item: string }): Promise<void> {
  const owner = `${job.source.name}:${itemIdentity(job.root).path}`;
  const holder = await job.pass.claims.take(destination, owner);
  // The same item's earlier attempt may hold it; a second leaf of this attempt may not.
  if (holder === undefined || (holder === owner && !job.claims.has(destination))) {
    job.claims.add(destination);
    return;
  }
  const other = holder === owner ? 'another entry of the same item' : `"${holder}"`;
  throw new SluiceError(
    'SLUICE_E_COLLISION',
    `destination "${destination}" is already taken in this pass by ${other}; this item was not written and its source is kept`,
    {
      retryable: false,
      context: {
        ...context,
        hint: 'make destinations unique, e.g. keep the folder ({path}) or add {stem}/{source} to the rename template',
      },
    },
  );
}

/**
 * The `reserve` a sink awaits right before it makes bytes visible under a name: the last moment
 * to fence, however long the stream before it took (a cluster worker paused mid-write would
 * otherwise commit over, or a numbered twin of, its successor's copy); with `if_exists: rename`
 * the name is also recorded durably, so a redo after a crash finds the copy.
 */
function reserver(
  stage: Stage,
  target: Target,
  job: Job,
): ((destination: string) => Promise<void>) | undefined {
  if (stage.dryRun) return undefined;
  return async (destination: string) => {
    await job.fence();
    if (target.sink.ifExists !== 'rename') return;
    job.reserved.add(`${RESERVED}${target.index}:${destination}`);
    stage.ledger.record(stage.def.name, itemIdentity(job.root), {
      state: 'seen',
      attempts: 1,
      destinations: [...job.reserved],
    });
    await stage.ledger.flush();
  };
}

/**
 * Small files whose bytes no step changed go through `readAll` + `writeBuffer` when both
 * ends support it: per-file stream set-up dominates at thousands of files a second.
 */
function canWriteWhole(stage: Stage, item: Item, targets: Target[], job: Job): boolean {
  return (
    item.open === job.chainOpen &&
    !stage.driver.hasByteSteps &&
    item.size !== undefined &&
    item.size <= WHOLE_FILE_LIMIT &&
    job.source.instance.readAll !== undefined &&
    targets.every((t) => t.sink.instance.writeBuffer !== undefined)
  );
}

/**
 * The last step writes its bytes into a file itself (`Item.writeTo`: gpg) and the item goes to
 * one sink, which hands out temp files and needs no digest before writing: no byte passes
 * through this process.
 */
function canWriteIntoFile(stage: Stage, item: Item, target: Target): boolean {
  return (
    !stage.dryRun &&
    item.writeTo !== undefined &&
    target.sink.instance.reserveFile !== undefined &&
    digestsNeeded([target]).length === 0
  );
}

/**
 * Delivery through `Item.writeTo` into a file the sink reserved. What was sent is the file as
 * written: its size, and its sha256 (read back before it is placed) when something compares
 * it. The same contract as a stream: a failure before the commit removes the temp file (nothing
 * was visible), the commit places it as a stream write would, and verify checks it.
 */
async function writeIntoFile(
  stage: Stage,
  item: Item,
  destination: string,
  target: Target,
  job: Job,
): Promise<{ commit: SinkCommit; bytes: number }> {
  const where = stage.driver.where(target.sink.ref, label(item));
  await job.fence();
  const file = await stage.driver.reserveFile(target.sink, label(item), {
    item,
    destination,
    size: item.size,
    sha256: item.checksums.sha256,
    md5: item.checksums.md5,
    signal: job.signal,
    reserve: reserver(stage, target, job),
  });
  let sent: Sent;
  try {
    await item.writeTo!(file.fd, job.signal);
    const { size } = await fstatAsync(file.fd);
    const sha256 = wantsSha256([target], job)
      ? (
          await hashStream(
            createReadStream('', { fd: file.fd, start: 0, autoClose: false, highWaterMark: STREAM_CHUNK }),
          )
        ).digest
      : undefined;
    sent = { bytes: size, sha256 };
  } catch (err) {
    await file.abort().catch(() => undefined);
    // The step's own failure (attributed to it by the chain) stays its own.
    throw located(err, where, 'SLUICE_E_SINK');
  }
  const commit = await file.commit();
  return { commit: await verify(stage, target, destination, commit, sent, job, item), bytes: sent.bytes };
}

/**
 * sha256 is computed while streaming only when something compares it: a sink verifying by
 * sha256, one whose backend reports a checksum, a skip that must prove it holds the same bytes
 * before the source is touched, or a redo looking for the copy a crashed run committed.
 * Hashing runs at about the speed of a page-cache copy, so hashing unconditionally would
 * halve local throughput for nothing.
 */
function wantsSha256(targets: Target[], job: Job): boolean {
  return targets.some(
    (t) =>
      t.sink.verify === 'sha256' ||
      t.sink.instance.reportsSha256 === true ||
      (job.touchesSource && (t.sink.ifExists === 'skip' || t.sink.ifExists === 'fail')) ||
      job.reservedEarlier.has(t.index),
  );
}

/** The digests some sink needs before writing (its metadata names `{sha256}` or `{md5}`). */
function digestsNeeded(targets: Target[]): Digest[] {
  const needed = new Set<Digest>();
  for (const { sink } of targets) {
    if (sink.instance.needsSha256) needed.add('sha256');
    for (const d of sink.instance.needsDigests ?? []) needed.add(d);
  }
  return [...needed];
}

async function streamToSinks(
  stage: Stage,
  item: Item,
  destination: string,
  targets: Target[],
  job: Job,
): Promise<{ bytes: number; commits: SinkCommit[] }> {
  let body = await item.open(job.signal);
  const known: Partial<Record<Digest, string>> = { sha256: item.checksums.sha256, md5: item.checksums.md5 };
  const missing = digestsNeeded(targets).filter((d) => known[d] === undefined);
  let spooled: string | undefined;
  if (missing.length > 0) {
    // A sink needs a hash before writing (metadata): spool once while hashing.
    spooled = join(stage.tempRoot, `spool-${Math.random().toString(36).slice(2)}`);
    await mkdir(stage.tempRoot, { recursive: true });
    const taps = missing.map((d) => new HashTap(d));
    await drainInto(pipeThrough(body, ...taps), createWriteStream(spooled), job.signal);
    for (const [i, d] of missing.entries()) known[d] = taps[i].digest();
    body = createReadStream(spooled, { highWaterMark: STREAM_CHUNK });
  }
  const { sha256, md5 } = known;
  let disposeSignal: () => void = () => undefined;
  try {
    const tap = new HashTap(wantsSha256(targets, job) ? 'sha256' : null);
    const flowing = pipeThrough(body, tap);
    // The bytes can fail before a sink reads them (a source found shorter than listed while a
    // sink still connects): the failure aborts the writes, else a sink would wait forever on a
    // stream that fires no more events, and the error would go unheard.
    const bodyFailed = new AbortController();
    flowing.on('error', (err) => bodyFailed.abort(err));
    const linked = linkSignals(job.signal, bodyFailed.signal);
    disposeSignal = linked.dispose;
    const signal = linked.signal;
    if (targets.length === 0) {
      // Every sink already has this entry from an earlier attempt: just consume the bytes.
      for await (const _ of flowing) {
        /* drain */
      }
      return { bytes: tap.bytes, commits: [] };
    }
    await job.fence();
    const bodies = targets.length === 1 ? [flowing] : fanOut(flowing, targets.length);
    const writes = targets.map((t, i) =>
      stage.driver.write(t.sink, label(item), {
        item,
        destination,
        body: bodies[i],
        size: item.size,
        sha256,
        md5,
        signal,
        reserve: reserver(stage, t, job),
      }),
    );
    // One sink failing aborts the others: no sink commits bytes the others did not get.
    for (const w of writes) {
      w.catch((err) => {
        for (const b of bodies) b.destroy(err);
        flowing.destroy(err);
      });
    }
    const settled = await Promise.allSettled(writes);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      // What the other sinks committed before one failed would otherwise stay behind.
      for (const [i, r] of settled.entries()) {
        if (r.status === 'fulfilled' && !r.value.skipped)
          job.written.push({ sink: targets[i].sink, destination: r.value.destination ?? destination });
      }
      // The first cause wins: a sink that failed because its bytes did reports that failure of
      // the bytes, named after the step or source that produced them (not the sink's own).
      const cause = bodyFailed.signal.aborted ? bodyFailed.signal.reason : failed.reason;
      const sink = targets[settled.indexOf(failed)].sink;
      throw located(cause, stage.driver.where(sink.ref, label(item)), 'SLUICE_E_SINK');
    }
    const commits = settled.map((r) => (r as PromiseFulfilledResult<SinkCommit>).value);
    const sent = { bytes: tap.bytes, sha256: tap.digest() };
    for (const [i, t] of targets.entries()) {
      try {
        commits[i] = await verify(stage, t, destination, commits[i], sent, job, item);
      } catch (err) {
        // The other sinks committed too (the failing one's copy is removed by verify): they are
        // this attempt's to remove if the item fails for good, and not yet settled by the caller.
        for (const [k, c] of commits.entries()) {
          if (k !== i && !c.skipped)
            job.written.push({ sink: targets[k].sink, destination: c.destination ?? destination });
        }
        throw err;
      }
    }
    return { bytes: tap.bytes, commits };
  } finally {
    disposeSignal();
    if (spooled) await unlink(spooled).catch(() => undefined);
  }
}

function fanOut(source: Readable, n: number): PassThrough[] {
  const outs = Array.from({ length: n }, () => new PassThrough({ highWaterMark: STREAM_CHUNK }));
  for (const o of outs) source.pipe(o);
  source.on('error', (err) => {
    for (const o of outs) o.destroy(err);
  });
  return outs;
}
