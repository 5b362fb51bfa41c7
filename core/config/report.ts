/**
 * `report:` as the loader checks it. The report's sink is a sink plugin like the pipeline's own
 * (validated against its schema at `/report/sink/…`); what differs is what a report may do at
 * its destination and what its destination template may name:
 *
 * - `if_exists` defaults to `rename`, set before the plugin's schema fills in its own default
 *   (`overwrite`): two passes in one second (or a template without `{now}`) get `x (1).json`
 *   rather than one report replacing the other. `skip` is refused (a report left unwritten
 *   without a word); `fail` and an explicit `overwrite` (a fixed `latest.json`) are the user's.
 * - `to` is compiled here, so `sluice validate` rejects it: a report has no item, so it may use
 *   `{now:…}` and `{pipeline}` only. `{pipeline}` is put in before compiling (the name cannot
 *   hold a brace, a slash or a leading dot), which keeps it out of item templates, where it
 *   would mean nothing.
 */
import type { SluiceError } from '../errors.js';
import type { PluginRegistry } from '../registry.js';
import { type CompiledTemplate, compileTemplate, TemplateError } from '../template.js';
import type { PluginRef } from './plugin-ref.js';
import type { ReportT } from './schema.js';

export interface ReportDefinition {
  sink: PluginRef;
  /** The destination template as written. */
  to: string;
  /** `to` with `{pipeline}` put in; render it with `{now}` = the pass's start. */
  template: CompiledTemplate;
}

type Problem = (
  pointer: string,
  message: string,
  extra?: { step?: string; plugin?: string; hint?: string; code?: SluiceError['code'] },
) => void;

const ALLOWED = 'a report has no file: its template may use {now:…} and {pipeline} only';

/** Sets `if_exists: rename` on the report's sink when it takes `if_exists` and none is written. */
export function defaultReportSink(report: unknown, registry: PluginRegistry): void {
  const sink = (report as Partial<ReportT> | undefined)?.sink;
  if (!sink || typeof sink !== 'object' || Object.keys(sink).length !== 1) return;
  const name = Object.keys(sink)[0];
  const schema = registry.get('sink', name)?.config as { properties?: Record<string, unknown> } | undefined;
  if (!schema?.properties?.if_exists) return;
  const config = sink[name];
  if (config === null || config === undefined) sink[name] = { if_exists: 'rename' };
  else if (typeof config === 'object' && !('if_exists' in config))
    (config as Record<string, unknown>).if_exists = 'rename';
}

/** The checked report, or undefined after reporting its problems through `problem`. */
export function reportOf(
  report: ReportT,
  sink: PluginRef,
  pipeline: string,
  problem: Problem,
): ReportDefinition | undefined {
  let ok = true;
  if (sink.config.if_exists === 'skip') {
    ok = false;
    problem(`${sink.jsonPath}/if_exists`, 'a report is never skipped: the pass it reports would have none', {
      step: sink.stepId,
      plugin: sink.name,
      hint: 'leave if_exists out (rename: an existing report gets a numbered twin), or use fail',
    });
  }
  try {
    const template = compileReportTemplate(report.to, pipeline);
    return ok ? { sink, to: report.to, template } : undefined;
  } catch (err) {
    const e = err as SluiceError;
    problem('/report/to', e.message, { hint: e.context.hint });
    return undefined;
  }
}

/** Compiles `to` with `{pipeline}` put in; throws a SluiceError naming `/report/to`. */
export function compileReportTemplate(to: string, pipeline: string): CompiledTemplate {
  // Left to right, so `{{pipeline}}` stays the literal text it is.
  const text = to.replace(/\{\{|\}\}|\{pipeline\}/g, (m) => (m === '{pipeline}' ? pipeline : m));
  let template: CompiledTemplate;
  try {
    template = compileTemplate(text, { jsonPath: '/report/to', relativePath: true });
  } catch (err) {
    if (err instanceof TemplateError && err.message.startsWith('unknown placeholder'))
      throw new TemplateError(
        err.message.replace(/: did you mean.*$/, ''),
        err.offset,
        ALLOWED,
        '/report/to',
      );
    throw err;
  }
  // Rendered once with an item any read of which throws: a placeholder of a file is refused now.
  const rendered = template.render(noItem(to), { now: new Date(0) });
  if (rendered === '' || rendered.endsWith('/'))
    throw new TemplateError(
      `template "${to}" names a folder, not a file`,
      0,
      'end it with a file name, e.g. {pipeline}-{now:%Y%m%dT%H%M%S}.json',
      '/report/to',
    );
  return template;
}

/** The item a report template is rendered with: reading any of it is a placeholder it may not use. */
export function noItem(to: string): never {
  return new Proxy(
    {},
    {
      get(_target, key) {
        throw new TemplateError(
          `template "${to}" uses a placeholder of a file (${String(key)})`,
          0,
          ALLOWED,
          '/report/to',
        );
      },
    },
  ) as never;
}
