/**
 * Loads a pipeline file: YAML with node positions, environment interpolation, then two
 * validation passes (core shape, then each plugin's own schema). Every problem becomes a
 * SluiceError naming file:line:col, the JSON path, the step and the plugin.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isMap, LineCounter, type Node, parseDocument } from 'yaml';
import { SluiceError } from '../errors.js';
import { registerSecretsIn } from '../observe/redact.js';
import type { Plugin } from '../plugin-api.js';
import { loadPluginModule, nearest, type PluginRegistry, type PluginRole } from '../registry.js';
import { parseDuration } from '../units.js';
import { ConfigErrors } from './config-errors.js';
import {
  connectionsFileFor,
  connectionsOf,
  displayPath,
  PipelineConnections,
  YAML_OPTIONS,
} from './connections.js';
import { interpolateDocument, readDotEnv } from './interpolate.js';
import { durationHint, exactlyOne, isSingleKeyMap, reportPluginConfigError } from './load-problems.js';
import { applyOverrides, overrideAt, parseOverrides } from './overrides.js';
import type { PluginRef } from './plugin-ref.js';
import { type IdentityMode, type Policy, toPolicy } from './policy.js';
import { defaultReportSink, type ReportDefinition, reportOf } from './report.js';
import { rootProblems } from './roots.js';
import {
  type AlertsT,
  type ExpectT,
  type IdentityT,
  PipelineShape,
  type PolicyT,
  type ReportT,
  type TriggerT,
} from './schema.js';
import { stepWhenProblems, takeStepWhen } from './step-when.js';
import {
  escapePointer,
  preloadValidators,
  type SchemaProblem,
  splitPointer,
  validateAgainst,
} from './validate.js';
import { validationContext } from './validation-context.js';
import { yamlProblems } from './yaml-errors.js';
import { nodeOffset } from './yaml-position.js';

export type { FailedPolicy, IdentityMode, Policy } from './policy.js';
export type { PluginRef };
export { ConfigErrors };

export interface PipelineDefinition {
  file: string;
  baseDir: string;
  name: string;
  description?: string;
  trigger?: TriggerT;
  sources: PluginRef[];
  steps: PluginRef[];
  sinks: PluginRef[];
  onError?: PluginRef;
  policy: Policy;
  /** What makes two listings the same item (the ledger check); see docs/reliability.md. */
  identity: IdentityMode;
  stateDir: string;
  /** `state.retention`: finalized records older than this are pruned, a bounded batch per pass. */
  retentionMs?: number;
  /** Who is told when the pipeline needs a human (core/alerts). */
  alerts?: AlertsT;
  /** Files expected by a deadline (a `missed_arrival` alert otherwise). */
  expect?: ExpectT;
  /** Each pass's summary written through a sink (core/runtime/report.ts). */
  report?: ReportDefinition;
  /** sha256 of the file's text: identifies the loaded version (status, reloads). */
  hash: string;
  /** The text it was loaded from (published to cluster workers as this version). */
  text: string;
  /** The `plugins:` modules it named (a pool thread loads them again: runtime/pool.ts). */
  pluginModules?: string[];
}

export interface LoadOptions {
  registry: PluginRegistry;
  /** `--var KEY=VALUE` values; they win over the environment. */
  vars?: Record<string, string>;
  env?: NodeJS.ProcessEnv;
  /** The file's text, when already read (watch mode). */
  text?: string;
  /** Overrides `state.dir`. */
  stateDir?: string;
  /** `--set PATH=VALUE` flags: keys changed for this load, validated like the file. */
  set?: string[];
  /**
   * The file whose `connections:` the pipeline may use by name; default: the CLI's defaults
   * file, else a `sluice.config.yaml` beside the pipeline (see config/connections.ts).
   */
  connectionsFile?: string;
}

export async function loadPipeline(file: string, options: LoadOptions): Promise<PipelineDefinition> {
  const absFile = resolve(file);
  const shownFile = displayPath(absFile);
  const baseDir = dirname(absFile);
  let text: string;
  try {
    text = options.text ?? readFileSync(absFile, 'utf8');
  } catch (err) {
    throw new SluiceError(
      'SLUICE_E_CONFIG',
      `cannot read pipeline file: ${(err as NodeJS.ErrnoException).code ?? err}`,
      {
        context: { file: shownFile },
      },
    );
  }

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { ...YAML_OPTIONS, lineCounter });
  const at = (offset: number) => {
    const pos = lineCounter.linePos(offset);
    return { file: shownFile, line: pos.line, column: pos.col };
  };
  const syntax = yamlProblems(doc, at, text);
  if (syntax.length > 0) throw new ConfigErrors(syntax);
  const overrides = parseOverrides(options.set);
  const overrideProblems = applyOverrides(doc, overrides);
  if (overrideProblems.length > 0) throw new ConfigErrors(overrideProblems);
  // With --set, the version is the file as overridden: cluster workers load it from this text.
  const loadedText = overrides.length > 0 ? String(doc) : text;

  const errors: SluiceError[] = [];
  const locate = (pointer: string, atKey = false) => {
    // A value set by --set has no place in the file: the problem names the flag.
    const set = overrideAt(overrides, pointer);
    if (set) return { file: `${shownFile} (--set ${set.flag})` };
    return at(nodeOffset(doc.contents as Node | null, splitPointer(pointer), atKey, doc));
  };
  const problem = (
    pointer: string,
    message: string,
    extra: {
      step?: string;
      plugin?: string;
      hint?: string;
      code?: SluiceError['code'];
      atKey?: boolean;
    } = {},
  ) => {
    // In a block using a connection, a key it gave is pointed at in its definition; the message
    // names the other place.
    const via = connections?.describe(pointer, extra.atKey);
    errors.push(
      new SluiceError(
        extra.code ?? 'SLUICE_E_CONFIG',
        `${pointer || '/'}: ${message}${via ? ` (${via.note})` : ''}`,
        {
          context: {
            ...(via?.place ?? locate(pointer, extra.atKey)),
            jsonPath: pointer,
            step: extra.step,
            plugin: extra.plugin,
            hint: extra.hint,
          },
        },
      ),
    );
  };
  let connections: PipelineConnections | undefined;

  const env = { ...readDotEnv(baseDir), ...(options.env ?? process.env), ...(options.vars ?? {}) };
  errors.push(...interpolateDocument(doc, env, baseDir, at));
  if (errors.length > 0) throw new ConfigErrors(errors);

  const raw = doc.toJS() as unknown;
  connections = new PipelineConnections(
    connectionsOf(doc, isMap(doc.contents) ? doc.contents.get('connections', true) : undefined, at, text),
    connectionsFileFor(baseDir, options.connectionsFile),
    env,
    baseDir,
  );
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SluiceError(
      'SLUICE_E_CONFIG',
      'a pipeline file must be a map with name, source(s), steps and sink(s)',
      {
        context: at(0),
      },
    );
  }
  // Secrets are registered before anything is validated: a problem elsewhere in the file may
  // quote the same value (`port: ${DB_PASSWORD}` → `must be integer, got string "…"`). Here the
  // credentials inside strings (URL passwords, signatures); each plugin's `x-secret` fields below.
  registerSecretsIn(PipelineShape, raw);
  // Shape problems are collected, and the plugin configs are still checked, so that one
  // `sluice validate` shows every problem of the file.
  await preloadValidators([PipelineShape]);
  const shapeProblems = validateAgainst(PipelineShape, raw);
  for (const p of shapeProblems)
    problem(p.path, p.message, {
      hint: p.hint ?? durationHint(p.message),
      atKey: p.message.startsWith('unknown key'),
    });
  const shape = raw as Record<string, unknown> & { name: string; plugins?: string[] };
  exactlyOne(shape, 'source', 'sources', problem);
  exactlyOne(shape, 'sink', 'sinks', problem);
  if (shapeProblems.some((p) => p.path === '/plugins' || p.path.startsWith('/plugins/')))
    throw new ConfigErrors(errors);

  let registry = options.registry;
  if (shape.plugins?.length) {
    const extra: Array<{ plugin: Plugin; origin: string }> = [];
    for (const [i, spec] of shape.plugins.entries()) {
      try {
        for (const plugin of await loadPluginModule(spec, baseDir)) extra.push({ plugin, origin: spec });
      } catch (err) {
        problem(`/plugins/${i}`, (err as Error).message, { code: 'SLUICE_E_PLUGIN_LOAD' });
      }
    }
    if (errors.length > 0) throw new ConfigErrors(errors);
    try {
      registry = registry.extend(extra);
    } catch (err) {
      problem('/plugins', (err as Error).message, { code: 'SLUICE_E_PLUGIN_LOAD' });
      throw new ConfigErrors(errors);
    }
  }

  const resolveEntry = (
    entry: Record<string, unknown>,
    pointer: string,
    role: PluginRole,
    stepId: (n: string) => string,
  ) => {
    if (!isSingleKeyMap(entry)) return undefined; // reported by the shape pass
    const name = Object.keys(entry)[0];
    const id = stepId(name);
    const plugin = registry.get(role, name);
    const configPointer = `${pointer}/${escapePointer(name)}`;
    if (!plugin) {
      const suggestion = nearest(name, registry.names(role));
      const otherRole = (['source', 'sink', 'step'] as const).find(
        (r) => r !== role && registry.get(r, name),
      );
      problem(configPointer, `unknown ${role === 'step' ? 'step' : role} plugin "${name}"`, {
        code: 'SLUICE_E_UNKNOWN_PLUGIN',
        step: id,
        atKey: true,
        hint: suggestion
          ? `did you mean "${suggestion}"?`
          : otherRole
            ? `"${name}" is a ${otherRole} plugin, not a ${role}`
            : `known: ${registry.names(role).join(', ')}`,
      });
      return undefined;
    }
    const block = (entry[name] ?? {}) as Record<string, unknown>;
    const merged = connections?.apply(block, name, configPointer, locate(`${configPointer}/connection`), {
      problem: (pointer, message, hint) => problem(pointer, message, { step: id, plugin: name, hint }),
      error: (err) => errors.push(err),
    });
    if (merged === null) return undefined;
    const written = merged ?? block;
    const { config, when } = role === 'step' ? takeStepWhen(written) : { config: written, when: undefined };
    registerSecretsIn(plugin.config, config);
    const configProblems: SchemaProblem[] = validateAgainst(plugin.config, config);
    for (const p of configProblems) {
      problem(configPointer + p.path, p.message, {
        step: id,
        plugin: name,
        hint: p.hint,
        atKey: p.message.startsWith('unknown key'),
      });
    }
    if (configProblems.length > 0) return undefined;
    const stepWhen = role === 'step' ? stepWhenProblems(when, config) : undefined;
    for (const p of stepWhen?.problems ?? [])
      problem(configPointer + p.pointer, p.message, { step: id, plugin: name, hint: p.hint });
    if (stepWhen?.problems.length) return undefined;
    const ref: PluginRef = { role, name, plugin, config, stepId: id, jsonPath: configPointer };
    if (merged) ref.connection = String(block.connection);
    if (stepWhen?.when) ref.when = stepWhen.when;
    try {
      plugin.validate?.(config);
    } catch (err) {
      reportPluginConfigError(err, ref, problem);
      return undefined;
    }
    return ref;
  };

  /** `[entry, JSON pointer, label]` of each plugin entry; the label prefixes step ids (`sinks[0]`). */
  type Entry = [Record<string, unknown>, string, string];
  const listOf = (single: string, plural: string): Entry[] => {
    if (shape[single] !== undefined)
      return [[shape[single] as Record<string, unknown>, `/${single}`, single]];
    const list = Array.isArray(shape[plural]) ? (shape[plural] as Record<string, unknown>[]) : [];
    return list.map((e, i) => [e, `/${plural}/${i}`, `${plural}[${i}]`]);
  };
  const sourceEntries = listOf('source', 'sources');
  const stepEntries = (Array.isArray(shape.steps) ? (shape.steps as Record<string, unknown>[]) : []).map(
    (e, i): Entry => [e, `/steps/${i}`, `steps[${i}]`],
  );
  const sinkEntries = listOf('sink', 'sinks');
  const onErrorEntries: Entry[] = shape.on_error
    ? [[shape.on_error as Record<string, unknown>, '/on_error', 'on_error']]
    : [];
  const report = shape.report as ReportT | undefined;
  defaultReportSink(report, registry);
  const reportEntries: Entry[] = report?.sink ? [[report.sink, '/report/sink', 'report']] : [];

  // Only the validators of the plugins this file names are loaded.
  const configSchemas = (role: PluginRole, entries: Entry[]) =>
    entries.flatMap(([entry]) =>
      isSingleKeyMap(entry) ? (registry.get(role, Object.keys(entry)[0])?.config ?? []) : [],
    );
  await preloadValidators([
    ...configSchemas('source', sourceEntries),
    ...configSchemas('step', stepEntries),
    ...configSchemas('sink', [...sinkEntries, ...onErrorEntries, ...reportEntries]),
  ]);
  const resolveAll = (entries: Entry[], role: PluginRole) =>
    entries
      .map(([entry, pointer, label]) => resolveEntry(entry, pointer, role, (n) => `${label}.${n}`))
      .filter((r): r is PluginRef => r !== undefined);
  const sources = resolveAll(sourceEntries, 'source');
  const steps = resolveAll(stepEntries, 'step');
  const sinks = resolveAll(sinkEntries, 'sink');
  const onError = resolveAll(onErrorEntries, 'sink')[0];
  const reportSink = resolveAll(reportEntries, 'sink')[0];
  const reported = report && reportSink ? reportOf(report, reportSink, shape.name, problem) : undefined;

  const names = new Map<string, PluginRef>();
  for (const s of sources) {
    s.sourceName = (s.config.name as string | undefined) ?? s.name;
    const clash = names.get(s.sourceName);
    if (clash) {
      problem(s.jsonPath, `two sources are named "${s.sourceName}" (${clash.stepId} and ${s.stepId})`, {
        step: s.stepId,
        hint: 'give each source a distinct `name:`',
      });
    }
    names.set(s.sourceName, s);
  }

  // Item-level steps are pure: creating them checks templates, regexes and formats now.
  for (const ref of steps) {
    if (ref.plugin.kind !== 'step') continue;
    try {
      await ref.plugin.create(ref.config as never, validationContext(ref, baseDir));
    } catch (err) {
      reportPluginConfigError(err, ref, problem);
    }
  }
  if (shape.trigger && (shape.trigger as TriggerT).every && (shape.trigger as TriggerT).cron) {
    problem('/trigger', 'give either `every` or `cron`, not both');
  } else if (shape.trigger && !shapeProblems.some((p) => p.path.startsWith('/trigger'))) {
    // A trigger the shape pass refused is reported once, there.
    // Checked at load, not only when `run` starts, so `validate` rejects a bad cron expression
    // too and the message carries file:line:col. Imported lazily: cron-parser is not small.
    const { scheduleOf } = await import('./trigger.js');
    try {
      scheduleOf(shape.trigger as TriggerT);
    } catch (err) {
      const context = err instanceof SluiceError ? err.context : {};
      problem(context.jsonPath ?? '/trigger', (err as Error).message, { hint: context.hint });
    }
  }
  const expectTimezone = (shape.expect as ExpectT | undefined)?.timezone;
  if (expectTimezone !== undefined && !knownTimezone(expectTimezone))
    problem('/expect/timezone', `"${expectTimezone}" is not a known IANA timezone`, {
      hint: 'e.g. "UTC", "Europe/Paris", "America/New_York"',
    });
  const stateDirSetting = options.stateDir ?? (shape.state as { dir?: string } | undefined)?.dir;
  const stateDir = stateDirSetting ? resolve(baseDir, stateDirSetting) : join(baseDir, '.sluice');
  const written = reportSink ? [...sinks, reportSink] : sinks;
  for (const p of rootProblems({ sources, sinks: written, onError, baseDir, stateDir }))
    problem(p.pointer, p.message, { step: p.ref.stepId, plugin: p.ref.name, hint: p.hint });
  if (errors.length > 0) throw new ConfigErrors(errors);

  return {
    file: absFile,
    baseDir,
    name: shape.name,
    description: shape.description as string | undefined,
    trigger: shape.trigger as TriggerT | undefined,
    sources,
    steps,
    sinks,
    onError,
    policy: toPolicy(shape.policy as PolicyT | undefined),
    identity: (shape.identity as IdentityT | undefined) ?? 'version',
    stateDir,
    retentionMs: retentionOf(shape.state as { retention?: string } | undefined),
    alerts: shape.alerts as AlertsT | undefined,
    expect: shape.expect as ExpectT | undefined,
    report: reported,
    // A shared connection it uses is part of the version: editing it reloads the pipeline.
    hash: createHash('sha256')
      .update([loadedText, ...(connections?.sharedTexts() ?? [])].join('\0'))
      .digest('hex')
      .slice(0, 16),
    text: loadedText,
    ...(shape.plugins?.length ? { pluginModules: [...shape.plugins] } : {}),
  };
}

function knownTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function retentionOf(state: { retention?: string } | undefined): number | undefined {
  return state?.retention === undefined ? undefined : parseDuration(state.retention);
}
