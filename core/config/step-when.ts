/**
 * `when:` on a step: the runtime applies it (core/runtime/chain.ts), so the loader takes it out
 * of the step's config before the plugin's own schema sees it, checks it against the shared
 * condition fields, and checks that every `{match.NAME}` in the step's config names a group
 * some regex in scope defines: the step's `when`, or a regex/pattern beside the template
 * (a `segregate` route's `when.regex`, its `date.pattern`).
 */
import { type CompiledMatch, compileMatcher, groupNames, type MatchSpec, StepWhen } from '../item-match.js';
import { escapePointer, validateAgainst } from './validate.js';

export interface StepWhenProblem {
  /** JSON pointer relative to the step's config. */
  pointer: string;
  message: string;
  hint?: string;
}

/** The step's config without `when`, and the `when` taken out of it. */
export function takeStepWhen(config: Record<string, unknown>): {
  config: Record<string, unknown>;
  when: unknown;
} {
  if (!('when' in config)) return { config, when: undefined };
  const { when, ...rest } = config;
  return { config: rest, when };
}

/** Validates `when` (schema and regexes) and the `{match.NAME}` placeholders of `config`. */
export function stepWhenProblems(
  when: unknown,
  config: Record<string, unknown>,
): { problems: StepWhenProblem[]; when?: MatchSpec } {
  let compiled: CompiledMatch | undefined;
  if (when !== undefined) {
    const schemaProblems = validateAgainst(StepWhen, when);
    if (schemaProblems.length > 0) {
      const problems = schemaProblems.map((p) => ({
        pointer: `/when${p.path}`,
        message: p.message,
        hint: p.hint,
      }));
      return { problems };
    }
    try {
      compiled = compileMatcher(when as MatchSpec, '/when');
    } catch (err) {
      const pointer = (err as { context?: { jsonPath?: string } }).context?.jsonPath ?? '/when';
      return { problems: [{ pointer, message: (err as Error).message.replace(` at ${pointer}`, '') }] };
    }
  }
  const problems: StepWhenProblem[] = [];
  checkCaptures(config, '', new Set(compiled?.groups ?? []), problems);
  return { problems, when: when as MatchSpec | undefined };
}

const PLACEHOLDER = /(?<!\{)\{match\.([^}]*)\}/g;

function checkCaptures(node: unknown, pointer: string, inScope: Set<string>, out: StepWhenProblem[]): void {
  if (typeof node === 'string') {
    for (const m of node.matchAll(PLACEHOLDER)) {
      if (inScope.has(m[1])) continue;
      out.push({
        pointer,
        message: `{match.${m[1]}} names no group of a regex in scope`,
        hint: inScope.size
          ? `groups here: ${[...inScope].map((g) => `{match.${g}}`).join(' ')}`
          : 'name a group in the regex of this step’s or route’s `when` (`(?<NAME>…)`), or in `date.pattern`',
      });
    }
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const scope = Array.isArray(node)
    ? inScope
    : new Set([...inScope, ...regexGroups(node as Record<string, unknown>)]);
  for (const [key, child] of Object.entries(node))
    checkCaptures(child, `${pointer}/${escapePointer(key)}`, scope, out);
}

/** Groups of the regexes an object holds itself or in its `when` / `date`. */
function regexGroups(obj: Record<string, unknown>): string[] {
  const sources = [obj, obj.when, obj.date].flatMap((o) =>
    typeof o === 'object' && o !== null
      ? ['regex', 'regex_path', 'pattern'].map((k) => (o as Record<string, unknown>)[k])
      : [],
  );
  return sources.flatMap((s) => (typeof s === 'string' ? groupNames(s) : []));
}
