/**
 * A dry run (`sluice plan`, `--dry-run`) is the ordinary run with two parts swapped: sinks that
 * only count the bytes they are given, and a ledger that reads what was done and records
 * nothing. Every stage runs as it would; nothing is written, created or tidied.
 */
import type { Ledger } from '../ledger/ledger.js';
import type { SinkInstance } from '../plugin-api.js';

/** The sink of a dry run: reads the bytes to count them, stores nothing. */
export function countingSink(): SinkInstance {
  return {
    async write(req) {
      let size = 0;
      for await (const chunk of req.body) size += (chunk as Buffer).length;
      return { location: req.destination, size };
    },
  };
}

/** The ledger a dry run sees: what was done before, and nothing it records. */
export function readOnlyLedger(ledger: Ledger): Ledger {
  return {
    get: (pipeline, id) => ledger.get(pipeline, id),
    history: (pipeline, options) => ledger.history(pipeline, options),
    doneByName: (pipeline, source, path) => ledger.doneByName(pipeline, source, path),
    doneByContent: (pipeline, sha256) => ledger.doneByContent(pipeline, sha256),
    prune: async () => 0,
    record: () => undefined,
    flush: async () => undefined,
    close: () => ledger.close(),
  };
}
