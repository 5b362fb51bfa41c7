import { displayPath } from '../../config/connections.js';
import { SluiceError } from '../../errors.js';
import { redact } from '../../observe/redact.js';
import { CHECK_TIMEOUT_MS, type ConnectionCheck, checkConnections, label } from '../../runtime/preflight.js';
import { loadPipelineFile } from '../../sdk.js';
import { parseDuration } from '../../units.js';
import { type CommonOptions, expandPipelinePaths, makeLogger, parseVars, setFlags } from '../common.js';
import { EXIT } from '../exit-codes.js';

/**
 * `sluice check <pipelines…>`: connects to every source, sink and dead-letter sink of each
 * pipeline (log in, host key, the bucket, container or folder exists and is listable; a sink
 * writes a probe under a temporary name and removes it) and prints one line per connection:
 *
 *     ✓ source sftp acme@sftp.acme.example:22/outgoing — logged in as feed, /outgoing listed (12 entries)
 *     ✗ sink s3 cdr_store@cdrs — bucket "cdrs" does not exist — create it, or fix `bucket`
 *     - on_error local ./dead: no check (the plugin cannot check itself)
 *
 * Exit 0 when every check passed (a plugin without a check does not fail), 2 when one failed or a
 * pipeline is invalid. Nothing of the pipelines' files is read, moved or written. `--json`: the
 * same as one JSON document (`{ok, pipelines: [{file, name, connections: [...]}]}`).
 */
export async function checkCommand(
  paths: string[],
  opts: CommonOptions & { timeout?: string | number; json?: boolean },
): Promise<number> {
  const vars = parseVars(opts.var);
  const set = setFlags(opts.set);
  const timeoutMs = opts.timeout === undefined ? CHECK_TIMEOUT_MS : timeoutOf(opts.timeout);
  const files = expandPipelinePaths(paths);
  // Everything is validated first: an invalid file checks nothing.
  const defs = [];
  for (const file of files) defs.push(await loadPipelineFile(file, { vars, set }));
  const { logger, close } = makeLogger({ ...opts, logFile: undefined, quiet: opts.quiet ?? true });
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  let failed = 0;
  const report: Array<{ file: string; name: string; connections: ReturnType<typeof checkJson>[] }> = [];
  try {
    for (const def of defs) {
      if (defs.length > 1 && !opts.json) process.stdout.write(`${displayPath(def.file)} (${def.name})\n`);
      const checks = await checkConnections(def, {
        depth: 'full',
        log: logger,
        signal: stop.signal,
        timeoutMs,
      });
      failed += checks.filter((c) => c.outcome === 'failed').length;
      if (opts.json)
        report.push({ file: displayPath(def.file), name: def.name, connections: checks.map(checkJson) });
      else for (const c of checks) process.stdout.write(`${defs.length > 1 ? '  ' : ''}${line(c)}\n`);
    }
    if (opts.json)
      process.stdout.write(`${redact(JSON.stringify({ ok: failed === 0, pipelines: report }, null, 2))}\n`);
  } finally {
    process.off('SIGINT', onSignal);
    await close();
  }
  if (stop.signal.aborted) return EXIT.interrupted;
  return failed > 0 ? EXIT.usage : EXIT.ok;
}

function line(c: ConnectionCheck): string {
  switch (c.outcome) {
    case 'ok':
      return `✓ ${label(c)} — ${c.detail}`;
    case 'no_check':
      return `- ${label(c)}: no check (the plugin cannot check itself)`;
    case 'failed': {
      const hint = c.error?.context.hint;
      return redact(`✗ ${label(c)} — ${c.error?.message ?? 'failed'}${hint ? ` — ${hint}` : ''}`);
    }
  }
}

function checkJson(c: ConnectionCheck) {
  return {
    role: c.role,
    step: c.ref.stepId,
    plugin: c.ref.name,
    connection: c.ref.connection ?? null,
    target: c.target,
    outcome: c.outcome,
    ms: c.ms,
    ...(c.detail ? { detail: c.detail } : {}),
    ...(c.error ? { code: c.error.code, reason: c.error.message, hint: c.error.context.hint ?? null } : {}),
  };
}

/** `--timeout 20s`, `2m`; a bare number is seconds. */
function timeoutOf(value: string | number): number {
  try {
    const ms = parseDuration(typeof value === 'number' || /^\s*\d+\s*$/.test(value) ? `${value}s` : value);
    if (ms > 0) return ms;
  } catch {
    // reported below
  }
  throw new SluiceError('SLUICE_E_USAGE', `--timeout takes a duration such as 20s or 2m, got "${value}"`);
}
