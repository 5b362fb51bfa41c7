/**
 * The `sluice` command line. Commands are thin; options are declared once in OPTIONS with a
 * description each, and `--help` comes from that table.
 */
import { readFileSync } from 'node:fs';
import { cac } from 'cac';
import { errorMessage, SluiceError } from '../errors.js';
import { EXIT } from './exit-codes.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export const OPTIONS = {
  dryRun: {
    flag: '--dry-run',
    description: 'Run every step but write nothing, touch no source, record nothing',
  },
  force: { flag: '--force', description: 'Process items the ledger says are already done' },
  vars: {
    flag: '--var <KEY=VALUE>',
    description: 'Set a ${VAR} for the pipeline (repeatable; wins over the environment)',
  },
  stateDir: {
    flag: '--state-dir <dir>',
    description: 'State folder (ledger); default .sluice/ beside each pipeline',
  },
  logFormat: { flag: '--log-format <format>', description: 'pretty (default on a TTY) or json' },
  logFile: { flag: '--log-file <file>', description: 'Also append JSON logs to this file' },
  quiet: { flag: '-q, --quiet', description: 'Only warnings and errors (as --log-level warn)' },
  verbose: { flag: '-v, --verbose', description: 'Debug lines too (as --log-level debug)' },
  logLevel: {
    flag: '--log-level <level>',
    description: 'trace, debug, info (default), warn or error; default $SLUICE_LOG_LEVEL',
  },
  logFileFormat: {
    flag: '--log-file-format <format>',
    description: 'json (default) or pretty: the lines of --log-file and --error-log',
  },
  set: {
    flag: '--set <PATH=VALUE>',
    description:
      "Override a pipeline key for this run (repeatable; value in YAML): --set policy.concurrency=8, --set 'steps[0].filter.min_size=5MiB'",
  },
  summaryJson: { flag: '--summary-json <file>', description: 'Write the run summary as JSON to this file' },
  once: { flag: '--once', description: 'Run a single pass whatever the trigger says' },
  errorLog: { flag: '--error-log <file>', description: 'Also append error log lines (JSON) to this file' },
  logRotate: {
    flag: '--log-rotate <size|daily>',
    description: 'Rotate --log-file and --error-log at this size (10MiB) or daily',
  },
  logKeep: { flag: '--log-keep <n>', description: 'Rotated log files to keep (default 5)' },
  metricsPort: {
    flag: '--metrics-port <port>',
    description: 'Serve /metrics (Prometheus), /status, /healthz and the status page on this port',
  },
  metricsHost: {
    flag: '--metrics-host <host>',
    description: 'Address the metrics/status server binds (default 127.0.0.1)',
  },
  apiTokenFile: {
    flag: '--api-token-file <file>',
    description:
      'Bearer token of the control API (/api/…; default $SLUICE_API_TOKEN); without one, the API answers 403',
  },
  progress: { flag: '--no-progress', description: 'No live progress lines on a TTY' },
  debounce: {
    flag: '--debounce <ms>',
    description: 'Wait this long after a pipeline file changes before reloading it (default 300)',
  },
  limit: { flag: '--limit <n>', description: 'How many records to show (default 50)' },
  state: {
    flag: '--state <state>',
    description: 'Only records in this state (seen, committed, finalized, failed)',
  },
  cluster: {
    flag: '--cluster <url>',
    description:
      'Scale-out: queue, ledger and lister lock in this Redis (redis://…; default $SLUICE_CLUSTER)',
  },
  config: {
    flag: '--config <file>',
    description:
      'Defaults file (cluster, state_dir, logs, vars); default $SLUICE_CONFIG or ./sluice.config.yaml',
  },
  all: { flag: '--all', description: 'retry: every parked (failed) item of the pipeline' },
  format: {
    flag: '--format <format>',
    description: 'history: export every record (or --limit) as json (one per line) or csv',
  },
  json: {
    flag: '--json',
    description: 'plan: print the plan as JSON (items with reasons, sinks, tidy-up; totals)',
  },
  concurrency: {
    flag: '--concurrency <n>',
    description: "Items in flight in this worker (default: each pipeline's policy.concurrency)",
  },
} as const;

type OptionName = keyof typeof OPTIONS;

/** The logging options of the long-running commands (run and watch share them all). */
const LOG_OPTIONS: OptionName[] = [
  'logFormat',
  'logFile',
  'errorLog',
  'logRotate',
  'logKeep',
  'quiet',
  'logLevel',
  'verbose',
  'logFileFormat',
];
/** The status server's options: metrics, status page, control API, progress. */
const SERVER_OPTIONS: OptionName[] = ['metricsPort', 'metricsHost', 'apiTokenFile', 'progress'];

const COMMANDS: Array<{
  name: string;
  description: string;
  options: OptionName[];
  load: () => Promise<(...args: never[]) => Promise<number>>;
}> = [
  {
    name: 'run <...pipelines>',
    description: 'Run pipeline files (or every *.yaml in folders): one pass, or by their trigger',
    options: [
      'dryRun',
      'force',
      'vars',
      'stateDir',
      'summaryJson',
      'once',
      ...LOG_OPTIONS,
      ...SERVER_OPTIONS,
      'cluster',
      'config',
      'set',
    ],
    load: async () => (await import('./commands/run.js')).runCommand,
  },
  {
    name: 'watch <...paths>',
    description:
      'Run pipeline files (or every *.yaml in folders) on their triggers; hot-reload each one when it changes',
    options: ['vars', 'stateDir', ...LOG_OPTIONS, ...SERVER_OPTIONS, 'debounce', 'cluster', 'config', 'set'],
    load: async () => (await import('./commands/watch.js')).watchCommand,
  },
  {
    name: 'test <...pipelines>',
    description:
      'Run pipeline tests (<name>.test.yaml beside each pipeline) with local stand-ins for sources and sinks',
    options: ['vars', 'config', 'set'],
    load: async () => (await import('./commands/test.js')).testCommand,
  },
  {
    name: 'validate <...pipelines>',
    description: 'Check pipeline files: YAML, shape, every plugin config; errors name file:line:col',
    options: ['vars', 'config', 'set'],
    load: async () => (await import('./commands/validate.js')).validateCommand,
  },
  {
    name: 'plan <pipeline>',
    description: 'Dry run: every source → destination mapping and what the ledger would skip',
    options: [
      'vars',
      'stateDir',
      'force',
      'logFormat',
      'quiet',
      'cluster',
      'config',
      'set',
      'logLevel',
      'verbose',
      'json',
    ],
    load: async () => (await import('./commands/plan.js')).planCommand,
  },
  {
    name: 'schema',
    description:
      'Print the JSON Schema of pipeline files (for editors; the repo copy is schemas/pipeline.schema.json)',
    options: [],
    load: async () => (await import('./commands/schema.js')).schemaCommand,
  },
  {
    name: 'plugins [name]',
    description: 'List plugins, or show one plugin’s config reference',
    options: [],
    load: async () => (await import('./commands/plugins.js')).pluginsCommand,
  },
  {
    name: 'history <pipeline>',
    description: 'Recent items of a pipeline from its ledger',
    options: ['vars', 'stateDir', 'limit', 'state', 'format', 'logFormat', 'cluster', 'config'],
    load: async () => (await import('./commands/history.js')).historyCommand,
  },
  {
    name: 'retry <pipeline> [...paths]',
    description:
      'Replay parked (failed, dead-lettered) items through the pipeline as it is now: re-open their records, run one pass',
    options: ['all', 'vars', 'stateDir', 'logFormat', 'logFile', 'quiet', 'summaryJson', 'cluster', 'config'],
    load: async () => (await import('./commands/retry.js')).retryCommand,
  },
  {
    name: 'worker <...pipelines>',
    description:
      'Scale-out worker: process the queued items of these pipelines (files or folders) from --cluster',
    options: [
      'cluster',
      'config',
      'concurrency',
      'vars',
      'stateDir',
      'logFormat',
      'logFile',
      'quiet',
      'logLevel',
      'verbose',
      'logFileFormat',
    ],
    load: async () => (await import('./commands/worker.js')).workerCommand,
  },
];

export async function main(argv: string[]): Promise<void> {
  ignoreClosedPipes();
  const cli = cac('sluice');
  let action: Promise<number> | undefined;
  for (const spec of COMMANDS) {
    const command = cli.command(spec.name, spec.description);
    for (const o of spec.options) command.option(OPTIONS[o].flag, OPTIONS[o].description);
    command.action((...args: unknown[]) => {
      action = spec.load().then(async (fn) => {
        // The options object comes last; a defaults file fills what the command line left out.
        if (spec.options.includes('config')) {
          const { applyConfigFile } = await import('./config-file.js');
          args[args.length - 1] = applyConfigFile(args[args.length - 1] as Record<string, unknown>);
        }
        return (fn as (...a: unknown[]) => Promise<number>)(...args);
      });
    });
  }
  cli.help();
  // -v is --verbose, as in most tools that log; the version is -V / --version.
  cli.version(pkg.version, '-V, --version');
  let code: number;
  try {
    const parsed = cli.parse(['node', 'sluice', ...argv], { run: false });
    if (parsed.options.help || parsed.options.version) return;
    if (!cli.matchedCommand) {
      if (cli.args.length > 0)
        throw new SluiceError('SLUICE_E_USAGE', `unknown command "${cli.args[0]}" (see sluice --help)`);
      cli.outputHelp();
      process.exitCode = EXIT.usage;
      return;
    }
    await cli.runMatchedCommand();
    code = action ? await action : EXIT.ok;
  } catch (err) {
    code = reportError(err);
  }
  process.exitCode = code;
}

/**
 * `sluice plugins | head -5`: once the reader is gone, what is left to print goes nowhere
 * instead of ending the process with an unhandled EPIPE (a run keeps running to its end).
 */
function ignoreClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
      throw err;
    });
  }
}

const INVALID_INPUT_CODES = new Set<SluiceError['code']>([
  'SLUICE_E_CONFIG',
  'SLUICE_E_ENV',
  'SLUICE_E_UNKNOWN_PLUGIN',
  'SLUICE_E_PLUGIN_LOAD',
  'SLUICE_E_USAGE',
  'SLUICE_E_TEMPLATE',
  'SLUICE_E_DESTINATION',
]);

export function reportError(err: unknown): number {
  if (err instanceof SluiceError) {
    process.stderr.write(`${err.toUserString()}\n`);
    // 2 only for what the user must fix before anything can run; a source that cannot list
    // (server down, bad credentials) is a failed run: 1. A run that found its pipeline running
    // already did nothing and is told apart (3), so a cron wrapper can treat it as "skipped".
    if (err.code === 'SLUICE_E_LOCKED') return EXIT.locked;
    return INVALID_INPUT_CODES.has(err.code) ? EXIT.usage : EXIT.failed;
  }
  if (err instanceof Error && /Unknown option|missing required args|Unused args/i.test(err.message)) {
    process.stderr.write(`sluice: ${err.message} (see sluice --help)\n`);
    return EXIT.usage;
  }
  process.stderr.write(`sluice: unexpected error: ${errorMessage(err)}\n`);
  if (process.env.SLUICE_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
  return EXIT.failed;
}
