/**
 * What `sluice run` and `sluice watch` share while pipelines keep running: logging (JSON off a
 * TTY, human lines + live progress on one, rotated log files, an errors-only file), metrics and
 * the status server, and signals (first: stop intake and drain; second: abort now).
 */
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { SluiceError } from '../../errors.js';
import { createLogger, type LogFormat, type LogLevel, parseRotation } from '../../observe/log.js';
import type { Logger } from '../../observe/logger.js';
import type { SluiceMetrics } from '../../observe/metrics.js';
// Types only: the live progress (log-update) and the status server (node:http, the status
// page) are imported when a run shows or serves them, not on every start.
import type { ProgressDisplay } from '../../observe/progress.js';
import type { StatusServer } from '../../observe/status-server.js';
import { formatSummary, summaryJson } from '../../observe/summary.js';
import type { RunSummary } from '../../runtime/runner.js';
import type { PipelineSupervisor } from '../../runtime/supervisor.js';
import { type CommonOptions, logLevelOf } from '../common.js';

export interface HostOptions extends CommonOptions {
  errorLog?: string;
  logRotate?: string;
  logKeep?: string | number;
  logFileFormat?: string;
  metricsPort?: string | number;
  metricsHost?: string;
  apiTokenFile?: string;
  progress?: boolean;
}

const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export class Host {
  readonly supervisors: PipelineSupervisor[] = [];
  /** Prometheus metrics: only when served (`--metrics-port`; prom-client is not loaded otherwise). */
  metrics: SluiceMetrics | undefined;
  readonly logger: Logger;
  readonly format: LogFormat;
  readonly progress: ProgressDisplay | undefined;
  /** Aborted by the first SIGINT/SIGTERM. */
  readonly stopping = new AbortController();
  /** Set by the second signal. */
  aborted = false;
  private server: StatusServer | undefined;
  private readonly closeLog: () => Promise<void>;
  private readonly toFile: (fields: Record<string, unknown>, msg: string) => void;
  private readonly level: LogLevel;
  private readonly startedAt = new Date().toISOString();
  private readonly onSignal: (sig: NodeJS.Signals) => void;

  private constructor(
    private readonly command: string,
    opts: HostOptions,
    /** The progress display's class, loaded by `create` when `showsProgress(opts)`. */
    Progress: typeof ProgressDisplay | undefined,
  ) {
    if (opts.logFormat && opts.logFormat !== 'json' && opts.logFormat !== 'pretty') {
      throw new SluiceError('SLUICE_E_USAGE', `--log-format is pretty or json, got "${opts.logFormat}"`);
    }
    if (opts.logFileFormat && opts.logFileFormat !== 'json' && opts.logFileFormat !== 'pretty') {
      throw new SluiceError(
        'SLUICE_E_USAGE',
        `--log-file-format is json or pretty, got "${opts.logFileFormat}"`,
      );
    }
    this.level = logLevelOf(opts);
    const tty = process.stderr.isTTY === true;
    this.format = Host.formatOf(opts);
    const color = this.format === 'pretty' && tty && !process.env.NO_COLOR;
    this.progress = Progress ? new Progress(process.stderr, () => this.supervisors, color) : undefined;
    const progress = this.progress;
    const destination = progress
      ? new Writable({
          write(chunk: Buffer, _enc, cb) {
            progress.print(chunk.toString());
            cb();
          },
        })
      : undefined;
    const { logger, close, toFile } = createLogger({
      format: this.format,
      level: this.level,
      fileFormat: opts.logFileFormat as LogFormat | undefined,
      file: opts.logFile,
      errorFile: opts.errorLog,
      rotate: parseRotation(opts.logRotate, opts.logKeep),
      color,
      destination,
    });
    this.logger = logger;
    this.closeLog = close;
    this.toFile = toFile;
    this.onSignal = (sig) => {
      if (!this.stopping.signal.aborted) {
        this.logger.warn(
          { signal: sig },
          'stopping: no new items; in-flight items finish (signal again to abort now)',
        );
        this.stopping.abort();
        return;
      }
      this.logger.error(
        { signal: sig },
        'aborting now: in-flight items are abandoned, nothing half-written is committed',
      );
      this.aborted = true;
      for (const s of this.supervisors) s.abortNow();
      // The aborted passes unwind on their own; a stuck plugin must not keep the process alive.
      setTimeout(() => process.exit(130), 5000).unref();
    };
  }

  private static formatOf(opts: HostOptions): LogFormat {
    return (opts.logFormat as LogFormat | undefined) ?? (process.stderr.isTTY === true ? 'pretty' : 'json');
  }

  /** Live progress: on a TTY with pretty logs, unless --no-progress or --quiet. */
  private static showsProgress(opts: HostOptions): boolean {
    return (
      opts.progress !== false &&
      process.stderr.isTTY === true &&
      Host.formatOf(opts) === 'pretty' &&
      !opts.quiet
    );
  }

  static async create(command: string, opts: HostOptions): Promise<Host> {
    const Progress = Host.showsProgress(opts)
      ? (await import('../../observe/progress.js')).ProgressDisplay
      : undefined;
    const host = new Host(command, opts, Progress);
    process.on('SIGINT', host.onSignal);
    process.on('SIGTERM', host.onSignal);
    if (opts.metricsPort !== undefined) {
      const port = Number(opts.metricsPort);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new SluiceError(
          'SLUICE_E_USAGE',
          `--metrics-port takes a port number, got "${opts.metricsPort}"`,
        );
      const { SluiceMetrics } = await import('../../observe/metrics.js');
      const { startStatusServer } = await import('../../observe/status-server.js');
      const { ControlApi } = await import('../../api/server.js');
      const { isLoopback, loadApiToken } = await import('../../api/auth.js');
      const token = loadApiToken(opts.apiTokenFile);
      const loopback = isLoopback(opts.metricsHost);
      const api = new ControlApi({ supervisors: () => host.supervisors, token, loopback, log: host.logger });
      const metrics = new SluiceMetrics(() => new Map(host.supervisors.map((s) => [s.name, s.inFlight])));
      host.metrics = metrics;
      host.server = await startStatusServer({
        host: opts.metricsHost,
        port,
        metrics,
        status: () => host.status(),
        intercept: api.handle,
      });
      host.logger.info(
        { url: host.server.url, controlApi: token ? 'on' : 'off (no API token)' },
        'status page, /status, /metrics, /healthz and the control API (/api/) are served',
      );
      if (!token && !loopback)
        host.logger.warn(
          { host: opts.metricsHost },
          'the status server binds beyond loopback without an API token: /status and /metrics are open to the network, /api/ answers 403 (set --api-token-file or $SLUICE_API_TOKEN)',
        );
    }
    host.progress?.start();
    return host;
  }

  status() {
    return {
      sluice: {
        version: pkg.version,
        command: this.command,
        pid: process.pid,
        startedAt: this.startedAt,
        stopping: this.stopping.signal.aborted,
      },
      pipelines: this.supervisors.map((s) => s.status()),
    };
  }

  /**
   * A pass's summary: a log line in JSON, a block of text on a terminal, and in the log file
   * always (under --quiet too: the file is the record of what ran).
   */
  reportSummary(summary: RunSummary): void {
    const fields = { pipeline: summary.pipeline, summary: summaryJson(summary) };
    const logged = this.format === 'json' && this.level !== 'warn' && this.level !== 'error';
    if (this.format === 'json') this.logger.info(fields, 'pass finished');
    else if (this.progress) this.progress.print(`${formatSummary(summary)}\n`);
    else process.stdout.write(`${formatSummary(summary)}\n`);
    if (!logged) this.toFile(fields, 'pass finished');
  }

  /** Drains and stops every supervisor. */
  async stopAll(): Promise<void> {
    await Promise.allSettled(this.supervisors.map((s) => s.stop()));
  }

  async close(): Promise<void> {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    this.progress?.stop();
    await this.server?.close();
    await this.closeLog();
    // Aborted on purpose: a plugin's leftover timer or socket must not hold the exit back.
    if (this.aborted) process.exit(130);
  }
}
