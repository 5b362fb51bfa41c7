import { formatBytes, formatDuration } from '../units.js';
import { formatPlan } from './plan.js';
import { redact, redactDeep } from './redact.js';
import type { RunSummary } from './run-summary.js';

/**
 * The end-of-pass summary as a few human lines. Redacted as a whole: it goes to stdout, not
 * through the logger, and paths come from listings (a presigned URL may be one).
 */
export function formatSummary(s: RunSummary): string {
  // A dry run lists what each file would do first, as `sluice plan` does.
  const lines: string[] = s.dryRun && s.plan.length > 0 ? [formatPlan(s)] : [];
  const head = s.dryRun ? `${s.pipeline} (dry run)` : s.pipeline;
  lines.push(
    // "parked" only when some are, so a summary reads as before for pipelines that never park.
    `${head}: ${s.ok} ok${s.alreadyAtDestination > 0 ? ` (${s.alreadyAtDestination} already at destination, not read)` : ''}, ${s.failed} failed${s.parked > 0 ? `, ${s.parked} parked` : ''}, ${s.skipped} skipped (done before), ${s.filtered} filtered` +
      ` — ${s.filesWritten} file${s.filesWritten === 1 ? '' : 's'} ${s.dryRun ? 'would be written' : 'written'}, ${formatBytes(s.bytesIn)} in, ${formatBytes(s.bytesOut)} out` +
      `, ${s.retries} retr${s.retries === 1 ? 'y' : 'ies'}, ${formatDuration(s.durationMs)}` +
      (s.interrupted ? ' (interrupted)' : ''),
  );
  if (s.compression.bytesIn > 0) {
    const saved = s.compression.bytesIn - s.compression.bytesOut;
    const ratio = s.compression.bytesOut > 0 ? s.compression.bytesIn / s.compression.bytesOut : 0;
    lines.push(
      `  compression: ${formatBytes(s.compression.bytesIn)} → ${formatBytes(s.compression.bytesOut)}, ratio ${ratio.toFixed(2)}:1, saved ${formatBytes(saved)} (${((saved / s.compression.bytesIn) * 100).toFixed(1)}%)`,
    );
  }
  if (s.slowest.length > 0 && s.ok + s.failed > 1) {
    lines.push(`  slowest: ${s.slowest.map((x) => `${x.path} (${formatDuration(x.ms)})`).join(', ')}`);
  }
  for (const f of s.failures.slice(0, 20))
    lines.push(`  FAILED ${f.source}:${f.path} [${f.code}] ${f.error}`);
  if (s.failures.length > 20) lines.push(`  … and ${s.failures.length - 20} more failures`);
  for (const p of s.parkedItems.slice(0, 20))
    lines.push(`  PARKED ${p.source}:${p.path} since ${p.since}: ${p.error}`);
  if (s.parked > Math.min(20, s.parkedItems.length))
    lines.push(
      `  … and ${s.parked - Math.min(20, s.parkedItems.length)} more parked (sluice history --state failed; sluice retry)`,
    );
  return redact(lines.join('\n'));
}

/** Summary for `--summary-json` (written to a file, not through the logger) and JSON logs. */
export function summaryJson(s: RunSummary): Record<string, unknown> {
  // The plan is a dry run's result; a real pass's would only repeat its item lines.
  const { plan, ...rest } = s;
  return redactDeep({ ...rest, durationMs: Math.round(s.durationMs), ...(s.dryRun ? { plan } : {}) });
}
