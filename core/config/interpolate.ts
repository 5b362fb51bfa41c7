/**
 * `${VAR}` in pipeline files: interpolation of string values (never keys, so the structure
 * cannot be injected) from the environment and a `.env` beside the pipeline.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';

export interface Interpolated {
  value: string;
  missing: string[];
  used: string[];
}

const VAR_PATTERN = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}/g;

/** `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset); `$${` is a literal `${`. */
export function interpolate(text: string, env: Record<string, string | undefined>): Interpolated {
  const missing: string[] = [];
  const used: string[] = [];
  const value = text.replace(
    VAR_PATTERN,
    (match, name: string | undefined, op: string | undefined, fallback: string | undefined) => {
      if (match === '$${') return '${';
      const v = env[name!];
      used.push(name!);
      if (op === ':-') return v === undefined || v === '' ? (fallback ?? '') : v;
      if (op === '-') return v === undefined ? (fallback ?? '') : v;
      if (v === undefined) {
        missing.push(name!);
        return '';
      }
      return v;
    },
  );
  return { value, missing, used };
}

/** The variables of a `.env` file in `dir`, if there is one. */
export function readDotEnv(dir: string): Record<string, string> {
  const file = join(dir, '.env');
  if (!existsSync(file)) return {};
  return parseEnv(readFileSync(file, 'utf8')) as Record<string, string>;
}
