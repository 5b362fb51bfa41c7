/**
 * The CLI defaults file, `sluice.config.yaml`: settings a team would otherwise repeat on every
 * command line (the cluster URL, the state folder, log settings, shared `${VAR}` values).
 * Found with `--config FILE`, else `$SLUICE_CONFIG`, else `./sluice.config.yaml` (or `.yml`).
 * Precedence: command-line flag > environment variable > this file.
 *
 *     cluster: redis://:${REDIS_PASSWORD}@redis.internal:6379
 *     state_dir: /var/lib/sluice
 *     log_level: info
 *     log_file: /var/log/sluice/sluice.log
 *     log_file_format: json
 *     log_rotate: daily
 *     vars: { REGION: eu-west-1 }
 *     connections:
 *       acme: { sftp: { host: sftp.acme.example, username: ${ACME_USER}, password: ${ACME_PASSWORD} } }
 *
 * `connections:` are the named plugin configs every pipeline run with this file may use
 * (`sftp: {connection: acme, path: /outgoing}`); the loader reads, interpolates and validates
 * them where they are used (core/config/connections.ts), here only their shape is checked.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { isMap, isScalar, LineCounter, type Node, parseDocument } from 'yaml';
import { ConfigErrors } from '../config/config-errors.js';
import { CONFIG_FILE_NAMES, useDefaultsFile, YAML_OPTIONS } from '../config/connections.js';
import { interpolate } from '../config/interpolate.js';
import { SluiceError } from '../errors.js';
import { LOG_LEVELS, parseRotation } from '../observe/log.js';
import { registerSecret, SECRET_ENV_NAME } from '../observe/redact.js';

export { CONFIG_FILE_NAMES };

/** Keys of the file and what each sets (documented in the README's CLI section). */
const KEYS = {
  cluster: 'string',
  state_dir: 'path',
  log_level: 'string',
  log_format: 'string',
  log_file: 'path',
  log_file_format: 'string',
  error_log: 'path',
  log_rotate: 'string',
  log_keep: 'integer',
  metrics_port: 'integer',
  vars: 'map',
  connections: 'connections',
} as const;
type Key = keyof typeof KEYS;

export interface CliDefaults {
  file: string;
  cluster?: string;
  stateDir?: string;
  logLevel?: string;
  logFormat?: string;
  logFile?: string;
  logFileFormat?: string;
  errorLog?: string;
  logRotate?: string;
  logKeep?: number;
  metricsPort?: number;
  vars: Record<string, string>;
}

/** The options object of a command, as cac hands it over (the fields this file can fill). */
export interface ConfigurableOptions {
  config?: string;
  cluster?: string;
  stateDir?: string;
  logLevel?: string;
  quiet?: boolean;
  verbose?: boolean;
  logFormat?: string;
  logFile?: string;
  logFileFormat?: string;
  errorLog?: string;
  logRotate?: string;
  logKeep?: string | number;
  metricsPort?: string | number;
  var?: string | string[];
}

/** Which defaults file applies, if any. */
export function findConfigFile(
  option: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): string | undefined {
  const named = option ?? (env.SLUICE_CONFIG || undefined);
  if (named !== undefined) {
    const file = resolve(cwd, named);
    if (!existsSync(file)) throw new SluiceError('SLUICE_E_USAGE', `config file not found: ${named}`);
    return file;
  }
  return CONFIG_FILE_NAMES.map((n) => resolve(cwd, n)).find((f) => existsSync(f));
}

/** Reads and checks a defaults file; every problem is reported at once with file:line:col. */
export function readConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): CliDefaults {
  const shown = relative(process.cwd(), file) || file;
  const text = readFileSync(file, 'utf8');
  const lines = new LineCounter();
  const doc = parseDocument(text, { ...YAML_OPTIONS, lineCounter: lines });
  const problems: SluiceError[] = [];
  const at = (node: Node | null | undefined) => {
    const pos = lines.linePos(node?.range?.[0] ?? 0);
    return { file: shown, line: pos.line, column: pos.col };
  };
  const problem = (
    node: Node | null | undefined,
    message: string,
    code: SluiceError['code'] = 'SLUICE_E_CONFIG',
    hint?: string,
  ) => problems.push(new SluiceError(code, message, { context: { ...at(node), ...(hint ? { hint } : {}) } }));
  for (const e of doc.errors) {
    const pos = lines.linePos(e.pos[0]);
    problems.push(
      new SluiceError('SLUICE_E_CONFIG', `YAML syntax: ${e.message.split('\n')[0]}`, {
        context: { file: shown, line: pos.line, column: pos.col },
      }),
    );
  }
  const defaults: CliDefaults = { file, vars: {} };
  const root = doc.contents;
  if (problems.length === 0 && root !== null && !isMap(root))
    problem(root, 'a config file is a mapping of settings (cluster, state_dir, …)');
  const baseDir = dirname(file);
  const stringOf = (node: unknown, where: string): string | undefined => {
    if (!isScalar(node) || (typeof node.value !== 'string' && typeof node.value !== 'number')) {
      problem(node as Node, `${where} must be a string`);
      return undefined;
    }
    const result = interpolate(String(node.value), env);
    for (const name of result.missing)
      problem(
        node,
        `environment variable ${name} is not set and has no default`,
        'SLUICE_E_ENV',
        `set it, or write \${${name}:-default}`,
      );
    for (const name of result.used) if (SECRET_ENV_NAME.test(name)) registerSecret(env[name]);
    return result.value;
  };
  if (problems.length === 0 && isMap(root)) {
    for (const pair of root.items) {
      const keyNode = pair.key as Node;
      const key = isScalar(keyNode) ? String(keyNode.value) : '';
      if (!(key in KEYS)) {
        problem(
          keyNode,
          `unknown setting "${key}"`,
          'SLUICE_E_CONFIG',
          `known settings: ${Object.keys(KEYS).join(', ')}`,
        );
        continue;
      }
      const kind = KEYS[key as Key];
      if (kind === 'connections') {
        connectionShapeProblems(pair.value as Node, problem);
        continue;
      }
      if (kind === 'map') {
        if (!isMap(pair.value)) {
          problem(pair.value as Node, 'vars must be a mapping of NAME: value');
          continue;
        }
        for (const v of pair.value.items) {
          const name = isScalar(v.key) ? String(v.key.value) : '';
          const value = stringOf(v.value, `vars.${name}`);
          if (value !== undefined) defaults.vars[name] = value;
        }
        continue;
      }
      const value = stringOf(pair.value, key);
      if (value === undefined) continue;
      switch (key as Exclude<Key, 'vars' | 'connections'>) {
        case 'cluster':
          defaults.cluster = value;
          registerSecret(/\/\/[^:@/]*:([^@/]+)@/.exec(value)?.[1]);
          break;
        case 'state_dir':
          defaults.stateDir = resolve(baseDir, value);
          break;
        case 'log_level':
          if (!(LOG_LEVELS as readonly string[]).includes(value))
            problem(pair.value as Node, `log_level is one of ${LOG_LEVELS.join(', ')}, got "${value}"`);
          else defaults.logLevel = value;
          break;
        case 'log_format':
        case 'log_file_format':
          if (value !== 'json' && value !== 'pretty')
            problem(pair.value as Node, `${key} is pretty or json, got "${value}"`);
          else if (key === 'log_format') defaults.logFormat = value;
          else defaults.logFileFormat = value;
          break;
        case 'log_rotate':
          try {
            parseRotation(value, undefined);
            defaults.logRotate = value;
          } catch (err) {
            problem(pair.value as Node, (err as Error).message.replace('--log-rotate', 'log_rotate'));
          }
          break;
        case 'log_keep': {
          const keep = Number(value);
          if (!Number.isInteger(keep) || keep < 1)
            problem(pair.value as Node, `log_keep must be a whole number ≥ 1, got "${value}"`);
          else defaults.logKeep = keep;
          break;
        }
        case 'log_file':
          defaults.logFile = resolve(baseDir, value);
          break;
        case 'error_log':
          defaults.errorLog = resolve(baseDir, value);
          break;
        case 'metrics_port': {
          const port = Number(value);
          if (!Number.isInteger(port) || port < 0 || port > 65535)
            problem(pair.value as Node, `metrics_port must be a port number, got "${value}"`);
          else defaults.metricsPort = port;
          break;
        }
      }
    }
  }
  if (problems.length > 0) throw new ConfigErrors(problems);
  return defaults;
}

/**
 * Fills the options a command did not get on its command line from the defaults file (and
 * leaves alone what the environment sets: `SLUICE_CLUSTER` wins over the file's `cluster`).
 */
export function applyConfigFile<T extends ConfigurableOptions>(
  opts: T,
  env: NodeJS.ProcessEnv = process.env,
): T {
  const file = findConfigFile(opts.config, env);
  // Its connections are the ones the command's pipelines see (or none: then each pipeline's own
  // folder's sluice.config.yaml, see core/config/connections.ts).
  useDefaultsFile(file);
  if (!file) return opts;
  const d = readConfigFile(file, env);
  const cliVars = opts.var === undefined ? [] : Array.isArray(opts.var) ? opts.var : [opts.var];
  return {
    ...opts,
    config: file,
    cluster: opts.cluster ?? (env.SLUICE_CLUSTER ? undefined : d.cluster),
    stateDir: opts.stateDir ?? d.stateDir,
    // -v, -q and $SLUICE_LOG_LEVEL all win over the file's level.
    logLevel: opts.logLevel ?? (opts.quiet || opts.verbose || env.SLUICE_LOG_LEVEL ? undefined : d.logLevel),
    logFormat: opts.logFormat ?? d.logFormat,
    logFile: opts.logFile ?? d.logFile,
    logFileFormat: opts.logFileFormat ?? d.logFileFormat,
    errorLog: opts.errorLog ?? d.errorLog,
    logRotate: opts.logRotate ?? d.logRotate,
    logKeep: opts.logKeep ?? d.logKeep,
    metricsPort: opts.metricsPort ?? d.metricsPort,
    // --var values come last: parseVars keeps the last value of a name.
    var: [...Object.entries(d.vars).map(([k, v]) => `${k}=${v}`), ...cliVars.map(String)],
  };
}

/** `connections:` is a map of names to single-key maps `{plugin: {...}}`; the rest is the loader's. */
function connectionShapeProblems(node: Node, problem: (node: Node, message: string) => void): void {
  if (!isMap(node)) {
    problem(node, 'connections must be a mapping of name: {plugin: {...}}');
    return;
  }
  for (const pair of node.items) {
    const name = isScalar(pair.key) ? String(pair.key.value) : '';
    const value = pair.value as Node;
    if (!isMap(value) || value.items.length !== 1)
      problem(
        value ?? (pair.key as Node),
        `connection "${name}" must be a single-key map {plugin_name: config}`,
      );
  }
}
