/**
 * JSON Schema validation with ajv, and turning ajv's errors into one clear message per problem.
 *
 * Compiling a schema with ajv costs tens of milliseconds, and a pipeline needs a handful, so
 * the build precompiles the core shape and every built-in plugin schema to standalone code
 * (`precompiledValidatorsCode`, one module per schema, made by scripts/build-cli.mjs); the CLI
 * registers them (`usePrecompiledValidators`) and the loader imports the ones a pipeline uses
 * (`preloadValidators`). A validator is found by a hash of its schema's JSON, so a
 * schema that is not exactly the one precompiled (a third-party plugin, a test plugin, a
 * source run without the build) is compiled by ajv here, with the same options, and behaves
 * the same. ajv itself is loaded only then.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { TSchema } from '@sinclair/typebox';
import type { Ajv, ErrorObject, Options } from 'ajv';
import { nearest } from '../registry.js';

export interface SchemaProblem {
  /** JSON pointer of the offending value, relative to the validated document. */
  path: string;
  message: string;
  hint?: string;
}

/** What ajv's compiled and standalone validators both are. */
export interface Validator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

const AJV_OPTIONS: Options = {
  allErrors: true,
  useDefaults: true,
  coerceTypes: true,
  strict: false,
  verbose: true,
};

// `require`, not `import`: validation stays synchronous and ajv (≈60 ms to load) is not
// loaded at all when every schema has a precompiled validator.
const requireHere = createRequire(import.meta.url);

function newAjv(extra: Options = {}): Ajv {
  const { Ajv: AjvClass } = requireHere('ajv') as typeof import('ajv');
  const instance = new AjvClass({ ...AJV_OPTIONS, ...extra });
  instance.addKeyword({ keyword: 'x-secret', schemaType: 'boolean' });
  return instance;
}

let runtimeAjv: Ajv | undefined;
/** Precompiled validator modules by validator name, each loaded when a pipeline needs it. */
const precompiled = new Map<string, () => Promise<Record<string, Validator>>>();
const validators = new WeakMap<object, Validator>();

/** The name of `schema`'s validator: a hash of exactly what ajv sees (its JSON). */
export function validatorName(schema: TSchema): string {
  return `v${createHash('sha256').update(JSON.stringify(schema)).digest('hex').slice(0, 32)}`;
}

/** Registers the modules made by `precompiledValidatorsCode`, by the name of the validator each exports. */
export function usePrecompiledValidators(
  modules: Record<string, () => Promise<Record<string, Validator>>>,
): void {
  for (const [name, load] of Object.entries(modules)) precompiled.set(name, load);
}

/**
 * Loads the precompiled validators of `schemas` that exist, so that `validateAgainst` does not
 * compile them. Without it (or for other schemas) validation is the same, only slower to start.
 */
export async function preloadValidators(schemas: Iterable<TSchema>): Promise<void> {
  if (precompiled.size === 0) return;
  await Promise.all(
    [...schemas].map(async (schema) => {
      if (validators.has(schema)) return;
      const name = validatorName(schema);
      const load = precompiled.get(name);
      const fn = load ? (await load())[name] : undefined;
      if (fn) validators.set(schema, fn);
    }),
  );
}

/**
 * An ES module exporting one standalone validator per distinct schema, named by
 * `validatorName`. It needs only ajv's small runtime helpers (`require('ajv/dist/runtime/…')`).
 */
export function precompiledValidatorsCode(schemas: Iterable<TSchema>): string {
  const ajv = newAjv({ code: { source: true, esm: true } });
  const names: Record<string, string> = {};
  for (const schema of schemas) {
    const name = validatorName(schema);
    if (names[name]) continue;
    ajv.addSchema(schema, name);
    names[name] = name;
  }
  const { default: standaloneCode } = requireHere(
    'ajv/dist/standalone',
  ) as typeof import('ajv/dist/standalone/index.js');
  return standaloneCode(ajv, names);
}

function validatorFor(schema: TSchema): Validator {
  let fn = validators.get(schema);
  if (!fn) {
    runtimeAjv ??= newAjv();
    fn = runtimeAjv.compile(schema);
    validators.set(schema, fn);
  }
  return fn;
}

/** Validates (and fills defaults into) `value`; returns the problems, empty when valid. */
export function validateAgainst(schema: TSchema, value: unknown): SchemaProblem[] {
  const fn = validatorFor(schema);
  if (fn(value)) return [];
  return summarize(fn.errors ?? []);
}

function summarize(errors: ErrorObject[]): SchemaProblem[] {
  const kept = dropBranchNoise(errors);
  const problems: SchemaProblem[] = [];
  const seen = new Set<string>();
  for (const e of kept) {
    const p = describe(e);
    const key = `${p.path}\u0000${p.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      problems.push(p);
    }
  }
  return problems;
}

/**
 * ajv reports every failing branch of an anyOf plus the anyOf itself. Keep the anyOf alone,
 * unless the value is an object and exactly one branch accepts objects: then that branch's
 * own errors say more (`unknown key "moveto"` beats "must match a schema in anyOf").
 */
function dropBranchNoise(errors: ErrorObject[]): ErrorObject[] {
  const anyOfs = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  let result = errors;
  for (const a of anyOfs) {
    const prefix = `${a.schemaPath}/`;
    const branches = (a.schema as TSchema[]) ?? [];
    const data = a.data;
    let keepBranch = -1;
    if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
      const objectBranches = branches
        .map((b, i) => ({ b, i }))
        .filter(
          ({ b }) => b.type === 'object' || b.properties !== undefined || b.patternProperties !== undefined,
        );
      if (objectBranches.length === 1) keepBranch = objectBranches[0].i;
    }
    result = result.filter((e) => {
      if (!e.schemaPath.startsWith(prefix)) return true;
      if (keepBranch < 0) return false;
      return e.schemaPath.startsWith(`${prefix}${keepBranch}/`);
    });
    if (keepBranch >= 0) result = result.filter((e) => e !== a);
  }
  return result;
}

function describe(e: ErrorObject): SchemaProblem {
  const path = e.instancePath;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys((e.parentSchema as TSchema)?.properties ?? {});
      const suggestion = nearest(key, known);
      return {
        path: `${path}/${escapePointer(key)}`,
        message: `unknown key "${key}"`,
        hint: suggestion
          ? `did you mean "${suggestion}"?`
          : known.length
            ? `known keys: ${known.join(', ')}`
            : undefined,
      };
    }
    case 'required': {
      const key = (e.params as { missingProperty: string }).missingProperty;
      return { path, message: `missing required key "${key}"` };
    }
    case 'anyOf':
    case 'oneOf':
      return {
        path,
        message: `${showValue(e.data)} is not valid here: expected ${alternatives(e.schema as TSchema[], (e.parentSchema as TSchema | undefined)?.examples)}`,
      };
    case 'const':
      return {
        path,
        message: `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`,
      };
    case 'enum':
      return {
        path,
        message: `${showValue(e.data)} is not one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`,
      };
    case 'type':
      return { path, message: `must be ${(e.params as { type: string }).type}, got ${typeName(e.data)}` };
    case 'pattern': {
      const examples = (e.parentSchema as TSchema)?.examples as unknown[] | undefined;
      return {
        path,
        message: `${showValue(e.data)} does not have the expected form${examples ? ` (e.g. ${examples.join(', ')})` : ` (pattern ${(e.params as { pattern: string }).pattern})`}`,
      };
    }
    case 'minProperties':
    case 'maxProperties':
      if (e.parentSchema && (e.parentSchema as TSchema).maxProperties === 1) {
        const keys = e.data && typeof e.data === 'object' ? Object.keys(e.data) : [];
        return {
          path,
          message: `a plugin must be a single-key map {plugin_name: config}; got ${keys.length === 0 ? 'an empty map' : `${keys.length} keys (${keys.join(', ')})`}`,
        };
      }
      return { path, message: e.message ?? 'invalid' };
    default:
      return { path, message: e.message ?? 'invalid value' };
  }
}

/** `unionExamples`: a Duration/Size union carries its examples on the union, not its string branch. */
function alternatives(branches: TSchema[], unionExamples?: unknown): string {
  const parts = branches.map((b) => {
    const examples = b.examples ?? unionExamples;
    if (b.const !== undefined) return JSON.stringify(b.const);
    if (b.enum) return (b.enum as unknown[]).map((v) => JSON.stringify(v)).join(' | ');
    if (b.type === 'object' && b.properties) return `{${Object.keys(b.properties).join(', ')}}`;
    if (b.type === 'string' && b.pattern && Array.isArray(examples))
      return `a string like ${(examples as string[]).slice(0, 3).join(', ')}`;
    return b.type ? `a ${b.type}` : 'another form';
  });
  return [...new Set(parts)].join(' | ');
}

function showValue(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return Array.isArray(v) ? 'a list' : 'a map';
  return JSON.stringify(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return `${typeof v} ${JSON.stringify(v)}`;
}

export function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function splitPointer(pointer: string): string[] {
  if (pointer === '' || pointer === '/') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}
