import { writeFileSync } from 'node:fs';
import type { PipelineDefinition } from '../../config/load.js';
import { scheduleOf } from '../../config/trigger.js';
import { SluiceError } from '../../errors.js';
import { summaryJson } from '../../observe/summary.js';
import { disposeChecked } from '../../runtime/checked-instances.js';
import type { RunSummary } from '../../runtime/runner.js';
import { PipelineSupervisor } from '../../runtime/supervisor.js';
import { builtinRegistry, loadPipelineFile } from '../../sdk.js';
import { expandPipelinePaths, parseVars, poolThreadEntry, setFlags } from '../common.js';
import { EXIT } from '../exit-codes.js';
import { Host, type HostOptions } from './host.js';

interface RunOptions extends HostOptions {
  dryRun?: boolean;
  force?: boolean;
  summaryJson?: string;
  once?: boolean;
  cluster?: string;
  /** false with --no-check: no pre-flight check of the connections at start. */
  check?: boolean;
}

/**
 * `sluice run`: one pass per pipeline (in order) when none has a trigger or with `--once`;
 * otherwise every pipeline runs on its trigger, side by side, until SIGINT/SIGTERM.
 * `--cluster URL`: the same, each pass listing into Redis and waiting for the workers.
 */
export async function runCommand(paths: string[], opts: RunOptions): Promise<number> {
  const files = expandPipelinePaths(paths);
  const vars = parseVars(opts.var);
  const set = setFlags(opts.set);
  // Validate everything first: an invalid file runs nothing.
  const defs: PipelineDefinition[] = [];
  for (const f of files) {
    const def = await loadPipelineFile(f, { vars, set, stateDir: opts.stateDir });
    scheduleOf(def.trigger);
    // Two files of one pipeline on one state folder share ledger records: run one after the
    // other, the second would take the first one's items for its own and skip them.
    const twin = defs.find((d) => d.name === def.name && d.stateDir === def.stateDir);
    if (twin) {
      throw new SluiceError(
        'SLUICE_E_USAGE',
        `${twin.file} and ${def.file} both declare pipeline "${def.name}" on state folder ${def.stateDir}`,
        {
          context: { hint: 'give each file its own `name:` (or its own state folder)' },
        },
      );
    }
    defs.push(def);
  }
  // With --cluster, passes list into Redis and wait for the workers; the rest is the same.
  const cluster = (await import('../../cluster/url.js')).clusterUrl(opts.cluster);

  const host = await Host.create('run', opts);
  const remote = cluster
    ? (await import('../../cluster/passes.js')).clusterPasses(cluster, {
        log: host.logger,
        dryRun: opts.dryRun,
        force: opts.force,
      })
    : undefined;
  const summaries: RunSummary[] = [];
  const onSummary = (summary: RunSummary) => {
    summaries.push(summary);
    host.reportSummary(summary);
    if (opts.summaryJson) writeSummaries(opts.summaryJson, summaries);
  };
  const supervise = (def: PipelineDefinition) => {
    const supervisor = new PipelineSupervisor(def.file, {
      log: host.logger,
      vars,
      set,
      stateDir: opts.stateDir,
      once: opts.once,
      dryRun: opts.dryRun,
      force: opts.force,
      metrics: host.metrics,
      trackProgress: host.progress !== undefined || opts.metricsPort !== undefined,
      remote,
      preflight: opts.check !== false,
      registry: builtinRegistry(),
      pool: poolThreadEntry(),
      onSummary,
    });
    host.supervisors.push(supervisor);
    return supervisor;
  };
  const stopOnSignal = new Promise<void>((resolve) =>
    host.stopping.signal.addEventListener('abort', () => resolve(), { once: true }),
  );

  let error: unknown;
  try {
    const scheduled =
      !opts.once && defs.some((d) => d.trigger?.every !== undefined || d.trigger?.cron !== undefined);
    if (scheduled) {
      const supervisors = defs.map(supervise);
      for (const [i, s] of supervisors.entries()) await s.start(defs[i]);
      // Scheduled pipelines run until a signal; one-shot ones among them end on their own.
      await Promise.race([stopOnSignal, Promise.all(supervisors.map((s) => s.done))]);
    } else {
      for (const def of defs) {
        if (host.stopping.signal.aborted) break;
        const s = supervise(def);
        await s.start(def);
        await Promise.race([stopOnSignal, s.done]);
        await s.stop();
        await s.done;
      }
    }
  } catch (err) {
    error = err;
  } finally {
    await host.stopAll();
    // Instances a start check kept for a run that never took them (its start failed at the lock).
    await disposeChecked();
    await host.close();
  }
  if (error) throw error;
  if (opts.summaryJson) writeSummaries(opts.summaryJson, summaries);
  if (host.aborted) return EXIT.interrupted;
  // A cluster pass stopped by a signal did not see its items finish (they go on on the workers).
  if (cluster && summaries.some((s) => s.interrupted)) return EXIT.interrupted;
  // A report not written fails nothing delivered, but what was asked for did not happen.
  return summaries.some((s) => s.failed > 0 || (s.report !== undefined && 'error' in s.report))
    ? EXIT.failed
    : EXIT.ok;
}

function writeSummaries(file: string, summaries: RunSummary[]): void {
  const json = summaries.length === 1 ? summaryJson(summaries[0]) : summaries.map(summaryJson);
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
}
