/**
 * The plan of a dry run as people read it (`sluice plan`, `run --dry-run`) and as JSON
 * (`plan --json`): each item's fate, then the totals. Redacted: paths come from listings.
 */
import { formatBytes } from '../units.js';
import { redact, redactDeep } from './redact.js';
import type { PlanEntry, RunSummary } from './run-summary.js';

/** What the plan counts: items to process, files they make, and why the rest are left. */
export interface PlanTotals {
  process: number;
  files: number;
  bytes: number;
  doneBefore: number;
  parked: number;
  filtered: number;
  wouldFail: number;
}

export function planTotals(s: RunSummary): PlanTotals {
  const count = (action: PlanEntry['action']) => s.plan.filter((e) => e.action === action).length;
  return {
    process: count('write'),
    files: s.filesWritten,
    bytes: s.bytesOut,
    doneBefore: s.skipped,
    parked: s.parked,
    // Items left by include/exclude are in the plan, not in the pass's `filtered` count.
    filtered: Math.max(count('filtered'), s.filtered),
    wouldFail: s.failed,
  };
}

/** The tidy-up an item gets once delivered, in words. */
export function afterSuccessText(action: PlanEntry['afterSuccess']): string {
  if (action === undefined || action === 'keep') return 'source kept';
  if (action === 'delete') return 'source deleted';
  return `source moved to ${action.move_to}`;
}

/** One block of lines per item, then the totals line. */
export function formatPlan(s: RunSummary): string {
  const out: string[] = [];
  for (const e of s.plan) {
    const from = `${e.source}:${e.path}`;
    switch (e.action) {
      case 'write':
        for (const d of e.destinations) out.push(`${from} → ${d}`);
        if (e.destinations.length === 0) out.push(`${from} → (nothing to write)`);
        // A step whose `when` did not select the item is missing here: the plan says which ran.
        if (e.steps?.length) out.push(`  steps: ${e.steps.join(', ')}`);
        for (const to of e.sinks ?? []) out.push(`  to: ${to.sink} ${to.location}`);
        if (e.destinations.length > 0) out.push(`  then: ${afterSuccessText(e.afterSuccess)}`);
        break;
      case 'skip-done':
        out.push(`${from} — skip: done before`);
        break;
      case 'finalize-only':
        out.push(
          `${from} — committed before; only after_success would run (${afterSuccessText(e.afterSuccess)})`,
        );
        break;
      case 'filtered':
        out.push(`${from} — filtered out${e.reason ? `: ${e.reason}` : ''}`);
        break;
      case 'failed':
        out.push(`${from} — would fail: ${e.error}`);
        break;
      case 'parked':
        out.push(
          `${from} — parked (failed before: ${e.error}); held back until it changes or \`sluice retry\``,
        );
        break;
    }
  }
  const t = planTotals(s);
  out.push(
    `${t.process} item(s) to process (${t.files} file(s) would be written, ${formatBytes(t.bytes)}), ${t.doneBefore} done before, ${t.parked} parked, ${t.filtered} filtered, ${t.wouldFail} would fail`,
  );
  return redact(out.join('\n'));
}

/** `sluice plan --json`: the items and the totals. */
export function planJson(s: RunSummary): Record<string, unknown> {
  return redactDeep({ pipeline: s.pipeline, items: s.plan, totals: planTotals(s) });
}
