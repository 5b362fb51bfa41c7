import { formatPlan, planJson } from '../../observe/plan.js';
import { runPipelineFile } from '../../sdk.js';
import { type CommonOptions, makeLogger, parseVars, setFlags } from '../common.js';
import { EXIT } from '../exit-codes.js';

/**
 * Dry run that prints what each item would do: every source → destination mapping with each
 * sink's location, the steps and the tidy-up, or which filter leaves it and why (`--json`: the
 * same as JSON). It writes nothing: the ledger is read only, the runner's temp files go to the
 * OS temp folder, and no log file is opened (plan has no --log-file; a defaults file's
 * `log_file` is for the runs).
 */
export async function planCommand(
  file: string,
  opts: CommonOptions & { force?: boolean; cluster?: string; json?: boolean },
): Promise<number> {
  const { logger, close } = makeLogger({ ...opts, logFile: undefined, quiet: opts.quiet ?? true });
  // With --cluster, what is "done before" comes from the cluster's ledger.
  const url = (await import('../../cluster/url.js')).clusterUrl(opts.cluster);
  const ledger = url ? (await import('../../ledger/redis.js')).RedisLedger.connect(url) : undefined;
  try {
    const summary = await runPipelineFile(file, {
      vars: parseVars(opts.var),
      set: setFlags(opts.set),
      stateDir: opts.stateDir,
      force: opts.force,
      dryRun: true,
      log: logger,
      ledger,
    });
    const text = opts.json ? JSON.stringify(planJson(summary), null, 2) : formatPlan(summary);
    process.stdout.write(`${text}\n`);
    return summary.failed > 0 ? EXIT.failed : EXIT.ok;
  } finally {
    await ledger?.close();
    await close();
  }
}
