/**
 * Cluster mode as the supervisor sees it: a pass lists into the queue and waits for the workers,
 * and each job's outcome is counted as it comes in. The CLI injects this into the supervisor
 * (`--cluster URL`); the runtime itself knows nothing of Redis.
 */
import type { Logger } from '../observe/logger.js';
import type { RemotePasses } from '../runtime/pass-modes.js';
import { runClusterPass } from './run.js';

export function clusterPasses(
  url: string,
  options: { log: Logger; dryRun?: boolean; force?: boolean },
): RemotePasses {
  return (def, { signal, events, force, dryRun }) =>
    runClusterPass(def, {
      url,
      log: options.log,
      dryRun: dryRun ?? options.dryRun,
      force: force ?? options.force,
      signal,
      onOutcome: (where, o) => {
        if (o.outcome === 'ok') events.done({ ms: o.ms, bytesIn: o.bytesIn, bytesOut: o.bytesOut });
        else if (o.outcome === 'failed')
          events.failed({
            ...where,
            code: o.failure?.code ?? 'SLUICE_E_INTERNAL',
            error: o.failure?.error ?? 'failed',
          });
        else if (o.outcome === 'skipped') events.skipped();
        for (let i = 0; i < o.retries; i++) events.retried();
      },
    });
}
