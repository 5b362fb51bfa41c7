/**
 * Generates the JSON Schema of pipeline files from the core shape and every plugin's config
 * schema, and the plugin reference docs: one declaration, many outputs.
 */
import type { TSchema } from '@sinclair/typebox';
import { PipelineShape } from './config/schema.js';
import { StepWhen } from './item-match.js';
import type { Plugin, PluginExample } from './plugin-api.js';
import { type PluginRegistry, type PluginRole, roleOf } from './registry.js';

function plain(schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}

export function pipelineJsonSchema(registry: PluginRegistry): Record<string, unknown> {
  const defs: Record<string, unknown> = {};
  const entryFor = (role: PluginRole) => {
    const refs = registry.names(role).map((name) => {
      const plugin = registry.get(role, name)!;
      const id = `${role}.${name}`;
      defs[id] = role === 'step' ? withStepWhen(plain(plugin.config), defs) : plain(plugin.config);
      return {
        type: 'object',
        description: plugin.summary,
        properties: { [name]: { anyOf: [{ $ref: `#/$defs/${id}` }, { type: 'null' }] } },
        required: [name],
        additionalProperties: false,
      };
    });
    return { anyOf: refs };
  };
  const shape = plain(PipelineShape);
  const props = shape.properties as Record<string, Record<string, unknown>>;
  const source = entryFor('source');
  const sink = entryFor('sink');
  const step = entryFor('step');
  props.source = { ...source, description: 'Where files come from: one plugin.' };
  props.sources = {
    type: 'array',
    minItems: 1,
    items: source,
    description: 'Several sources, each with an optional `name`.',
  };
  props.steps = { type: 'array', items: step, description: 'Steps applied in order.' };
  props.sink = { ...sink, description: 'Where files go: one plugin.' };
  props.sinks = {
    type: 'array',
    minItems: 1,
    items: sink,
    description: 'Fan-out: every item is committed to each sink.',
  };
  props.on_error = {
    ...sink,
    description: 'Dead-letter sink: failed items and a `<name>.error.json` reason.',
  };
  const definition = (role: PluginRole) =>
    registry.names(role).map((name) => ({
      type: 'object',
      properties: { [name]: { $ref: `#/$defs/${role}.${name}` } },
      required: [name],
      additionalProperties: false,
    }));
  props.connections = {
    ...props.connections,
    additionalProperties: { anyOf: [...definition('source'), ...definition('sink'), ...definition('step')] },
  };
  const schema = editorSchema({
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://sluice.dev/schemas/pipeline.schema.json',
    title: 'Sluice pipeline',
    ...shape,
    $defs: Object.fromEntries(Object.entries(defs).sort(([a], [b]) => a.localeCompare(b))),
  }) as Record<string, unknown>;
  return withConnections(schema);
}

const CONNECTION: JsonSchema = {
  type: 'string',
  description:
    'A named connection (`connections:` of sluice.config.yaml or of this file) whose fields go under the ones written here.',
};

/**
 * Every plugin block may name a connection (`sftp: {connection: acme, path: /in}`): each plugin's
 * definition takes `connection`, and asks for its required keys only when no connection gives
 * them. A definition under `connections:` may be partial (the blocks using it add the rest).
 */
function withConnections(schema: JsonSchema): JsonSchema {
  const defs = schema.$defs as Record<string, JsonSchema>;
  for (const [id, def] of Object.entries(defs)) {
    if (id.startsWith('core.')) continue;
    const { required, ...rest } = def;
    defs[id] = { ...rest, properties: { connection: CONNECTION, ...(def.properties as JsonSchema) } };
    if (Array.isArray(required)) defs[`${id}.required`] = { required };
  }
  const props = schema.properties as Record<string, JsonSchema>;
  const lists = [props.sources, props.sinks, props.steps].map((p) => p?.items as JsonSchema | undefined);
  for (const entry of [props.source, props.sink, props.on_error, ...lists]) {
    for (const branch of (entry?.anyOf ?? []) as JsonSchema[]) {
      for (const value of Object.values(branch.properties as Record<string, JsonSchema>)) {
        const ref = ((value.anyOf as JsonSchema[] | undefined)?.[0]?.$ref ?? '') as string;
        const required = `${ref}.required`;
        if (defs[required.replace('#/$defs/', '')] === undefined) continue;
        (value.anyOf as JsonSchema[])[0] = {
          allOf: [{ $ref: ref }],
          if: { required: ['connection'] },
          else: { $ref: required },
        };
      }
    }
  }
  return schema;
}

type JsonSchema = Record<string, unknown>;

/** Every step accepts `when` (the runtime applies it; the loader takes it out of the config). */
function withStepWhen(config: JsonSchema, defs: JsonSchema): JsonSchema {
  defs['core.step_when'] ??= plain(StepWhen);
  const properties = (config.properties ?? {}) as JsonSchema;
  return { ...config, properties: { when: { $ref: '#/$defs/core.step_when' }, ...properties } };
}

/** A `${VAR}` written where the file's text is checked before interpolation. */
const INTERPOLATION: JsonSchema = {
  type: 'string',
  pattern: '\\$\\{',
  description: '`${VAR}` or `${VAR:-default}`: replaced before the value is checked.',
};
const SCALAR_TYPES = new Set(['string', 'integer', 'number', 'boolean', 'null']);
const ANNOTATIONS = ['title', 'description', 'default', 'examples'];

/**
 * The schema an editor checks the file with, before `${…}` is interpolated and without the
 * defaults the loader fills in (ajv `useDefaults`): a key with a default is not required, and
 * wherever a number, a boolean, an enum or a patterned string is expected a `${…}` is accepted
 * too. The loader keeps validating against the plugins' own schemas, after interpolation.
 */
export function editorSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(editorSchema);
  if (node === null || typeof node !== 'object') return node;
  const s: JsonSchema = { ...(node as JsonSchema) };
  for (const key of ['properties', 'patternProperties', '$defs', 'definitions']) {
    if (s[key] && typeof s[key] === 'object')
      s[key] = Object.fromEntries(Object.entries(s[key] as JsonSchema).map(([k, v]) => [k, editorSchema(v)]));
  }
  for (const key of [
    'items',
    'additionalProperties',
    'not',
    'if',
    'then',
    'else',
    'contains',
    'allOf',
    'oneOf',
  ])
    if (s[key] && typeof s[key] === 'object') s[key] = editorSchema(s[key]);
  if (Array.isArray(s.required) && s.properties) {
    const props = s.properties as Record<string, JsonSchema>;
    const required = (s.required as string[]).filter((k) => props[k]?.default === undefined);
    if (required.length > 0) s.required = required;
    else delete s.required;
  }
  if (Array.isArray(s.anyOf)) {
    const members = s.anyOf as JsonSchema[];
    if (members.every(isScalarSchema)) {
      // A union of scalars (an enum, a duration as text or seconds): one more member.
      if (members.some(needsInterpolation)) s.anyOf = [...members, INTERPOLATION];
      return s;
    }
    s.anyOf = members.map(editorSchema);
    return s;
  }
  if (isScalarSchema(s) && needsInterpolation(s)) {
    const outer: JsonSchema = {};
    for (const key of ANNOTATIONS) {
      if (s[key] !== undefined) outer[key] = s[key];
      delete s[key];
    }
    return { ...outer, anyOf: [s, INTERPOLATION] };
  }
  return s;
}

function isScalarSchema(s: JsonSchema): boolean {
  return typeof s.type === 'string' && SCALAR_TYPES.has(s.type) && !s.anyOf;
}

/** A scalar a `${…}` would not satisfy: anything but a free-form string. */
function needsInterpolation(s: JsonSchema): boolean {
  if (s.type !== 'string') return s.type !== 'null';
  return ['pattern', 'enum', 'const', 'format', 'maxLength'].some((k) => s[k] !== undefined);
}

/**
 * `*.test.yaml` files of `sluice test` (the shape core/cli/commands/test.ts reads): each case's
 * inputs written into a stand-in source folder, the files and failures expected.
 */
export function pipelineTestJsonSchema(): Record<string, unknown> {
  const relPath = { type: 'string', minLength: 1, description: 'Relative to the stand-in folder.' };
  const expectedFile = {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: {
      path: { ...relPath, description: 'Where the file must land, relative to the sink.' },
      sink: { type: 'integer', minimum: 0, description: 'Index of the sink (fan-out); default 0.' },
      content: { type: 'string', description: 'The exact text.' },
      contains: { type: 'string', description: 'Text the file contains.' },
      sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$', description: 'sha256 of the bytes.' },
    },
  };
  const input = {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    oneOf: [{ required: ['content'] }, { required: ['base64'] }, { required: ['file'] }],
    properties: {
      path: { ...relPath, description: 'Path of the input, relative to the source folder.' },
      source: { type: 'string', description: 'Name of the source it goes to (several sources).' },
      content: { type: 'string', description: 'The file as text.' },
      base64: { type: 'string', description: 'The file as base64 (binary).' },
      file: { type: 'string', description: 'A file to copy, relative to the test file.' },
    },
  };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://sluice.dev/schemas/pipeline-test.schema.json',
    title: 'Sluice pipeline tests (`sluice test`)',
    type: 'object',
    additionalProperties: false,
    required: ['tests'],
    properties: {
      tests: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'inputs', 'expect'],
          properties: {
            name: { type: 'string', description: 'What the case shows.' },
            inputs: { type: 'array', minItems: 1, items: input },
            expect: {
              type: 'object',
              additionalProperties: false,
              properties: {
                files: {
                  type: 'array',
                  items: { anyOf: [{ ...relPath, description: 'Only that it lands here.' }, expectedFile] },
                },
                failures: {
                  type: 'array',
                  items: {
                    type: 'object',
                    additionalProperties: false,
                    required: ['path'],
                    properties: {
                      path: { type: 'string', description: 'The input that must fail.' },
                      error: { type: 'string', description: 'Text the reason contains.' },
                    },
                  },
                },
                only: {
                  type: 'boolean',
                  description: 'Default true: no file but the expected ones may land; false allows others.',
                },
              },
            },
          },
        },
      },
    },
  };
}

interface FieldDoc {
  name: string;
  type: string;
  required: boolean;
  default?: unknown;
  description: string;
}

export function describeType(s: Record<string, unknown>): string {
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (Array.isArray(s.anyOf)) return (s.anyOf as Record<string, unknown>[]).map(describeType).join(' | ');
  if (s.type === 'array') return `${describeType((s.items as Record<string, unknown>) ?? {})}[]`;
  if (s.type === 'object' && s.properties) return `{${Object.keys(s.properties).join(', ')}}`;
  if (s.type === 'string' && Array.isArray(s.examples))
    return `string (e.g. ${(s.examples as string[]).slice(0, 2).join(', ')})`;
  return typeof s.type === 'string' ? s.type : 'any';
}

export function pluginFields(plugin: Plugin): FieldDoc[] {
  const schema = plain(plugin.config);
  const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  return Object.entries(props).map(([name, s]) => ({
    name,
    type: describeType(s),
    required: required.has(name),
    default: s.default,
    description: String(s.description ?? ''),
  }));
}

/** Markdown reference of one plugin. */
export function pluginMarkdown(plugin: Plugin): string {
  const lines = [`### \`${plugin.name}\` (${plugin.kind})`, '', plugin.summary, ''];
  if (plugin.description) lines.push(plugin.description, '');
  const fields = pluginFields(plugin);
  if (fields.length > 0) {
    lines.push('| key | type | default | description |', '|---|---|---|---|');
    for (const f of fields) {
      const def =
        f.default === undefined ? (f.required ? '**required**' : '') : `\`${JSON.stringify(f.default)}\``;
      lines.push(`| \`${f.name}\` | ${escapeCell(f.type)} | ${def} | ${escapeCell(f.description)} |`);
    }
    lines.push('');
  }
  for (const ex of plugin.examples ?? [])
    lines.push(`${ex.title}:`, '', '```yaml', pluginExampleYaml(plugin, ex), '```', '');
  return lines.join('\n');
}

/**
 * One example as it goes into a pipeline: under its role key and its plugin name (a step as an
 * item of `steps:`), so that pasted into a file with the other parts it validates as it is.
 */
export function pluginExampleYaml(plugin: Plugin, example: PluginExample): string {
  const body = example.yaml.replace(/\s+$/, '');
  const role = roleOf(plugin.kind);
  const head = role === 'step' ? `steps:\n  - ${plugin.name}:` : `${role}:\n  ${plugin.name}:`;
  if (body.trim() === '' || body.trim() === '{}') return `${head} {}`;
  const indent = role === 'step' ? '      ' : '    ';
  const lines = body.split('\n').map((l) => (l.trim() === '' ? '' : `${indent}${l.replace(/\s+$/, '')}`));
  return `${head}\n${lines.join('\n')}`;
}

function escapeCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** docs/plugins.md */
export function pluginsMarkdown(registry: PluginRegistry): string {
  const out = [
    '# Plugin reference',
    '',
    '<!-- Generated by `npm run docs` from the plugin declarations; a test fails when it is stale. -->',
    '',
  ];
  for (const [role, title] of [
    ['source', 'Sources'],
    ['step', 'Steps'],
    ['sink', 'Sinks'],
  ] as const) {
    out.push(`## ${title}`, '');
    for (const name of registry.names(role)) out.push(pluginMarkdown(registry.get(role, name)!));
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** docs/errors.md */
export function errorsMarkdown(codes: Record<string, string>, exitCodes: Record<string, number>): string {
  const out = [
    '# Errors and exit codes',
    '',
    '<!-- Generated by `npm run docs` from core/errors.ts and core/cli/exit-codes.ts; a test fails when it is stale. -->',
    '',
    'Every error Sluice reports carries a code and says where: `file:line:col` and the JSON path for a',
    'pipeline file; pipeline, step, plugin and item at run time. Secrets are masked as `***`.',
    '',
    '| code | meaning |',
    '|---|---|',
    ...Object.entries(codes).map(([code, text]) => `| \`${code}\` | ${text} |`),
    '',
    '## Exit codes of `sluice`',
    '',
    '| code | meaning |',
    '|---|---|',
    ...Object.entries(exitCodes).map(([name, code]) => `| ${code} | ${EXIT_TEXT[name] ?? name} |`),
    '',
  ];
  return out.join('\n');
}

const EXIT_TEXT: Record<string, string> = {
  ok: 'everything processed, or nothing to do',
  failed: 'some items failed for good (see the summary, `sluice history --state failed`, and `on_error`)',
  usage: 'invalid pipeline file or command line: nothing was run',
  locked:
    'the pipeline is running already on this state folder (`SLUICE_E_LOCKED`, naming the holder’s pid, host and file), or another file declares its name: nothing was run',
  interrupted: 'interrupted by a second SIGINT/SIGTERM: in-flight items were aborted, nothing half-written',
};
