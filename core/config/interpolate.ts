/**
 * `${VAR}` in pipeline files: interpolation of string values (never keys, so the structure
 * cannot be injected) from the environment and a `.env` beside the pipeline.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { type Document, type Node, type Scalar, visit } from 'yaml';
import { SluiceError } from '../errors.js';
import { registerSecret, SECRET_ENV_NAME } from '../observe/redact.js';

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

/**
 * Interpolates `${VAR}` in every string value of `doc` (or of one node of it, a connection's
 * definition) in place (never keys, so the structure stays as written). A variable that is unset and has no default is an error at its place,
 * saying where `.env` was looked for; a secret-looking variable's value is masked from here on.
 */
export function interpolateDocument(
  doc: Document | Node,
  env: Record<string, string | undefined>,
  dotEnvDir: string,
  at: (offset: number) => { file: string; line: number; column: number },
): SluiceError[] {
  const errors: SluiceError[] = [];
  // Absolute, so it cannot be mistaken for a `.env` in the folder the command was run from.
  const dotEnv = resolve(dotEnvDir, '.env');
  const looked = existsSync(dotEnv)
    ? `not in the environment nor in ${dotEnv}`
    : `not in the environment, and there is no ${dotEnv}`;
  visit(doc, {
    Scalar(key, node: Scalar) {
      if (key === 'key' || typeof node.value !== 'string') return;
      const result = interpolate(node.value, env);
      for (const name of result.missing) {
        errors.push(
          new SluiceError(
            'SLUICE_E_ENV',
            `environment variable ${name} is not set and has no default (${looked})`,
            {
              context: {
                ...at(node.range?.[0] ?? 0),
                hint: `pass --var ${name}=… or set ${name} in the environment, add ${name}=… to ${dotEnv}, or write \${${name}:-default}`,
              },
            },
          ),
        );
      }
      for (const name of result.used) if (SECRET_ENV_NAME.test(name)) registerSecret(env[name]);
      node.value = result.value;
    },
  });
  return errors;
}
