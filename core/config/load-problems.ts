/** How the loader words some of its problems: plugin config errors, source/sink counts, durations. */
import { SluiceError } from '../errors.js';
import type { PluginRef } from './plugin-ref.js';

export function reportPluginConfigError(
  err: unknown,
  ref: PluginRef,
  problem: (
    pointer: string,
    message: string,
    extra?: { step?: string; plugin?: string; hint?: string },
  ) => void,
): void {
  const rel = err instanceof SluiceError ? (err.context.jsonPath ?? '') : '';
  const raw = err instanceof SluiceError ? err.message : ((err as Error)?.message ?? String(err));
  const message = rel ? raw.replace(` at ${rel}`, '') : raw;
  problem(ref.jsonPath + rel, message, {
    step: ref.stepId,
    plugin: ref.name,
    hint: err instanceof SluiceError ? err.context.hint : undefined,
  });
}

export function isSingleKeyMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 1;
}

export function exactlyOne(
  shape: Record<string, unknown>,
  single: string,
  plural: string,
  problem: (pointer: string, message: string) => void,
): void {
  if (shape[single] !== undefined && shape[plural] !== undefined) {
    problem(`/${plural}`, `give either \`${single}:\` or \`${plural}:\`, not both`);
  } else if (shape[single] === undefined && shape[plural] === undefined) {
    problem('', `missing \`${single}:\` (or \`${plural}:\` for several)`);
  }
}

/** `every: 5 minutes`: the unit is the part people get wrong. */
export function durationHint(message: string): string | undefined {
  return message.includes('a string like 500ms')
    ? 'a number and a unit without a space: ms, s, m, h, d or w (5m, 90s, 1h)'
    : undefined;
}
