/**
 * A dry run (`sluice plan`, `--dry-run`) is the ordinary run with two parts swapped: sinks that
 * only count the bytes they are given, and a ledger that reads what was done and records
 * nothing. Every stage runs as it would; nothing is written, created or tidied (plan.ts says
 * what each item would do).
 */
import type { PluginRef } from '../config/plugin-ref.js';
import type { Ledger } from '../ledger/ledger.js';
import type { SinkInstance, SinkPlugin } from '../plugin-api.js';
import { HashTap } from '../streams.js';

/**
 * The sink of a dry run: stores nothing. It reads the bytes to count them (and hash them, for
 * `verify: sha256`), except for an item the real sink would copy server-side: that one is
 * counted from its listed size, as the real run would never read it either.
 */
export function countingSink(ref: PluginRef): SinkInstance {
  const copies = (ref.plugin as SinkPlugin).copies;
  const hashes = ref.config.verify === 'sha256';
  return {
    async write(req) {
      const tap = new HashTap(hashes && req.sha256 === undefined ? 'sha256' : null);
      for await (const _ of req.body.pipe(tap)) {
        /* counted by the tap */
      }
      const sha256 = hashes ? (req.sha256 ?? tap.digest()) : undefined;
      return { location: sinkLocation(ref, req.destination), size: tap.bytes, ...(sha256 ? { sha256 } : {}) };
    },
    async copy(item, destination) {
      if (item.size === undefined || !copies?.(ref.config as never, item)) return null;
      return { location: sinkLocation(ref, destination), size: item.size };
    },
  };
}

/**
 * Where a destination lands at a sink, for people: under the sink's root as its config writes
 * it (`archive/in/2026/x.csv` for an s3 bucket and prefix, `files.acme.com:/in/x.csv` for sftp).
 */
export function sinkLocation(ref: PluginRef, destination: string): string {
  const text = (key: string) => {
    const v = ref.config[key];
    return typeof v === 'string' && v !== '' ? v.replace(/\/+$/, '') : undefined;
  };
  const root = [text('bucket') ?? text('container'), text('prefix') ?? text('path') ?? text('url')];
  const host = text('host');
  const where = [...root.filter((p) => p !== undefined), destination].join('/');
  return `${host ? `${host}:` : ''}${where}`;
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
