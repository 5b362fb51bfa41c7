/**
 * `sluice retry <pipeline> [--all | PATH…]`: replays items parked after failing for good (and
 * so dead-lettered, when the pipeline has `on_error`) through the pipeline as it is now. Their
 * `failed` records are re-opened (ledger/reopen.ts, shared with the control API's retry), then
 * one ordinary pass runs and takes them like new files. Bytes are read again from the source, not from the
 * dead-letter copy. When another process runs the pipeline (SLUICE_E_LOCKED), the re-opened
 * records are left for its next pass.
 */
import { SluiceError } from '../../errors.js';
import type { Ledger, LedgerRecord } from '../../ledger/ledger.js';
import { reopenParked } from '../../ledger/reopen.js';
import { SqliteLedger } from '../../ledger/sqlite.js';
import { loadPipelineFile } from '../../sdk.js';
import { parseVars } from '../common.js';
import { EXIT } from '../exit-codes.js';
import { runCommand } from './run.js';

type RetryOptions = Parameters<typeof runCommand>[1] & { all?: boolean };

export async function retryCommand(file: string, paths: string[], opts: RetryOptions): Promise<number> {
  if (opts.all === true && paths.length > 0)
    throw new SluiceError('SLUICE_E_USAGE', 'give either --all or paths to retry, not both');
  if (opts.all !== true && paths.length === 0)
    throw new SluiceError(
      'SLUICE_E_USAGE',
      'name the paths to retry (as `sluice history` shows them), or --all',
    );
  const def = await loadPipelineFile(file, { vars: parseVars(opts.var), stateDir: opts.stateDir });
  const ledger = await openLedger(def.stateDir, opts.cluster);
  let reopened: LedgerRecord[];
  try {
    reopened = await reopenParked(ledger, def.name, opts.all === true ? { all: true } : { paths });
  } finally {
    await ledger.close();
  }
  process.stdout.write(
    `${def.name}: ${reopened.length} parked item${reopened.length === 1 ? '' : 's'} re-opened${
      reopened.length > 0 ? `: ${reopened.map((r) => `${r.source}:${r.path}`).join(', ')}` : ''
    }\n`,
  );
  if (reopened.length === 0) return EXIT.ok;
  try {
    return await runCommand([file], { ...opts, once: true });
  } catch (err) {
    if (!(err instanceof SluiceError && err.code === 'SLUICE_E_LOCKED')) throw err;
    process.stdout.write(
      `${def.name} is running in another process: its next pass takes the re-opened items\n`,
    );
    return EXIT.ok;
  }
}

async function openLedger(stateDir: string, cluster: string | undefined): Promise<Ledger> {
  const url = (await import('../../cluster/url.js')).clusterUrl(cluster);
  if (!url) return SqliteLedger.open(stateDir);
  const { RedisLedger } = await import('../../ledger/redis.js');
  return RedisLedger.connect(url);
}
