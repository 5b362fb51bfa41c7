import { writeFileSync } from 'node:fs';
import type { PipelineDefinition } from '../../config/load.js';
import { formatSummary, summaryJson } from '../../observe/summary.js';
import { loadPipelineFile, runPipeline } from '../../runtime/run-file.js';
import type { RunSummary } from '../../runtime/runner.js';
import { type CommonOptions, expandPipelinePaths, makeLogger, parseVars } from '../common.js';
import { EXIT } from '../exit-codes.js';

interface RunOptions extends CommonOptions {
  dryRun?: boolean;
  force?: boolean;
  summaryJson?: string;
  once?: boolean;
  cluster?: string;
}

export async function runCommand(paths: string[], opts: RunOptions): Promise<number> {
  const files = expandPipelinePaths(paths);
  const vars = parseVars(opts.var);
  // Validate everything first: an invalid file runs nothing.
  const defs: PipelineDefinition[] = [];
  for (const f of files) defs.push(await loadPipelineFile(f, { vars, stateDir: opts.stateDir }));
  const cluster = (await import('../../cluster/url.js')).clusterUrl(opts.cluster);
  if (cluster) return (await import('../../cluster/cli-run.js')).clusterRunCommand(defs, cluster, opts);

  const { logger, format, close } = makeLogger(opts);
  const stop = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      logger.warn({ signal: sig }, 'stopping: no new items; in-flight items finish (signal again to abort now)');
      stop.abort();
    } else {
      logger.error({ signal: sig }, 'aborting now');
      process.exit(EXIT.interrupted);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const summaries: RunSummary[] = [];
  try {
    for (const def of defs) {
      if (stop.signal.aborted) break;
      const summary = await runPipeline(def, { dryRun: opts.dryRun, force: opts.force, log: logger, signal: stop.signal });
      summaries.push(summary);
      if (format === 'json') logger.info({ summary: summaryJson(summary) }, 'pass finished');
      else process.stdout.write(`${formatSummary(summary)}\n`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await close();
  }
  if (opts.summaryJson) {
    writeFileSync(opts.summaryJson, `${JSON.stringify(summaries.length === 1 ? summaryJson(summaries[0]) : summaries.map(summaryJson), null, 2)}\n`);
  }
  if (stop.signal.aborted) return EXIT.interrupted;
  return summaries.some((s) => s.failed > 0) ? EXIT.failed : EXIT.ok;
}
