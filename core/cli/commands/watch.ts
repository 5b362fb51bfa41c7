import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CONFIG_FILE_NAMES } from '../../config/connections.js';
import { SluiceError } from '../../errors.js';
import { disposeChecked } from '../../runtime/checked-instances.js';
import type { RunSummary } from '../../runtime/runner.js';
import { PipelineSupervisor } from '../../runtime/supervisor.js';
import { builtinRegistry } from '../../sdk.js';
import { isPipelineFileName, parseVars, poolThreadEntry, setFlags } from '../common.js';
import { EXIT } from '../exit-codes.js';
import { Host, type HostOptions } from './host.js';

interface WatchOptions extends HostOptions {
  debounce?: string | number;
  cluster?: string;
  /** false with --no-check: no pre-flight check of the connections at start. */
  check?: boolean;
  /** The defaults file in effect (applyConfigFile puts the one it found here). */
  config?: string;
}

const isPipelineFile = (path: string) => isPipelineFileName(basename(path));

/**
 * `sluice watch <dir|files…>`: runs every pipeline file on its trigger and reloads each one
 * when it changes (debounced per file). An invalid edit is reported and the running version
 * keeps running; a valid one drains the old version, then starts the new one. A new file
 * starts a pipeline; a deleted one drains and stops it. Ends on SIGINT/SIGTERM.
 * With `--cluster`, passes list into Redis and workers run the items; a reloaded version
 * reaches the workers with its first pass (see docs/scale-out.md).
 */
export async function watchCommand(paths: string[], opts: WatchOptions): Promise<number> {
  const vars = parseVars(opts.var);
  const debounceMs = opts.debounce === undefined ? 300 : Number(opts.debounce);
  if (!Number.isFinite(debounceMs) || debounceMs < 0)
    throw new SluiceError('SLUICE_E_USAGE', `--debounce takes milliseconds, got "${opts.debounce}"`);
  const targets = paths.map((p) => {
    if (!existsSync(p)) throw new SluiceError('SLUICE_E_USAGE', `no such file or folder: ${p}`);
    return { path: resolve(p), dir: statSync(p).isDirectory() };
  });
  const explicitFiles = new Set(targets.filter((t) => !t.dir).map((t) => t.path));
  const folders = targets.filter((t) => t.dir).map((t) => t.path);
  // The connections file: the defaults file, else each pipeline folder's sluice.config.yaml.
  const connectionFiles = new Set(
    opts.config
      ? [resolve(opts.config)]
      : [...folders, ...[...explicitFiles].map((f) => dirname(f))].flatMap((d) =>
          CONFIG_FILE_NAMES.map((n) => join(d, n)),
        ),
  );
  const watched = (abs: string) =>
    explicitFiles.has(abs) ||
    connectionFiles.has(abs) ||
    (isPipelineFile(abs) && folders.some((d) => resolve(abs, '..') === d));

  // With --cluster this process is the pipelines' lister: passes enqueue, `sluice worker`s run.
  const cluster = (await import('../../cluster/url.js')).clusterUrl(opts.cluster);
  const host = await Host.create('watch', opts);
  const log = host.logger;
  const remote = cluster
    ? (await import('../../cluster/passes.js')).clusterPasses(cluster, { log })
    : undefined;
  const byFile = new Map<string, PipelineSupervisor>();
  const timers = new Map<string, NodeJS.Timeout>();
  const onSummary = (summary: RunSummary) => host.reportSummary(summary);

  // One change at a time per file, in order; different files change independently.
  const queues = new Map<string, Promise<void>>();
  const enqueue = (file: string, job: () => Promise<void>) => {
    const next = (queues.get(file) ?? Promise.resolve())
      .then(job)
      .catch((err) => log.error({ file, err: String(err) }, 'watch: unexpected error'));
    queues.set(file, next);
  };

  const appeared = async (file: string) => {
    if (host.stopping.signal.aborted) return;
    const existing = byFile.get(file);
    if (existing) {
      const r = await existing.reload();
      if (r.result === 'ok')
        log.info({ pipeline: existing.name, file: basename(file), hash: r.hash }, 'reload applied');
      return;
    }
    const supervisor = new PipelineSupervisor(file, {
      log,
      vars,
      set: setFlags(opts.set),
      stateDir: opts.stateDir,
      metrics: host.metrics,
      trackProgress: true,
      announce: true,
      remote,
      preflight: opts.check !== false,
      registry: builtinRegistry(),
      pool: poolThreadEntry(),
      onSummary,
      nameTakenBy: (name, self) =>
        [...byFile.values()].find((s) => s.file !== self && s.pipelineName === name)?.file,
    });
    byFile.set(file, supervisor);
    host.supervisors.push(supervisor);
    // The first load goes through reload(): an invalid new file is reported like an invalid edit.
    await supervisor.reload();
  };
  const removed = async (file: string) => {
    const supervisor = byFile.get(file);
    if (!supervisor) return;
    byFile.delete(file);
    log.info(
      { pipeline: supervisor.name, file: basename(file) },
      'pipeline file removed: draining and stopping it',
    );
    await supervisor.stop();
    host.metrics?.reload(supervisor.name, 'removed');
    host.supervisors.splice(host.supervisors.indexOf(supervisor), 1);
  };
  const changed = (file: string) => {
    // An edit of the connections reloads every pipeline; one whose connections did not change
    // loads as the same version and keeps running.
    if (connectionFiles.has(file)) {
      for (const pipeline of byFile.keys()) changed(pipeline);
      return;
    }
    clearTimeout(timers.get(file));
    timers.set(
      file,
      setTimeout(() => {
        timers.delete(file);
        enqueue(file, () => (existsSync(file) ? appeared(file) : removed(file)));
      }, debounceMs),
    );
  };

  const { watch } = await import('chokidar');
  const watcher = watch([...folders, ...explicitFiles, ...connectionFiles], {
    depth: 0,
    ignoreInitial: false,
    ignored: (path: string, stats?: { isFile(): boolean }) =>
      stats?.isFile() === true && !watched(resolve(path)),
  });
  watcher.on('add', (p) => changed(resolve(p)));
  watcher.on('change', (p) => changed(resolve(p)));
  watcher.on('unlink', (p) => changed(resolve(p)));
  watcher.on('error', (err) => log.error({ err: String(err) }, 'watch: file watcher error'));
  await new Promise<void>((r) => watcher.once('ready', () => r()));
  log.info({ watching: targets.map((t) => t.path) }, 'watching pipeline files');

  await new Promise<void>((r) => host.stopping.signal.addEventListener('abort', () => r(), { once: true }));
  for (const t of timers.values()) clearTimeout(t);
  await watcher.close();
  await Promise.allSettled(queues.values());
  await host.stopAll();
  // Instances a start check kept for a version that never ran (its start failed at the lock).
  await disposeChecked();
  await host.close();
  // A long-running watcher that drained cleanly exits 0; failed items are in the ledger and logs.
  return host.aborted ? EXIT.interrupted : EXIT.ok;
}
