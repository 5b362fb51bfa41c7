import type { PipelineDefinition } from '../../config/load.js';
import { SluiceError } from '../../errors.js';
import { builtinRegistry, loadPipelineFile } from '../../sdk.js';
import { type CommonOptions, expandPipelinePaths, makeLogger, parseVars, setFlags } from '../common.js';
import { EXIT } from '../exit-codes.js';

interface WorkerOptions extends CommonOptions {
  cluster?: string;
  concurrency?: string;
}

/** `sluice worker --cluster URL <file|dir>…`: processes the pipelines' queued items until stopped. */
export async function workerCommand(paths: string[], opts: WorkerOptions): Promise<number> {
  const { clusterUrl } = await import('../../cluster/url.js');
  const url = clusterUrl(opts.cluster);
  if (!url)
    throw new SluiceError('SLUICE_E_USAGE', 'sluice worker needs --cluster redis://… (or SLUICE_CLUSTER)');
  const concurrency = opts.concurrency === undefined ? undefined : Number(opts.concurrency);
  if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency > 0)) {
    throw new SluiceError(
      'SLUICE_E_USAGE',
      `--concurrency takes a positive integer, got "${opts.concurrency}"`,
    );
  }
  const vars = parseVars(opts.var);
  // `--set` as on the lister: the same overrides give the same version (hash) on both. Versions
  // fetched from Redis are the lister's text, overrides included.
  const set = setFlags(opts.set);
  const defs: PipelineDefinition[] = [];
  for (const f of expandPipelinePaths(paths))
    defs.push(await loadPipelineFile(f, { vars, set, stateDir: opts.stateDir }));

  const { logger, close } = makeLogger(opts);
  const stop = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals === 1) {
      logger.warn(
        { signal: sig },
        'stopping: active items finish (signal again to abort now; their jobs go to other workers)',
      );
      stop.abort();
    } else {
      process.exit(EXIT.interrupted);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const { runClusterWorker } = await import('../../cluster/worker.js');
    await runClusterWorker({
      url,
      defs,
      registry: builtinRegistry(),
      vars,
      stateDir: opts.stateDir,
      log: logger,
      concurrency,
      signal: stop.signal,
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await close();
  }
  return EXIT.ok;
}
