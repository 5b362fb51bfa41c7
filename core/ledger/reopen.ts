/**
 * Replaying parked items (`sluice retry`, `POST /api/pipelines/{name}/retry`): their `failed`
 * records are re-opened as `seen` (the same rank, see STATE_RANK), so the next pass takes them
 * like new files, reading the bytes again from the source.
 */
import { SluiceError } from '../errors.js';
import type { Ledger, LedgerRecord } from './ledger.js';

/** `SLUICE_E_USAGE` thrown when a named path has no parked record; `missing` says which. */
export class NothingParkedError extends SluiceError {
  constructor(
    readonly pipeline: string,
    readonly missing: string[],
  ) {
    super(
      'SLUICE_E_USAGE',
      `no parked (failed) record of ${missing.map((p) => `"${p}"`).join(', ')} in pipeline "${pipeline}"`,
      { context: { hint: 'see `sluice history <pipeline> --state failed`' } },
    );
  }
}

/**
 * Re-opens the `failed` records of `pipeline` named by `paths` (a path, or `source:path`; every
 * version of it), or all of them. Checks every path before writing anything: one unknown path
 * re-opens nothing. Leaves the ledger open (the caller owns it).
 */
export async function reopenParked(
  ledger: Ledger,
  pipeline: string,
  which: { paths: string[] } | { all: true },
): Promise<LedgerRecord[]> {
  const failed = await ledger.history(pipeline, { state: 'failed', limit: Number.MAX_SAFE_INTEGER });
  let chosen = failed;
  if (!('all' in which)) {
    const wanted = new Set(which.paths.map((p) => p.replace(/^\/+/, '')));
    const named = (r: LedgerRecord, p: string) => r.path === p || `${r.source}:${r.path}` === p;
    chosen = failed.filter((r) => [...wanted].some((p) => named(r, p)));
    const missing = [...wanted].filter((p) => !chosen.some((r) => named(r, p)));
    if (missing.length > 0) throw new NothingParkedError(pipeline, missing);
  }
  for (const r of chosen)
    ledger.record(pipeline, { source: r.source, path: r.path, version: r.version }, { state: 'seen' });
  await ledger.flush();
  return chosen;
}
