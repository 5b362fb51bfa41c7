/**
 * Every YAML example in the docs is a complete, valid snippet (issue 15): the README, the
 * pipelines' notes, the hand-written docs and every plugin example (docs/plugins.md and
 * `sluice plugins <name>` print them). A pipeline is loaded with the loader, a defaults file read
 * as the CLI reads it, a pipeline test checked against its schema; a block that starts with
 * `# fragment` is a part of a pipeline and is loaded inside a minimal one. The `--set`
 * one-liners of the pipelines' notes are loaded with their overrides.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { readConfigFile } from '../../core/cli/config-file.js';
import { generatedFiles } from '../../core/generated.js';
import { pluginExampleYaml } from '../../core/schema-gen.js';
import { builtinRegistry, loadPipelineFile } from '../../core/sdk.js';
import { makeWorkspace } from '../helpers/workspace.js';

const root = join(import.meta.dirname, '..', '..');
const ws = makeWorkspace('sluice-docs-');
afterAll(() => ws.cleanup());

const DOCS = [
  'README.md',
  ...readdirSync(join(root, 'pipelines'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `pipelines/${f}`),
  ...['architecture.md', 'reliability.md', 'scale-out.md'].map((f) => `docs/${f}`),
];

interface Block {
  doc: string;
  line: number;
  lang: string;
  text: string;
}

function blocks(doc: string): Block[] {
  const out: Block[] = [];
  const lines = readFileSync(join(root, doc), 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i]);
    out.push({ doc, line: start + 1, lang: open[1], text: `${body.join('\n')}\n` });
  }
  return out;
}

/** A value of the right kind for each `${VAR}`: a port a number, a URL a URL. */
function varsOf(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) {
    const name = m[1];
    vars[name] = name.endsWith('PORT')
      ? '2222'
      : name.endsWith('_DB_URL')
        ? 'postgres://user:password@db.example:5432/db'
        : name.endsWith('_URL')
          ? 'https://api.example'
          : name.endsWith('_ENDPOINT')
            ? 'http://127.0.0.1:9000'
            : `value-of-${name.toLowerCase()}`;
  }
  return vars;
}

const MINIMAL: Record<string, string> = {
  name: 'name: snippet\n',
  source: 'source:\n  local:\n    path: ./in\n',
  sink: 'sink:\n  local:\n    path: ./out\n',
};

/** Loads `text` as a pipeline, adding the parts a fragment leaves out. */
async function loadAsPipeline(text: string, fragment: boolean, set: string[] = []): Promise<void> {
  const doc = (parse(text) ?? {}) as Record<string, unknown>;
  let full = text.endsWith('\n') ? text : `${text}\n`;
  if (fragment) {
    if (doc.name === undefined) full = MINIMAL.name + full;
    if (doc.source === undefined && doc.sources === undefined) full += MINIMAL.source;
    if (doc.sink === undefined && doc.sinks === undefined) full += MINIMAL.sink;
  }
  const file = ws.pipeline(full, 'snippet.yaml');
  await loadPipelineFile(file, { env: varsOf(full), set });
}

const CONFIG_KEYS = /^(cluster|state_dir|log_\w+|error_log|metrics_port|vars|connections):/m;
const testSchema = new Ajv({ strict: false }).compile(
  JSON.parse(generatedFiles()['schemas/pipeline-test.schema.json']),
);

describe('YAML examples in the docs', () => {
  const all = DOCS.flatMap(blocks).filter((b) => b.lang === 'yaml' || b.lang === 'yml');

  it('finds them', () => {
    expect(all.length).toBeGreaterThanOrEqual(5);
  });

  for (const b of all) {
    it(`${b.doc}:${b.line} is complete and valid`, async () => {
      const fragment = /^#\s*fragment\b/.test(b.text);
      const doc = parse(b.text) as Record<string, unknown> | null;
      expect(doc, 'an empty block').not.toBeNull();
      if (doc && 'tests' in doc) {
        expect(testSchema(doc), JSON.stringify(testSchema.errors)).toBe(true);
      } else if (CONFIG_KEYS.test(b.text) && !('source' in (doc ?? {})) && !('sources' in (doc ?? {}))) {
        const file = ws.write('sluice.config.yaml', b.text);
        expect(() => readConfigFile(file, varsOf(b.text))).not.toThrow();
      } else {
        await loadAsPipeline(b.text, fragment);
      }
    });
  }
});

describe('plugin examples (docs/plugins.md, sluice plugins <name>)', () => {
  const registry = builtinRegistry();
  for (const plugin of registry.all()) {
    for (const ex of plugin.examples ?? []) {
      it(`${plugin.name}: ${ex.title}`, async () => {
        const snippet = pluginExampleYaml(plugin, ex);
        expect(snippet).not.toMatch(/-:\s*$/m);
        expect(generatedFiles()['docs/plugins.md']).toContain(snippet);
        await loadAsPipeline(snippet, true);
      });
    }
  }
});

describe('--set one-liners in the pipelines’ notes', () => {
  const lines = DOCS.flatMap(blocks)
    .filter((b) => b.lang === 'sh')
    .flatMap((b) => b.text.split('\n').map((l) => ({ ...b, command: l })))
    .filter((b) => /\bsluice (run|plan|validate|watch|test) \S+\.yaml\b.*--set /.test(b.command));

  it('finds them', () => {
    expect(lines.length).toBeGreaterThanOrEqual(6);
  });

  for (const l of lines) {
    it(`${l.doc}: ${l.command}`, async () => {
      const file = /sluice \w+ (\S+\.yaml)/.exec(l.command)![1];
      // The shell's quoting: '…' around a --set value.
      const set = [...l.command.matchAll(/--set (?:'([^']*)'|(\S+))/g)].map((m) => m[1] ?? m[2]);
      const vars = Object.fromEntries([...l.command.matchAll(/--var (\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
      const text = readFileSync(join(root, file), 'utf8');
      await loadPipelineFile(join(root, file), { env: varsOf(text), vars, set });
    });
  }
});
