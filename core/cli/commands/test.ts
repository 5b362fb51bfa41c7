/**
 * `sluice test <pipeline>`: pipeline tests in the spirit of Benthos's and Vector's unit tests.
 * `<name>.test.yaml` beside the pipeline lists cases; each case writes its input files into a
 * temp folder, runs the pipeline's real steps with a local folder standing in for every source
 * and every sink (on_error dropped, nothing remote touched), and compares what landed with the
 * expected destinations, contents and failures.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { PipelineDefinition, PluginRef } from '../../config/load.js';
import { SluiceError } from '../../errors.js';
import { sourceFields } from '../../runtime/fields.js';
import { includeExcludeReason, TEMPORARY_REASON } from '../../runtime/plan.js';
import { builtinRegistry, loadPipelineFile, runPipeline } from '../../sdk.js';
import { parseVars, setFlags } from '../common.js';
import { EXIT } from '../exit-codes.js';

interface InputFile {
  path: string;
  source?: string;
  content?: string;
  base64?: string;
  file?: string;
}

interface ExpectedFile {
  path: string;
  sink?: number;
  content?: string;
  contains?: string;
  sha256?: string;
}

interface TestCase {
  name: string;
  inputs: InputFile[];
  expect: { files?: ExpectedFile[]; failures?: Array<{ path: string; error?: string }>; only?: boolean };
}

export function testFileFor(pipelineFile: string): string {
  return pipelineFile.replace(/\.ya?ml$/, '.test.yaml');
}

export async function testCommand(
  paths: string[],
  opts: { var?: string | string[]; set?: string | string[] },
): Promise<number> {
  const vars = parseVars(opts.var);
  const set = setFlags(opts.set);
  let failed = 0;
  for (const file of paths) {
    const testFile = testFileFor(file);
    if (!existsSync(testFile))
      throw new SluiceError('SLUICE_E_USAGE', `no tests for ${file}: expected ${testFile}`);
    const def = await loadPipelineFile(file, { vars, set });
    const cases = readCases(testFile);
    for (const c of cases) {
      const warnings: string[] = [];
      const problems = await runCase(def, c, dirname(resolve(testFile)), warnings);
      if (problems.length === 0) {
        process.stdout.write(`PASS ${basename(file)} › ${c.name}\n`);
      } else {
        failed++;
        process.stdout.write(
          `FAIL ${basename(file)} › ${c.name}\n${problems.map((p) => `  - ${p}\n`).join('')}`,
        );
      }
      for (const w of warnings) process.stdout.write(`  warning: ${w}\n`);
    }
  }
  process.stdout.write(
    failed === 0
      ? 'all pipeline tests passed\n'
      : `${failed} pipeline test${failed === 1 ? '' : 's'} failed\n`,
  );
  return failed === 0 ? EXIT.ok : EXIT.failed;
}

function readCases(testFile: string): TestCase[] {
  const bad = (msg: string) => new SluiceError('SLUICE_E_CONFIG', `${testFile}: ${msg}`);
  const lines = new LineCounter();
  const parsed = parseDocument(readFileSync(testFile, 'utf8'), { lineCounter: lines, prettyErrors: false });
  if (parsed.errors.length > 0) throw bad(`YAML syntax: ${parsed.errors[0].message.split('\n')[0]}`);
  const doc = parsed.toJS() as unknown;
  /** A path of the test file must name a file inside its temp folder: checked before anything is written. */
  const checkPath = (path: unknown, at: Array<string | number>, what: string) => {
    if (typeof path === 'string' && staysInside(path)) return;
    const node = parsed.getIn(at, true) as { range?: [number, number] } | undefined;
    const pos = lines.linePos(node?.range?.[0] ?? 0);
    throw new SluiceError(
      'SLUICE_E_CONFIG',
      `${at.join('.')}: ${what} ${JSON.stringify(path)} is not a relative path to a file inside the test's folder`,
      {
        context: {
          file: testFile,
          line: pos.line,
          column: pos.col,
          hint: 'write it relative to the source (or sink) folder, without leading `/` and without `..` leading out',
        },
      },
    );
  };
  const tests = (doc as { tests?: unknown })?.tests;
  if (!Array.isArray(tests) || tests.length === 0)
    throw bad('expected a `tests:` list with at least one case');
  return tests.map((t, i) => {
    const c = t as Partial<TestCase>;
    const where = `tests[${i}]${c?.name ? ` (${c.name})` : ''}`;
    if (!c || typeof c.name !== 'string') throw bad(`${where}: needs a name`);
    if (!Array.isArray(c.inputs) || c.inputs.length === 0)
      throw bad(`${where}: needs inputs: [{path, content | base64 | file}]`);
    for (const [j, input] of c.inputs.entries()) {
      const given = ['content', 'base64', 'file'].filter(
        (k) => (input as unknown as Record<string, unknown>)[k] !== undefined,
      );
      if (typeof input?.path !== 'string' || given.length !== 1)
        throw bad(`${where}.inputs[${j}]: needs a path and exactly one of content, base64, file`);
      checkPath(input.path, ['tests', i, 'inputs', j, 'path'], 'input path');
    }
    if (!c.expect || typeof c.expect !== 'object') throw bad(`${where}: needs expect: {files, failures}`);
    // A bare path means "only that it lands there" (the README and the test-file schema allow it).
    if (Array.isArray(c.expect.files))
      c.expect.files = c.expect.files.map((f) => (typeof f === 'string' ? { path: f } : f));
    for (const [k, file] of (Array.isArray(c.expect.files) ? c.expect.files : []).entries()) {
      checkPath(file?.path, ['tests', i, 'expect', 'files', k, 'path'], 'expected path');
      if (file.sink !== undefined && !(Number.isInteger(file.sink) && file.sink >= 0))
        throw bad(`${where}.expect.files[${k}]: sink is the index of a sink (0, 1, …)`);
    }
    return c as TestCase;
  });
}

/** The pipeline with each source and sink replaced by a local folder; steps as they are. */
function standIn(def: PipelineDefinition, work: string): PipelineDefinition {
  const registry = builtinRegistry();
  const localSource = registry.get('source', 'local');
  const localSink = registry.get('sink', 'local');
  if (!localSource || !localSink)
    throw new SluiceError('SLUICE_E_INTERNAL', 'the local plugins are not registered');
  const sources: PluginRef[] = def.sources.map((ref) => {
    const cfg = ref.config as { include?: string[]; exclude?: string[] };
    const name = ref.sourceName ?? ref.name;
    return {
      ...ref,
      name: 'local',
      plugin: localSource,
      sourceName: name,
      config: {
        name,
        path: join(work, 'in', name),
        recursive: true,
        include: cfg.include,
        exclude: cfg.exclude,
      },
    };
  });
  const sinks: PluginRef[] = def.sinks.map((ref, i) => ({
    ...ref,
    name: 'local',
    plugin: localSink,
    config: {
      path: join(work, 'out', String(i)),
      if_exists: (ref.config as { if_exists?: string }).if_exists ?? 'overwrite',
      verify: 'size',
    },
  }));
  return {
    ...def,
    sources,
    sinks,
    onError: undefined,
    trigger: undefined,
    stateDir: join(work, 'state'),
    policy: { ...def.policy, retry: { ...def.policy.retry, maxAttempts: 1 } },
  };
}

async function runCase(
  def: PipelineDefinition,
  c: TestCase,
  testDir: string,
  warnings: string[],
): Promise<string[]> {
  const work = mkdtempSync(join(tmpdir(), 'sluice-test-'));
  try {
    const testDef = standIn(def, work);
    const firstSource = testDef.sources[0].sourceName!;
    for (const name of testDef.sources.map((s) => s.sourceName!))
      mkdirSync(join(work, 'in', name), { recursive: true });
    for (const input of c.inputs) {
      const source = input.source ?? firstSource;
      if (!testDef.sources.some((s) => s.sourceName === source))
        return [`input ${input.path}: the pipeline has no source named "${source}"`];
      const target = under(join(work, 'in', source), input.path);
      if (!target) return [`input ${input.path}: outside the folder of source "${source}"`];
      const left = leftOut(testDef.sources.find((s) => s.sourceName === source)!, input.path);
      if (left)
        warnings.push(
          `input ${input.path} never reaches the pipeline: source "${source}" leaves it out (${left})`,
        );
      mkdirSync(dirname(target), { recursive: true });
      const bytes =
        input.content !== undefined
          ? Buffer.from(input.content)
          : input.base64 !== undefined
            ? Buffer.from(input.base64, 'base64')
            : readFileSync(resolve(testDir, input.file!));
      writeFileSync(target, bytes);
    }
    const summary = await runPipeline(testDef, {});
    const problems: string[] = [];

    const expectedFailures = c.expect.failures ?? [];
    for (const f of expectedFailures) {
      const got = summary.failures.find((x) => x.path === f.path);
      if (!got) problems.push(`expected ${f.path} to fail, but it did not`);
      else if (f.error && !got.error.includes(f.error))
        problems.push(`${f.path} failed with "${got.error}", expected a message containing "${f.error}"`);
    }
    for (const got of summary.failures) {
      if (!expectedFailures.some((f) => f.path === got.path))
        problems.push(`unexpected failure of ${got.path}: [${got.code}] ${got.error}`);
    }

    const expectedFiles = c.expect.files ?? [];
    for (const e of expectedFiles) {
      const abs =
        (e.sink ?? 0) < testDef.sinks.length
          ? under(join(work, 'out', String(e.sink ?? 0)), e.path)
          : undefined;
      if (!abs) {
        problems.push(`expected ${e.path}: the pipeline has no sink ${e.sink}`);
        continue;
      }
      if (!existsSync(abs)) {
        problems.push(`missing ${e.path}${e.sink ? ` in sink ${e.sink}` : ''}`);
        continue;
      }
      const actual = readFileSync(abs);
      if (e.content !== undefined && !actual.equals(Buffer.from(e.content)))
        problems.push(`${e.path}: content differs — ${describeDiff(e.content, actual)}`);
      if (e.contains !== undefined && !actual.includes(e.contains))
        problems.push(`${e.path}: does not contain "${e.contains}"`);
      if (e.sha256 !== undefined) {
        const h = createHash('sha256').update(actual).digest('hex');
        if (h !== e.sha256) problems.push(`${e.path}: sha256 ${h}, expected ${e.sha256}`);
      }
    }
    if (c.expect.only !== false) {
      for (const [i] of testDef.sinks.entries()) {
        for (const written of listTree(join(work, 'out', String(i)))) {
          if (
            !expectedFiles.some((e) => (e.sink ?? 0) === i && e.path === written) &&
            (i === 0 || expectedFiles.some((e) => e.sink === i))
          ) {
            problems.push(`unexpected file ${written}${i ? ` in sink ${i}` : ''}`);
          }
        }
      }
    }
    return problems;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Why the source's listing leaves `path` out (include/exclude, temporary names), if it does. */
function leftOut(ref: PluginRef, path: string): string | undefined {
  const fields = sourceFields(ref);
  if (!fields.accepts(path)) return includeExcludeReason(ref.config, path);
  if (fields.isTemporary(path)) return TEMPORARY_REASON;
  return undefined;
}

/** Whether `rel` names a file below whatever folder it is resolved in. */
function staysInside(rel: string): boolean {
  const n = normalize(rel);
  return rel !== '' && !isAbsolute(rel) && n !== '.' && n !== '..' && !n.startsWith(`..${sep}`);
}

/** `rel` resolved under `folder`, or undefined when it names the folder itself or anything outside it. */
function under(folder: string, rel: string): string | undefined {
  const base = folder.endsWith(sep) ? folder : folder + sep;
  const abs = resolve(folder, rel);
  return abs.startsWith(base) && abs.length > base.length ? abs : undefined;
}

function describeDiff(expected: string, actual: Buffer): string {
  const text = actual.toString('utf8');
  const e = expected.split('\n');
  const a = text.split('\n');
  for (let i = 0; i < Math.max(e.length, a.length); i++) {
    if (e[i] !== a[i])
      return `line ${i + 1}: expected ${JSON.stringify(e[i] ?? '<end>')}, got ${JSON.stringify(a[i] ?? '<end>')}`;
  }
  return `expected ${Buffer.byteLength(expected)} bytes, got ${actual.length}`;
}

function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d)) {
      if (e === '.sluice-tmp') continue;
      const abs = join(d, e);
      if (statSync(abs).isDirectory()) walk(abs);
      else out.push(relative(root, abs).split(sep).join('/'));
    }
  };
  walk(root);
  return out.sort();
}
