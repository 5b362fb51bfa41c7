/**
 * Item conditions shared by `filter`, `segregate` routes and the `when` of every step: globs,
 * regexes, extension, size, age and meta, all ANDed. Compiled once at config time; config
 * errors carry the JSON path. In the kernel because the runtime applies a step's `when` and
 * plugins apply their own conditions with the same rules.
 */
import { type Static, Type } from '@sinclair/typebox';
import { SluiceError } from './errors.js';
import { compileGlobs } from './glob.js';
import { itemName } from './item.js';
import type { Item } from './plugin-api.js';
import { Duration, Globs, Size } from './schema-fragments.js';
import { parseDuration, parseSize } from './units.js';

const MetaValue = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);

/** Condition fields, spread into a plugin's own schema. */
export const matchFields = {
  name: Type.Optional(Globs('Globs on the file name (`*.csv`, `["*.csv", "*.tsv"]`).')),
  path: Type.Optional(
    Globs(
      'Globs on the relative path (`in/**/*.csv`); a glob without `/` matches the file name at any depth.',
    ),
  ),
  regex: Type.Optional(
    Type.String({ description: 'Regular expression (JavaScript syntax) the file name must match.' }),
  ),
  regex_path: Type.Optional(
    Type.String({ description: 'Regular expression (JavaScript syntax) the relative path must match.' }),
  ),
  ext: Type.Optional(
    Type.Union([Type.String(), Type.Array(Type.String())], {
      description: 'File extension(s), without the dot, case-insensitive; `tar.gz` works too.',
    }),
  ),
  min_size: Type.Optional(
    Size({ description: 'Only files at least this big. A file of unknown size does not match.' }),
  ),
  max_size: Type.Optional(
    Size({ description: 'Only files at most this big. A file of unknown size does not match.' }),
  ),
  min_age: Type.Optional(
    Duration({
      description: 'Only files last modified at least this long ago. A file without mtime does not match.',
    }),
  ),
  max_age: Type.Optional(
    Duration({
      description: 'Only files last modified at most this long ago. A file without mtime does not match.',
    }),
  ),
  meta: Type.Optional(
    Type.Record(Type.String(), Type.Union([MetaValue, Type.Array(MetaValue)]), {
      description: 'Meta values the item must carry: `{provider: acme}`; a list means any of them.',
    }),
  ),
};

export const MatchSpec = Type.Object(matchFields, { additionalProperties: false });
export type MatchSpec = Static<typeof MatchSpec>;

/** True when `item` satisfies every condition; `now` is the reference for ages. */
export type ItemCondition = (item: Item, now: Date) => boolean;

/** Named groups of the `regex`/`regex_path` that matched (`{match.NAME}` in templates). */
export type Captures = Readonly<Record<string, string>>;

/** The captures of a matching item (`{}` without named groups), or null when it does not match. */
export type ItemMatcher = (item: Item, now: Date) => Captures | null;

export interface CompiledMatch {
  match: ItemMatcher;
  /** Names of the groups the regexes define: what a template of the same scope may use. */
  groups: ReadonlySet<string>;
}

/** Names of the named groups `(?<NAME>…)` of a regular expression source. */
export function groupNames(source: string): string[] {
  return [...source.matchAll(/\(\?<([A-Za-z_$][\w$]*)>/g)].map((m) => m[1]);
}

/** Compiles a regular expression from config, or throws SLUICE_E_CONFIG at `jsonPath`. */
export function compileRegex(source: string, jsonPath: string): RegExp {
  try {
    return new RegExp(source);
  } catch (err) {
    throw new SluiceError(
      'SLUICE_E_CONFIG',
      `invalid regular expression at ${jsonPath}: ${(err as Error).message}`,
      {
        cause: err,
        context: { jsonPath },
      },
    );
  }
}

function configValue<T>(jsonPath: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new SluiceError('SLUICE_E_CONFIG', `invalid value at ${jsonPath}: ${(err as Error).message}`, {
      cause: err,
      context: { jsonPath },
    });
  }
}

const asList = <T>(value: T | readonly T[]): readonly T[] => (Array.isArray(value) ? value : [value as T]);

/**
 * Compiles the conditions of `spec` (found at `jsonPath` in the plugin config) into one
 * predicate. An empty spec matches every item.
 */
export function compileMatch(spec: MatchSpec, jsonPath: string): ItemCondition {
  const { match } = compileMatcher(spec, jsonPath);
  return (item, now) => match(item, now) !== null;
}

/** Like `compileMatch`, keeping the named groups of the regexes that matched. */
export function compileMatcher(spec: MatchSpec, jsonPath: string): CompiledMatch {
  const conditions: ItemCondition[] = [];
  const capturing: Array<{ regex: RegExp; text: (item: Item) => string }> = [];
  if (spec.name !== undefined) {
    const globs = asList(spec.name);
    if (globs.some((g) => g.includes('/'))) {
      throw new SluiceError(
        'SLUICE_E_CONFIG',
        `a name glob cannot contain "/" (at ${jsonPath}/name): use \`path\``,
        {
          context: { jsonPath: `${jsonPath}/name` },
        },
      );
    }
    const matches = compileGlobs(globs);
    conditions.push((item) => matches(itemName(item)));
  }
  if (spec.path !== undefined) {
    const matches = compileGlobs(spec.path);
    conditions.push((item) => matches(item.path));
  }
  if (spec.regex !== undefined) {
    const regex = compileRegex(spec.regex, `${jsonPath}/regex`);
    capturing.push({ regex, text: itemName });
  }
  if (spec.regex_path !== undefined) {
    const regex = compileRegex(spec.regex_path, `${jsonPath}/regex_path`);
    capturing.push({ regex, text: (item) => item.path });
  }
  if (spec.ext !== undefined) {
    const suffixes = asList(spec.ext).map((e) => `.${e.replace(/^\./, '').toLowerCase()}`);
    conditions.push((item) => {
      const name = itemName(item).toLowerCase();
      return suffixes.some((suffix) => name.endsWith(suffix) && name.length > suffix.length);
    });
  }
  if (spec.min_size !== undefined) {
    const min = configValue(`${jsonPath}/min_size`, () => parseSize(spec.min_size as string | number));
    conditions.push((item) => item.size !== undefined && item.size >= min);
  }
  if (spec.max_size !== undefined) {
    const max = configValue(`${jsonPath}/max_size`, () => parseSize(spec.max_size as string | number));
    conditions.push((item) => item.size !== undefined && item.size <= max);
  }
  if (spec.min_age !== undefined) {
    const min = configValue(`${jsonPath}/min_age`, () => parseDuration(spec.min_age as string | number));
    conditions.push((item, now) => item.mtime !== undefined && now.getTime() - item.mtime.getTime() >= min);
  }
  if (spec.max_age !== undefined) {
    const max = configValue(`${jsonPath}/max_age`, () => parseDuration(spec.max_age as string | number));
    conditions.push((item, now) => item.mtime !== undefined && now.getTime() - item.mtime.getTime() <= max);
  }
  if (spec.meta !== undefined) {
    for (const [key, expected] of Object.entries(spec.meta)) {
      const accepted = new Set(asList(expected).map(String));
      conditions.push((item) => {
        const value = item.meta[key];
        return value !== undefined && value !== null && accepted.has(String(value));
      });
    }
  }
  const groups = new Set(capturing.flatMap(({ regex }) => groupNames(regex.source)));
  return {
    groups,
    match: (item, now) => {
      if (!conditions.every((condition) => condition(item, now))) return null;
      const captures: Record<string, string> = {};
      for (const { regex, text } of capturing) {
        const found = regex.exec(text(item));
        if (!found) return null;
        for (const [name, value] of Object.entries(found.groups ?? {}))
          if (value !== undefined) captures[name] = value;
      }
      return captures;
    },
  };
}

/**
 * `when:` on a step (any step): the runtime passes only the items that match to the step; the
 * others go on untouched. Named groups of its regexes are `{match.NAME}` in the step's templates.
 */
export const StepWhen = Type.Object(matchFields, {
  additionalProperties: false,
  description:
    'Run this step only for items meeting these conditions (all of them): name/path globs, regex, ext, size, age, meta. Other items pass it untouched.',
});
