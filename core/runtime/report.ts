/**
 * Pass reports (`report:`): each pass's summary — the JSON `--summary-json` writes — goes through
 * a sink plugin to a destination rendered from the report's template, once per pass, after the
 * pass has returned (every item finalized or failed; a drained pass's in-flight items ended).
 *
 * The sink is created from the registry's plugin like the pipeline's own (its config validated
 * at `/report/sink/…` when the file was loaded), for this one write, and closed after it. The
 * write is the sink's atomic one (`writeBuffer`, else `write`), with `reserve`, under the
 * report's `if_exists` (`rename` unless written: an earlier report is never replaced); what the
 * backend reports is checked like an item's commit (size; sha256 when reported or asked), and a
 * failed write is retried under the pipeline's retry policy. A report that cannot be written
 * fails nothing already delivered: it is logged, returned (the caller alerts and the summary
 * says so), and the next pass writes its own.
 */
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { PipelineDefinition } from '../config/load.js';
import { noItem } from '../config/report.js';
import { errorMessage, isRetryableByDefault, SluiceError, wrapPluginError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { PassProgress } from '../observe/pipeline-counters.js';
import { newSummary, type PassReport, type RunSummary } from '../observe/run-summary.js';
import { summaryJson } from '../observe/summary.js';
import type { SinkCommit, SinkInstance } from '../plugin-api.js';
import { hashStream } from '../streams.js';
import { sinkFields } from './fields.js';
import { backoffDelay, sleep } from './timing.js';

/** How long one report may take, retries included (a stop waits for it). */
const REPORT_TIMEOUT_MS = 60_000;

/**
 * Writes `summary` as the pass's report when the pipeline has `report:` (never in a dry run),
 * and sets `summary.report` to where it went or why it could not go. `startedAt` is `{now}`.
 * `error`: the pass failed as a whole; the report then says why, with the counts it reached.
 */
export async function writePassReport(
  def: PipelineDefinition,
  summary: RunSummary,
  options: { log: Logger; startedAt: Date; error?: unknown },
): Promise<PassReport | undefined> {
  const report = def.report;
  if (!report) return undefined;
  const log = options.log.child({ pipeline: def.name, step: report.sink.stepId });
  if (summary.dryRun) {
    log.debug({}, 'dry run: no pass report written');
    return undefined;
  }
  let destination: string | undefined;
  let outcome: PassReport;
  try {
    destination = report.template.render(noItem(report.to), { now: options.startedAt });
    const body = {
      ...summaryJson(summary),
      ...(options.error !== undefined ? { error: describe(options.error) } : {}),
    };
    const data = Buffer.from(`${JSON.stringify(body, null, 2)}\n`);
    const commit = await withRetries(def, log, (signal) => writeOnce(def, destination!, data, signal, log));
    outcome = { destination: commit.destination ?? destination, location: commit.location };
    log.info({ report: commit.location }, 'pass report written');
  } catch (err) {
    const e =
      err instanceof SluiceError
        ? err
        : wrapPluginError(err, { pipeline: def.name, step: report.sink.stepId }, 'SLUICE_E_SINK');
    outcome = {
      ...(destination !== undefined ? { destination } : {}),
      code: e.code,
      error: e.toUserString(),
    };
    log.error(
      { err: outcome.error, destination },
      'pass report not written (what the pass delivered stays delivered)',
    );
  }
  summary.report = outcome;
  return outcome;
}

/** The summary of a pass that failed as a whole: the counts it reached before it failed. */
export function failedPassSummary(
  def: PipelineDefinition,
  dryRun: boolean,
  progress: PassProgress | undefined,
): RunSummary {
  const summary = newSummary(def.name, dryRun);
  if (!progress) return summary;
  summary.ok = progress.done;
  summary.failed = progress.failed;
  summary.skipped = progress.skipped;
  summary.bytesIn = progress.bytesIn;
  summary.bytesOut = progress.bytesOut;
  summary.durationMs = Date.now() - progress.startedAt;
  return summary;
}

function describe(err: unknown): string {
  return err instanceof SluiceError ? err.toUserString() : errorMessage(err);
}

async function withRetries(
  def: PipelineDefinition,
  log: Logger,
  write: (signal: AbortSignal) => Promise<SinkCommit>,
): Promise<SinkCommit> {
  const signal = AbortSignal.timeout(REPORT_TIMEOUT_MS);
  const { retry } = def.policy;
  for (let attempt = 1; ; attempt++) {
    try {
      return await write(signal);
    } catch (err) {
      if (!isRetryableByDefault(err) || attempt >= retry.maxAttempts || signal.aborted) throw err;
      const delayMs = backoffDelay(attempt, retry);
      log.warn({ attempt, delayMs, err: describe(err) }, 'pass report: write failed, retrying');
      await sleep(delayMs, signal);
    }
  }
}

/** One attempt: a fresh sink instance, the atomic write, the check of what it stored, close. */
async function writeOnce(
  def: PipelineDefinition,
  destination: string,
  data: Buffer,
  signal: AbortSignal,
  log: Logger,
): Promise<SinkCommit> {
  const ref = def.report!.sink;
  const where = { pipeline: def.name, step: ref.stepId, plugin: ref.name, item: destination };
  const tempDir = join(tmpdir(), `sluice-report-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  await mkdir(tempDir, { recursive: true });
  let sink: SinkInstance | undefined;
  try {
    try {
      sink = (await ref.plugin.create(ref.config as never, {
        pipeline: def.name,
        stepId: ref.stepId,
        log,
        tempDir,
        stateDir: def.stateDir,
        baseDir: def.baseDir,
        signal,
      })) as SinkInstance;
    } catch (err) {
      throw wrapPluginError(err, where, 'SLUICE_E_CONFIG');
    }
    const instance = sink;
    const item = { source: 'report', path: destination, size: data.length, checksums: {}, meta: {} };
    const request = {
      item: { ...item, open: async () => Readable.from([data]) } as never,
      destination,
      size: data.length,
      signal,
      // A report is not an item: no ledger record, nothing to fence; the sink still calls it.
      reserve: async () => signal.throwIfAborted(),
    };
    let commit: SinkCommit;
    try {
      commit = instance.writeBuffer
        ? await instance.writeBuffer({ ...request, data })
        : await instance.write({ ...request, body: Readable.from([data]) });
    } catch (err) {
      // The plugin knows its errors best (as the driver asks it for an item's write).
      const verdict = instance.isRetryable?.(err instanceof SluiceError ? (err.cause ?? err) : err);
      const wrapped = wrapPluginError(err, where, 'SLUICE_E_SINK');
      if (verdict === undefined || wrapped.retryable !== undefined) throw wrapped;
      throw new SluiceError(wrapped.code, wrapped.message, {
        cause: wrapped,
        context: where,
        retryable: verdict,
      });
    }
    await checkStored(ref, instance, destination, commit, data, signal, where);
    return commit;
  } finally {
    await sink?.close?.().catch(() => undefined);
    await rm(tempDir, { recursive: true, force: true });
  }
}

/** What the backend says it holds, held against the report's bytes (as an item's commit is). */
async function checkStored(
  ref: NonNullable<PipelineDefinition['report']>['sink'],
  sink: SinkInstance,
  destination: string,
  commit: SinkCommit,
  data: Buffer,
  signal: AbortSignal,
  where: Record<string, string>,
): Promise<void> {
  const { verify } = sinkFields(ref);
  if (verify === 'none' || commit.skipped) return;
  const sha256 = (await hashStream(Readable.from([data]))).digest;
  let stored = commit.sha256;
  if (!stored && verify === 'sha256' && sink.readBack)
    stored = (await hashStream(await sink.readBack(commit.destination ?? destination, signal))).digest;
  const problem =
    commit.size === undefined
      ? 'the sink did not report what it stored'
      : commit.size !== data.length
        ? `stored ${commit.size} bytes but ${data.length} were sent`
        : stored !== undefined && stored !== sha256
          ? `stored sha256 ${stored} differs from the sent ${sha256}`
          : undefined;
  if (!problem) return;
  await sink.remove?.(commit.destination ?? destination).catch(() => undefined);
  throw new SluiceError('SLUICE_E_VERIFY', `${commit.location}: ${problem}`, {
    context: where,
    retryable: commit.size !== undefined,
  });
}
