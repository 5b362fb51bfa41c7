import { SluiceError } from '../../errors.js';
import type { Ledger, LedgerRecord, LedgerState } from '../../ledger/ledger.js';
import { SqliteLedger } from '../../ledger/sqlite.js';
import { redact } from '../../observe/redact.js';
import { loadPipelineFile } from '../../sdk.js';
import { type CommonOptions, parseVars, setFlags } from '../common.js';
import { EXIT } from '../exit-codes.js';

const STATES = ['seen', 'committed', 'finalized', 'failed'];
const FORMATS = ['json', 'csv'];
const CSV_COLUMNS = [
  'updated_at',
  'state',
  'source',
  'path',
  'version',
  'attempts',
  'destinations',
  'sha256',
  'error',
] as const;

export async function historyCommand(
  file: string,
  opts: CommonOptions & { limit?: string; state?: string; cluster?: string; format?: string },
): Promise<number> {
  if (opts.state && !STATES.includes(opts.state)) {
    throw new SluiceError('SLUICE_E_USAGE', `--state is one of ${STATES.join(', ')}`);
  }
  if (opts.format !== undefined && !FORMATS.includes(opts.format))
    throw new SluiceError('SLUICE_E_USAGE', `--format is one of ${FORMATS.join(', ')}`);
  const limit = opts.limit === undefined ? undefined : Number(opts.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
    throw new SluiceError('SLUICE_E_USAGE', `--limit takes a positive whole number, got "${opts.limit}"`);
  // `--set` as given to the runs: it may change the name or the state folder the records are under.
  const def = await loadPipelineFile(file, {
    vars: parseVars(opts.var),
    set: setFlags(opts.set),
    stateDir: opts.stateDir,
  });
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
      // An export is an audit trail: everything, unless a limit is asked for.
      limit: limit ?? (opts.format ? Number.MAX_SAFE_INTEGER : 50),
      state: opts.state as LedgerState | undefined,
    });
    // Redacted like every output: an error message may quote a URL with credentials.
    if (opts.format === 'csv') {
      process.stdout.write(`${CSV_COLUMNS.join(',')}\n`);
      for (const r of records) process.stdout.write(redact(`${csvRow(r)}\n`));
      return EXIT.ok;
    }
    if (opts.format === 'json') {
      for (const r of records) process.stdout.write(redact(`${JSON.stringify(exported(r))}\n`));
      return EXIT.ok;
    }
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

/** One record as the export gives it (JSON lines; the CSV has the same columns). */
function exported(r: LedgerRecord) {
  return {
    updated_at: r.updatedAt.toISOString(),
    state: r.state,
    pipeline: r.pipeline,
    source: r.source,
    path: r.path,
    version: r.version,
    attempts: r.attempts,
    destinations: r.destinations,
    sha256: r.content ?? null,
    error: r.error ?? null,
  };
}

function csvRow(r: LedgerRecord): string {
  const e = exported(r);
  return CSV_COLUMNS.map((column) => {
    const value = e[column];
    return csvCell(Array.isArray(value) ? value.join(' ') : value === null ? '' : String(value));
  }).join(',');
}

/**
 * RFC 4180 quoting. A cell a spreadsheet would run as a formula (a partner's file named
 * `=HYPERLINK(…)`) gets a leading `'`, as OWASP advises for CSV exports.
 */
function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\n\r']/.test(safe) || safe !== value ? `"${safe.replace(/"/g, '""')}"` : safe;
}
