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
  return (def, { signal, abort, run, vars, events, listed, force, dryRun }) =>
    runClusterPass(def, {
      url,
      log: options.log,
      dryRun: dryRun ?? options.dryRun,
      force: force ?? options.force,
      signal,
      abort,
      run,
      vars,
      onListed: (total) => {
        // Items the listing found finalized are skipped without a job: counted now, so the
        // percent of the pass is right while the workers go.
        for (let i = 0; i < total.skipped; i++) events.skipped();
        listed?.({ items: total.items, bytes: total.bytes });
      },
      onRunEvent: (e) => {
        if (e.type === 'started') events.started?.({ source: e.source, path: e.path, size: e.size });
        else events.retried({ source: e.source, path: e.path, attempt: e.attempt, error: e.error });
      },
      onOutcome: (where, o, reported) => {
        const item = { source: where.source, path: where.path };
        if (o.outcome === 'ok') events.done({ ms: o.ms, bytesIn: o.bytesIn, bytesOut: o.bytesOut, ...item });
        else if (o.outcome === 'failed')
          events.failed({
            ...item,
            code: o.failure?.code ?? 'SLUICE_E_INTERNAL',
            error: o.failure?.error ?? 'failed',
          });
        else if (o.outcome === 'skipped') events.skipped(item);
        // A job of this run had its retries reported as they happened (with the reason).
        if (!reported) for (let i = 0; i < o.retries; i++) events.retried();
      },
    });
}
