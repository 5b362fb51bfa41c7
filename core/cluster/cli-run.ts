/**
 * `sluice run --cluster URL`: one pass per pipeline over the cluster, in order, whatever the
 * trigger says (a scheduled cluster lister is `sluice watch`'s job). Prints each summary and
 * exits with the usual codes: 0 all done, 1 some items failed, 130 interrupted.
 */
import { writeFileSync } from 'node:fs';
import { makeLogger } from '../cli/common.js';
import { EXIT } from '../cli/exit-codes.js';
import type { PipelineDefinition } from '../config/load.js';
import { formatSummary, summaryJson } from '../observe/summary.js';
import type { RunSummary } from '../runtime/runner.js';
import { runClusterPass } from './run.js';

export interface ClusterRunCliOptions {
  dryRun?: boolean;
  force?: boolean;
  summaryJson?: string;
  logFormat?: string;
  logFile?: string;
  quiet?: boolean;
}

export async function clusterRunCommand(defs: PipelineDefinition[], url: string, opts: ClusterRunCliOptions): Promise<number> {
  const { logger, format, close } = makeLogger(opts);
  const stop = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals === 1) {
      logger.warn({ signal: sig }, 'stopping: no more listing or waiting; queued items still run on the workers');
      stop.abort();
    } else {
      process.exit(EXIT.interrupted);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const summaries: RunSummary[] = [];
  try {
    for (const def of defs) {
      if (stop.signal.aborted) break;
      const summary = await runClusterPass(def, { url, log: logger, dryRun: opts.dryRun, force: opts.force, signal: stop.signal });
      summaries.push(summary);
      if (format === 'json') logger.info({ pipeline: def.name, summary: summaryJson(summary) }, 'pass finished');
      else process.stdout.write(`${formatSummary(summary)}\n`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await close();
  }
  if (opts.summaryJson) {
    const json = summaries.length === 1 ? summaryJson(summaries[0]) : summaries.map(summaryJson);
    writeFileSync(opts.summaryJson, `${JSON.stringify(json, null, 2)}\n`);
  }
  if (stop.signal.aborted) return EXIT.interrupted;
  return summaries.some((s) => s.failed > 0) ? EXIT.failed : EXIT.ok;
}
