import { runPipelineFile } from '../../sdk.js';
import { formatBytes } from '../../units.js';
import { type CommonOptions, makeLogger, parseVars, setFlags } from '../common.js';
import { EXIT } from '../exit-codes.js';

/**
 * Dry run that prints every source → destination mapping. It writes nothing: the ledger is read
 * only, the runner's temp files go to the OS temp folder, and no log file is opened (plan has no
 * --log-file; a defaults file's `log_file` is for the runs).
 */
export async function planCommand(
  file: string,
  opts: CommonOptions & { force?: boolean; cluster?: string },
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
    const out: string[] = [];
    for (const e of summary.plan) {
      const from = `${e.source}:${e.path}`;
      switch (e.action) {
        case 'write':
          for (const d of e.destinations) out.push(`${from} → ${d}`);
          if (e.destinations.length === 0) out.push(`${from} → (nothing to write)`);
          // A step whose `when` did not select the item is missing here: the plan says which ran.
          if (e.steps?.length) out.push(`  steps: ${e.steps.join(', ')}`);
          break;
        case 'skip-done':
          out.push(`${from} — skip: done before`);
          break;
        case 'finalize-only':
          out.push(`${from} — committed before; only after_success would run`);
          break;
        case 'filtered':
          out.push(`${from} — filtered out`);
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
    const writes = summary.plan.filter((e) => e.action === 'write');
    out.push(
      `${writes.length} item(s) to process (${summary.filesWritten} file(s), ${formatBytes(summary.bytesOut)}), ${summary.skipped} done before, ${summary.parked} parked, ${summary.filtered} filtered, ${summary.failed} would fail`,
    );
    process.stdout.write(`${out.join('\n')}\n`);
    return summary.failed > 0 ? EXIT.failed : EXIT.ok;
  } finally {
    await ledger?.close();
    await close();
  }
}
