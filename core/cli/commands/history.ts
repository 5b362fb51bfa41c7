import { SluiceError } from '../../errors.js';
import type { Ledger, LedgerState } from '../../ledger/ledger.js';
import { SqliteLedger } from '../../ledger/sqlite.js';
import { loadPipelineFile } from '../../sdk.js';
import { type CommonOptions, parseVars } from '../common.js';
import { EXIT } from '../exit-codes.js';

const STATES = ['seen', 'committed', 'finalized', 'failed'];

export async function historyCommand(
  file: string,
  opts: CommonOptions & { limit?: string; state?: string; cluster?: string },
): Promise<number> {
  if (opts.state && !STATES.includes(opts.state)) {
    throw new SluiceError('SLUICE_E_USAGE', `--state is one of ${STATES.join(', ')}`);
  }
  const def = await loadPipelineFile(file, { vars: parseVars(opts.var), stateDir: opts.stateDir });
  const { clusterUrl, redactUrl } = await import('../../cluster/url.js');
  const url = clusterUrl(opts.cluster);
  let ledger: Ledger;
  if (url) {
    const { RedisLedger } = await import('../../ledger/redis.js');
    ledger = RedisLedger.connect(url);
  } else {
    // Looking must not create the state folder or a ledger.
    ledger = await SqliteLedger.open(def.stateDir, { readOnly: true });
  }
  try {
    const records = await ledger.history(def.name, {
      limit: opts.limit ? Number(opts.limit) : 50,
      state: opts.state as LedgerState | undefined,
    });
    if (opts.logFormat === 'json') {
      for (const r of records) process.stdout.write(`${JSON.stringify(r)}\n`);
      return EXIT.ok;
    }
    if (records.length === 0)
      process.stdout.write(`no items recorded for ${def.name} in ${url ? redactUrl(url) : def.stateDir}\n`);
    for (const r of records) {
      const where = r.destinations.length ? ` → ${r.destinations.join(', ')}` : '';
      const why = r.error ? `  (${r.error})` : '';
      process.stdout.write(
        `${r.updatedAt.toISOString()}  ${r.state.padEnd(9)}  ${r.source}:${r.path}${where}${why}\n`,
      );
    }
    return EXIT.ok;
  } finally {
    await ledger.close();
  }
}
