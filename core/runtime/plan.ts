/**
 * The plan of a dry run: each item's fate — where it would land at each sink, the steps it went
 * through and the tidy-up that follows, or which filter left it and with which values.
 */
import { compileIncludeExclude } from '../glob.js';
import type { PlanEntry, RunSummary } from '../observe/run-summary.js';
import type { Item } from '../plugin-api.js';
import { formatDuration } from '../units.js';
import { appliedSteps } from './chain.js';
import type { SourceRuntime } from './driver.js';
import { sinkLocation } from './dry-run.js';
import type { Job, Stage } from './stage.js';

/** The plan entry of an item a dry run got through: every sink's location, the steps, the tidy-up. */
export function planDelivered(
  stage: Stage,
  source: SourceRuntime,
  item: Item,
  job: Job,
  finalizeOnly: boolean,
): PlanEntry {
  const destinations = job.leaves.map((l) => l.destination);
  return {
    source: source.name,
    path: item.path,
    destinations,
    action: finalizeOnly ? 'finalize-only' : 'write',
    ...(finalizeOnly
      ? {}
      : {
          bytes: job.leaves.reduce((n, l) => n + l.bytes, 0),
          steps: appliedSteps(job),
          sinks: destinations.flatMap((d) =>
            stage.driver.sinks.map((s) => ({ sink: s.ref.stepId, location: sinkLocation(s.ref, d) })),
          ),
        }),
    afterSuccess: source.afterSuccess,
  };
}

/** In a dry run, notes that `item` was left and why (`reason` is only worked out then). */
export function planFiltered(
  stage: Stage,
  summary: RunSummary,
  source: SourceRuntime,
  item: Pick<Item, 'path'>,
  reason: () => string,
): void {
  if (!stage.dryRun) return;
  summary.plan.push({
    source: source.name,
    path: item.path,
    destinations: [],
    action: 'filtered',
    reason: reason(),
  });
}

/** Which of the source's `include` / `exclude` left `path` out, with the patterns. */
export function includeExcludeReason(source: SourceRuntime, path: string): string {
  const { include, exclude } = source.ref.config as { include?: string[]; exclude?: string[] };
  if (include?.length && !compileIncludeExclude(include)(path))
    return `include: [${include.join(', ')}] (not matched)`;
  return `exclude: [${(exclude ?? []).join(', ')}]`;
}

/** `min_age: 10m (modified 2m ago)`. */
export function minAgeReason(source: SourceRuntime, item: Item): string {
  const age = item.mtime ? ` (modified ${formatDuration(Date.now() - item.mtime.getTime())} ago)` : '';
  return `min_age: ${String(source.ref.config.min_age)}${age}`;
}

/** `stable: still changing after 30.0s`. */
export function stableReason(source: SourceRuntime): string {
  return `stable: still changing after ${formatDuration(source.stable?.minMs ?? 0)}`;
}

/** The step that dropped a job's items (the last one they went through), with its config. */
export function droppedByReason(stage: Stage, job: Job): string {
  const id = appliedSteps(job).at(-1);
  const step = stage.driver.steps.find((s) => s.ref.stepId === id);
  if (!step) return 'dropped by a step';
  const values = Object.entries(step.ref.config).map(
    ([key, value]) => `${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`,
  );
  return `${step.ref.stepId} {${values.join(', ')}}`;
}
