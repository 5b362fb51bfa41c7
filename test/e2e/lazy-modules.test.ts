/**
 * The CLI bundle loads what a command needs, not everything (issue 16.5): `validate` and a `run`
 * without a cron trigger, a TTY or `--metrics-port` load neither cron-parser (with luxon), nor
 * node:http / node:https, nor the live progress (log-update) or the status server. Observed, not
 * timed: the CLI runs with a preload that records every ES module resolved (a `module.register`
 * resolve hook) and, at exit, the built-ins (`process.moduleLoadList`) and CommonJS modules
 * (`require.cache`) loaded. The controls prove each probe sees the module when it is needed.
 * Needs `npm run build` (the bundle in dist/cli).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SLUICE_BIN } from '../helpers/sluice-process.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';

const HOOKS = `import { appendFileSync } from 'node:fs';
let out;
export function initialize(data) { out = data.out; }
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(out, resolved.url + '\\n');
  return resolved;
}
`;

const PRELOAD = `import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
register(new URL('./hooks.mjs', import.meta.url), { data: { out: process.env.LAZY_ESM } });
process.on('exit', () => {
  const cjs = Object.keys(createRequire(import.meta.url).cache);
  appendFileSync(process.env.LAZY_CJS, JSON.stringify({ builtins: process.moduleLoadList, cjs }));
});
`;

interface Loaded {
  /** Built-in modules (`http`, `https`, …). */
  builtins: Set<string>;
  /** Paths of the CommonJS modules loaded. */
  cjs: string[];
  /** Source modules bundled in the CLI chunks that were loaded (`dist/core/observe/progress.js`, `node_modules/log-update/index.js`…). */
  bundled: Set<string>;
}

let ws: Workspace;
let dir: string;
let n = 0;

/** Runs `sluice args` (no TTY) with the probes; what it loaded. */
function loadedBy(args: string[]): Loaded {
  const tag = String(++n);
  const esm = join(dir, `esm-${tag}`);
  const cjs = join(dir, `cjs-${tag}`);
  const res = spawnSync(process.execPath, ['--import', join(dir, 'preload.mjs'), SLUICE_BIN, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: dir, LAZY_ESM: esm, LAZY_CJS: cjs, NODE_DISABLE_COMPILE_CACHE: '1' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(res.status, res.stderr).toBe(0);
  const { builtins, cjs: cjsPaths } = JSON.parse(readFileSync(cjs, 'utf8')) as {
    builtins: string[];
    cjs: string[];
  };
  const bundled = new Set<string>();
  for (const url of new Set(readFileSync(esm, 'utf8').split('\n'))) {
    if (!url.startsWith('file:') || !url.includes('/dist/cli/')) continue;
    // esbuild marks each bundled source module with a `// path` comment line.
    for (const m of readFileSync(fileURLToPath(url), 'utf8').matchAll(
      /^\/\/ ((?:dist|node_modules)\/\S+)$/gm,
    ))
      bundled.add(m[1]);
  }
  return {
    builtins: new Set(builtins.filter((b) => b.startsWith('NativeModule ')).map((b) => b.slice(13))),
    cjs: cjsPaths,
    bundled,
  };
}

const hasCjs = (loaded: Loaded, pkg: string) => loaded.cjs.some((p) => p.includes(`/node_modules/${pkg}/`));
const hasBundled = (loaded: Loaded, part: string) => [...loaded.bundled].some((m) => m.includes(part));

function pipeline(name: string, extra: string[] = []): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      `name: ${name}`,
      'source:',
      `  local: { path: ${join(dir, 'in')} }`,
      'steps:',
      "  - filter: { include: '*.csv' }",
      'sink:',
      `  local: { path: ${join(dir, 'out')} }`,
      ...extra,
      '',
    ].join('\n'),
  );
  return file;
}

/** What a command without cron, HTTP, TTY or status server must not load. */
function expectLean(loaded: Loaded): void {
  expect(loaded.bundled.size).toBeGreaterThan(10); // the probe saw the bundle
  expect(loaded.builtins.has('fs')).toBe(true); // and the built-ins
  expect(loaded.builtins.has('http')).toBe(false);
  expect(loaded.builtins.has('https')).toBe(false);
  expect(hasCjs(loaded, 'cron-parser')).toBe(false);
  expect(hasCjs(loaded, 'luxon')).toBe(false);
  expect(hasBundled(loaded, 'node_modules/log-update/')).toBe(false);
  expect(hasBundled(loaded, 'dist/core/observe/progress.js')).toBe(false);
  expect(hasBundled(loaded, 'dist/core/observe/status-server.js')).toBe(false);
  expect(hasBundled(loaded, 'dist/core/observe/status-page.js')).toBe(false);
}

describe('the CLI loads only what a command needs', () => {
  beforeAll(() => {
    ws = makeWorkspace('sluice-lazy-');
    dir = ws.dir;
    mkdirSync(join(dir, 'in'), { recursive: true });
    writeFileSync(join(dir, 'hooks.mjs'), HOOKS);
    writeFileSync(join(dir, 'preload.mjs'), PRELOAD);
  });

  afterAll(() => ws?.cleanup());

  it('validate of a local pipeline', () => {
    expectLean(loadedBy(['validate', pipeline('lean')]));
  });

  it('run of an empty folder, JSON logs', () => {
    const loaded = loadedBy([
      'run',
      pipeline('lean-run'),
      '--log-format',
      'json',
      '--state-dir',
      join(dir, 'state'),
    ]);
    expectLean(loaded);
    expect(hasBundled(loaded, 'dist/core/runtime/runner.js')).toBe(true);
  });

  it('controls: a cron trigger loads cron-parser; --metrics-port the status server and node:http', () => {
    const cron = loadedBy(['validate', pipeline('cron', ['trigger:', "  cron: '0 6 * * 1-5'"])]);
    expect(hasCjs(cron, 'cron-parser')).toBe(true);
    expect(hasCjs(cron, 'luxon')).toBe(true);
    const served = loadedBy([
      'run',
      pipeline('served'),
      '--log-format',
      'json',
      '--state-dir',
      join(dir, 'state'),
      '--metrics-port',
      '0',
    ]);
    expect(served.builtins.has('http')).toBe(true);
    expect(hasBundled(served, 'dist/core/observe/status-server.js')).toBe(true);
  });
});
