import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SluiceError } from '../errors.js';
import { createLogger, type LogFormat, type LogLevel, parseLogLevel } from '../observe/log.js';
import { existingEntry, type PoolOptions } from '../runtime/pool.js';

export interface CommonOptions {
  var?: string | string[];
  /** `--set PATH=VALUE` (repeatable). */
  set?: string | string[];
  stateDir?: string;
  logFormat?: string;
  logFile?: string;
  quiet?: boolean;
  /** `--log-level` (or `log_level:` of the defaults file). */
  logLevel?: string;
  /** `-v`: debug. */
  verbose?: boolean;
  /** json (default) or pretty lines in --log-file. */
  logFileFormat?: string;
}

/**
 * The level of this command's logs: `--log-level`, else `-v` (debug) or `-q` (warn), else
 * `$SLUICE_LOG_LEVEL`, else the defaults file's `log_level` (put into `logLevel` by
 * applyConfigFile only when none of the others is given), else info.
 */
export function logLevelOf(opts: CommonOptions, env: NodeJS.ProcessEnv = process.env): LogLevel {
  if (opts.logLevel !== undefined) return parseLogLevel(String(opts.logLevel), '--log-level');
  if (opts.verbose && opts.quiet) throw new SluiceError('SLUICE_E_USAGE', 'give either -v or -q, not both');
  if (opts.verbose) return 'debug';
  if (opts.quiet) return 'warn';
  if (env.SLUICE_LOG_LEVEL) return parseLogLevel(env.SLUICE_LOG_LEVEL, 'SLUICE_LOG_LEVEL');
  return 'info';
}

/** `--var K=V` (repeatable) into a map. */
export function parseVars(value: string | string[] | undefined): Record<string, string> {
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value];
  const vars: Record<string, string> = {};
  for (const entry of list) {
    const eq = String(entry).indexOf('=');
    if (eq <= 0) throw new SluiceError('SLUICE_E_USAGE', `--var takes KEY=VALUE, got "${entry}"`);
    vars[String(entry).slice(0, eq)] = String(entry).slice(eq + 1);
  }
  return vars;
}

/** `--set` flags as a list (cac gives one value as a string). */
export function setFlags(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : (Array.isArray(value) ? value : [value]).map(String);
}

/** A pipeline file in a folder: *.yaml / *.yml, but not a pipeline test or the CLI defaults file. */
export function isPipelineFileName(name: string): boolean {
  return /\.ya?ml$/.test(name) && !/\.test\.ya?ml$/.test(name) && !/^sluice\.config\.ya?ml$/.test(name);
}

/** Pipeline files from arguments: files as given, folders expanded to their *.yaml / *.yml (not *.test.yaml). */
export function expandPipelinePaths(paths: string[]): string[] {
  const files: string[] = [];
  for (const p of paths) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch {
      throw new SluiceError('SLUICE_E_USAGE', `no such file or folder: ${p}`);
    }
    if (st.isDirectory()) {
      const found = readdirSync(p)
        .filter(isPipelineFileName)
        .sort()
        .map((f) => join(p, f));
      if (found.length === 0) throw new SluiceError('SLUICE_E_USAGE', `no pipeline files (*.yaml) in ${p}`);
      files.push(...found);
    } else {
      files.push(p);
    }
  }
  return files;
}

export function makeLogger(opts: CommonOptions) {
  const format: LogFormat =
    opts.logFormat === 'json'
      ? 'json'
      : opts.logFormat === 'pretty'
        ? 'pretty'
        : process.stderr.isTTY
          ? 'pretty'
          : 'json';
  if (opts.logFormat && opts.logFormat !== 'json' && opts.logFormat !== 'pretty') {
    throw new SluiceError('SLUICE_E_USAGE', `--log-format is pretty or json, got "${opts.logFormat}"`);
  }
  const color = format === 'pretty' && process.stderr.isTTY === true && !process.env.NO_COLOR;
  return {
    format,
    ...createLogger({
      format,
      level: logLevelOf(opts),
      file: opts.logFile,
      fileFormat: fileFormatOf(opts),
      color,
    }),
  };
}

function fileFormatOf(opts: CommonOptions): LogFormat | undefined {
  const f = opts.logFileFormat;
  if (f === undefined || f === 'json' || f === 'pretty') return f;
  throw new SluiceError('SLUICE_E_USAGE', `--log-file-format is json or pretty, got "${f}"`);
}

/**
 * Where pool threads start: the bundled entry beside the CLI bundle (dist/cli/pool-thread.js).
 * Undefined when it is not there (the CLI run from tsc's output alone): passes then run on one
 * thread. (`import.meta.url` is this module's as tsc wrote it, dist/core/cli/common.js, also
 * inside the bundle: scripts/build-cli.mjs keeps it.)
 */
export function poolThreadEntry(): PoolOptions | undefined {
  return existingEntry(new URL('../../cli/pool-thread.js', import.meta.url));
}
