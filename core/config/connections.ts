/**
 * Connections declared once: named plugin configs under `connections:` — in the defaults file
 * (`sluice.config.yaml`, shared by every pipeline run with it) or at a pipeline's top level
 * (that file's own; it wins over a shared one of the same name) — used by name in any plugin
 * block: `sftp: {connection: acme, path: /outgoing}`. The definition's keys go under the
 * block's own (a key the block writes replaces the connection's, key by key at the top level,
 * as YAML merge keys do), and the result is validated against the plugin's schema like any
 * block. A problem then names both places: the use in the pipeline and the definition.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import {
  type Document,
  isMap,
  isScalar,
  LineCounter,
  type Node,
  type Pair,
  parseDocument,
  visit,
} from 'yaml';
import { SluiceError } from '../errors.js';
import { nearest } from '../registry.js';
import { interpolateDocument } from './interpolate.js';
import { splitPointer } from './validate.js';
import { YAML_OPTIONS, yamlProblems } from './yaml-errors.js';
import { nodeOffset } from './yaml-position.js';

type Lookup = Map<string, Definition>;

interface Interpolation {
  env: Record<string, string | undefined>;
  dotEnvDir: string;
  /** Nodes already interpolated in this document. */
  done: WeakSet<Node>;
}

/** The nodes the aliases under `node` stand for, and theirs in turn. */
function aliasTargets(doc: Document, node: Node, seen = new Set<Node>()): Node[] {
  visit(node, {
    Alias(_key, alias) {
      const target = alias.resolve(doc) as Node | undefined;
      if (!target || seen.has(target)) return;
      seen.add(target);
      aliasTargets(doc, target, seen);
    },
  });
  return [...seen];
}

export const CONFIG_FILE_NAMES = ['sluice.config.yaml', 'sluice.config.yml'];

/** Options every pipeline file is parsed with (merge keys: `<<: *conn`). */
export { YAML_OPTIONS } from './yaml-errors.js';

export interface Place {
  file: string;
  /** Absent for a value given on the command line (`--set`). */
  line?: number;
  column?: number;
}

export interface Connection {
  name: string;
  /** The plugin it configures (the definition's single key), e.g. `s3`. */
  plugin: string;
  /** Its fields, interpolated. */
  config: Record<string, unknown>;
  /** Where it is defined (its name). */
  where: Place;
  /** Where a key of its config is (`pointer` relative to the config). */
  placeOf(pointer: string, atKey?: boolean): Place;
  /** The definition as written: a change of it is a new version of the pipelines using it. */
  text: string;
}

let defaultsFile: string | undefined;

/**
 * The defaults file the CLI found (`--config`, `$SLUICE_CONFIG`, `./sluice.config.yaml`): its
 * connections are the ones every pipeline of the command sees. Set once by the composition root.
 */
export function useDefaultsFile(file: string | undefined): void {
  defaultsFile = file;
}

/**
 * The file whose `connections:` a pipeline in `baseDir` sees: the one given, else the CLI's
 * defaults file, else a `sluice.config.yaml` beside the pipeline (library use, or a pipeline run
 * from another folder without a defaults file).
 */
export function connectionsFileFor(baseDir: string, given?: string): string | undefined {
  if (given) return resolve(given);
  if (defaultsFile) return defaultsFile;
  return CONFIG_FILE_NAMES.map((n) => join(baseDir, n)).find((f) => existsSync(f));
}

type At = (offset: number) => Required<Place>;

/**
 * The connections of the `connections:` map `node` of `doc`. Definitions are interpolated only
 * when asked for (`get`), with `env`: a shared file may hold connections needing variables that
 * a pipeline not using them does not set.
 */
export function connectionsOf(
  doc: Document,
  node: unknown,
  at: At,
  text: string,
  interpolation?: Interpolation,
): Lookup {
  const table: Lookup = new Map();
  if (!isMap(node)) return table;
  for (const pair of node.items as Pair<Node, Node>[]) {
    const name = isScalar(pair.key) ? String(pair.key.value) : '';
    const where = at(pair.key?.range?.[0] ?? 0);
    const only = isMap(pair.value) && pair.value.items.length === 1 ? pair.value.items[0].key : undefined;
    let resolved: Connection | SluiceError[] | undefined;
    table.set(name, {
      plugin: isScalar(only) ? String(only.value) : undefined,
      where,
      resolve: () => {
        resolved ??= resolveDefinition(doc, name, pair, where, at, text, interpolation);
        return resolved;
      },
    });
  }
  return table;
}

/** A definition before it is interpolated: its plugin is known without its variables. */
interface Definition {
  plugin?: string;
  where: Place;
  resolve(): Connection | SluiceError[];
}

function resolveDefinition(
  doc: Document,
  name: string,
  pair: Pair<Node, Node>,
  where: Place,
  at: At,
  text: string,
  interpolation: Interpolation | undefined,
): Connection | SluiceError[] {
  const value = pair.value;
  const entry = isMap(value) ? value : undefined;
  const key = entry?.items.length === 1 ? entry.items[0] : undefined;
  if (!entry || !key || !isScalar(key.key)) {
    return [
      new SluiceError(
        'SLUICE_E_CONFIG',
        `connection "${name}" must be a single-key map {plugin_name: config}`,
        {
          context: {
            ...at(value?.range?.[0] ?? pair.key?.range?.[0] ?? 0),
            hint: `e.g. ${name}: {sftp: {host: …, username: …}}`,
          },
        },
      ),
    ];
  }
  const configNode = key.value as Node | null;
  const merged = configNode ? aliasTargets(doc, configNode) : [];
  if (interpolation && configNode) {
    // With the anchors it merges (`<<: *base`), each node once: a definition sharing an anchor
    // with another must not interpolate it twice (`$${` would become `${`, then a variable).
    const errors: SluiceError[] = [];
    for (const node of [configNode, ...merged]) {
      if (interpolation.done.has(node)) continue;
      interpolation.done.add(node);
      errors.push(...interpolateDocument(node, interpolation.env, interpolation.dotEnvDir, at));
    }
    if (errors.length > 0) return errors;
  }
  const config = (configNode?.toJS(doc) ?? {}) as unknown;
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    return [
      new SluiceError(
        'SLUICE_E_CONFIG',
        `connection "${name}": the ${String(key.key.value)} config must be a map`,
        {
          context: at(configNode?.range?.[0] ?? 0),
        },
      ),
    ];
  }
  const start = pair.key?.range?.[0] ?? 0;
  return {
    name,
    plugin: String(key.key.value),
    config: config as Record<string, unknown>,
    where,
    placeOf: (pointer, atKey) => at(nodeOffset(configNode, splitPointer(pointer), atKey, doc)),
    text: [value, ...merged]
      .map((n) => text.slice(n?.range?.[0] ?? start, n?.range?.[2] ?? start))
      .join('\0'),
  };
}

/**
 * The shared connections of `file` (its `connections:` map), read for one pipeline load with
 * that pipeline's variables. A file that does not parse is one error naming it.
 */
export function readSharedConnections(
  file: string,
  env: Record<string, string | undefined>,
  dotEnvDir: string,
): { table: Lookup; errors: SluiceError[]; shown: string } {
  const shown = displayPath(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return {
      table: new Map(),
      shown,
      errors: [
        new SluiceError(
          'SLUICE_E_CONFIG',
          `cannot read the connections file: ${(err as NodeJS.ErrnoException).code ?? err}`,
          { context: { file: shown } },
        ),
      ],
    };
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { ...YAML_OPTIONS, lineCounter: lines });
  const at = (offset: number) => {
    const pos = lines.linePos(offset);
    return { file: shown, line: pos.line, column: pos.col };
  };
  const errors = yamlProblems(doc, at, text);
  if (errors.length > 0) return { table: new Map(), errors, shown };
  const node = isMap(doc.contents) ? doc.contents.get('connections', true) : undefined;
  return {
    table: connectionsOf(doc, node, at, text, { env, dotEnvDir, done: new WeakSet() }),
    errors: [],
    shown,
  };
}

export function displayPath(abs: string): string {
  const rel = relative(process.cwd(), abs);
  return rel && !rel.startsWith('..') ? rel : abs;
}

/** `file:line:col`. */
export function placeText(p: Place): string {
  return p.line === undefined ? p.file : `${p.file}:${p.line}:${p.column}`;
}

interface Use {
  connection: Connection;
  /** Keys the block writes itself (they win over the connection's). */
  own: Set<string>;
  /** Where the block names it (its `connection:` value). */
  usedAt: Place;
}

/** What the loader reports through (its `problem` and raw errors). */
export interface ConnectionReport {
  problem(pointer: string, message: string, hint?: string): void;
  error(err: SluiceError): void;
}

/**
 * The connections one pipeline load sees: the file's own (`connections:` at its top level),
 * then the shared file's, read only when a block names one the file does not define.
 */
export class PipelineConnections {
  private readonly uses = new Map<string, Use>();
  private shared: ReturnType<typeof readSharedConnections> | undefined;
  private readonly usedShared = new Set<Connection>();

  constructor(
    private readonly own: Lookup,
    private readonly sharedFile: string | undefined,
    private readonly env: Record<string, string | undefined>,
    private readonly dotEnvDir: string,
  ) {}

  /**
   * The config block `written` (of plugin `plugin`, at `configPointer`) is validated with: the
   * named connection's fields under its own, without `connection`. Undefined when the block names
   * none; null when the connection cannot be used (reported).
   */
  apply(
    written: Record<string, unknown>,
    plugin: string,
    configPointer: string,
    usedAt: Place,
    report: ConnectionReport,
  ): Record<string, unknown> | null | undefined {
    if (!('connection' in written)) return undefined;
    const { connection: name, ...rest } = written;
    const pointer = `${configPointer}/connection`;
    if (typeof name !== 'string' || name === '') {
      report.problem(pointer, 'must be the name of a connection (a string)', this.knownHint());
      return null;
    }
    const definition = this.lookup(name, report);
    if (definition === undefined) {
      const suggestion = nearest(name, this.names());
      report.problem(
        pointer,
        `unknown connection "${name}"`,
        suggestion ? `did you mean "${suggestion}"? ${this.knownHint()}` : this.knownHint(),
      );
      return null;
    }
    if (definition.plugin !== undefined && definition.plugin !== plugin) {
      report.problem(
        pointer,
        `connection "${name}" is for ${definition.plugin} (defined at ${placeText(definition.where)}), not for ${plugin}`,
        `use it under \`${definition.plugin}:\`, or name a ${plugin} connection`,
      );
      return null;
    }
    const found = definition.resolve();
    if (Array.isArray(found)) {
      // The definition's own problems, at their place in it, naming the use too.
      for (const e of found)
        report.error(
          new SluiceError(e.code, `${e.message} (connection "${name}", used at ${placeText(usedAt)})`, {
            context: e.context,
          }),
        );
      return null;
    }
    if (this.shared?.table.get(name) === definition) this.usedShared.add(found);
    this.uses.set(configPointer, { connection: found, own: new Set(Object.keys(rest)), usedAt });
    return { ...structuredClone(found.config), ...rest };
  }

  /**
   * For a problem at `pointer`: where to point (the definition, when the key came from a
   * connection) and a note naming the other place. Undefined outside blocks using a connection.
   */
  describe(pointer: string, atKey = false): { place?: Place; note: string } | undefined {
    for (const [configPointer, use] of this.uses) {
      if (pointer !== configPointer && !pointer.startsWith(`${configPointer}/`)) continue;
      const rest = pointer.slice(configPointer.length);
      const key = splitPointer(rest)[0];
      const { connection } = use;
      if (key && !use.own.has(key) && key in connection.config) {
        return {
          place: connection.placeOf(rest, atKey),
          note: `from connection "${connection.name}", used at ${placeText(use.usedAt)}`,
        };
      }
      return { note: `with connection "${connection.name}" defined at ${placeText(connection.where)}` };
    }
    return undefined;
  }

  /** The shared definitions in use, as written: part of the pipeline's version. */
  sharedTexts(): string[] {
    return [...this.usedShared].map((c) => c.text);
  }

  private lookup(name: string, report: ConnectionReport): Definition | undefined {
    return this.own.get(name) ?? this.sharedTable(report).get(name);
  }

  private sharedTable(report: ConnectionReport): Lookup {
    if (!this.sharedFile) return new Map();
    if (!this.shared) {
      this.shared = readSharedConnections(this.sharedFile, this.env, this.dotEnvDir);
      for (const e of this.shared.errors) report.error(e);
    }
    return this.shared.table;
  }

  private names(): string[] {
    return [...new Set([...this.own.keys(), ...(this.shared?.table.keys() ?? [])])].sort();
  }

  private knownHint(): string {
    const names = this.names();
    const where = this.shared ? this.shared.shown : 'no sluice.config.yaml found';
    if (names.length > 0)
      return `known connections: ${names.join(', ')} (this file's \`connections:\` and ${where})`;
    return `no connections are declared: add \`connections:\` to sluice.config.yaml or to this file (${where})`;
  }
}
