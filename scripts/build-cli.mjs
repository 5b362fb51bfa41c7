#!/usr/bin/env node
// Second half of `npm run build`, after tsc: bundles tsc's output into dist/cli/ with esbuild.
//  - dist/cli/sluice.js: the CLI (bin/sluice.js runs it); commands and rarely used modules are
//    separate chunks loaded when needed.
//  - dist/cli/sdk.js: the plugin SDK (`import { definePlugin } from 'sluice'`). It shares chunks
//    with the CLI, so a third-party plugin run by the CLI gets the very same SluiceError class,
//    secret registry and TypeBox as the CLI itself.
//  - both register ajv validators precompiled here for the core pipeline shape and every
//    built-in plugin schema, one chunk each (core/config/validate.ts explains the lookup).
// Why: the CLI used to start from ~320 separate ES modules (200 of them TypeBox) and compile its
// schemas with ajv on every start, most of a 0.8 s `sluice validate`.
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const outdir = join(dist, 'cli');

// Pure-JS libraries that `sluice run` loads on every start are inlined, with their own
// dependencies (prom-client brings ~100 files of @opentelemetry/api), and ajv's small runtime
// helpers imported by the precompiled validators. Every other dependency stays an ordinary import resolved from
// node_modules: native modules, SDKs that plugins import lazily, pino and its worker transports,
// and ajv itself, which validate.ts loads only for a schema that was not precompiled, and
// cron-parser (with luxon), which core/config/trigger.ts requires only for a cron trigger.
const INLINED = new Set([
  '@sinclair/typebox',
  'yaml',
  'cac',
  'picomatch',
  'ajv',
  'prom-client',
  'log-update',
  'p-limit',
]);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const external = Object.keys(pkg.dependencies)
  .filter((name) => !INLINED.has(name))
  .flatMap((name) => [name, `${name}/*`]);

const imported = (rel) => import(pathToFileURL(join(dist, rel)).href);
const { builtinPlugins } = await imported('plugins/index.js');
const { PipelineShape } = await imported('core/config/schema.js');
const { precompiledValidatorsCode, validatorName } = await imported('core/config/validate.js');

// The entry modules and validators are generated in memory (`generated:` imports below, resolved
// from dist/), so that nothing is written but the bundle and concurrent builds cannot collide.
const generatedModules = new Map();
// One module (and chunk) per schema: a pipeline loads the few validators it uses, not all.
for (const schema of [PipelineShape, ...builtinPlugins.map((plugin) => plugin.config)]) {
  const name = validatorName(schema);
  if (!generatedModules.has(`${name}.js`))
    generatedModules.set(`${name}.js`, precompiledValidatorsCode([schema]));
}
const loaders = [...generatedModules.keys()].map(
  (file) => `  ${file.slice(0, -3)}: () => import('generated:${file}'),`,
);
generatedModules.set(
  'precompiled.js',
  `import { usePrecompiledValidators } from './core/config/validate.js';\nusePrecompiledValidators({\n${loaders.join('\n')}\n});\n`,
);
generatedModules.set(
  'sluice.js',
  `import 'generated:precompiled.js';\nexport { main } from './core/cli/main.js';\n`,
);
generatedModules.set('sdk.js', `import 'generated:precompiled.js';\nexport * from './core/sdk.js';\n`);
// A pool thread (core/runtime/pool.ts) loads this entry: it shares the CLI's chunks.
generatedModules.set(
  'pool-thread.js',
  `import 'generated:precompiled.js';\nimport './core/cli/pool-thread.js';\n`,
);

const generated = {
  name: 'generated',
  setup(builder) {
    builder.onResolve({ filter: /^generated:/ }, (args) => ({
      path: args.path.slice('generated:'.length),
      namespace: 'generated',
    }));
    builder.onLoad({ filter: /.*/, namespace: 'generated' }, (args) => ({
      contents: generatedModules.get(args.path),
      resolveDir: dist,
      loader: 'js',
    }));
  },
};

/**
 * `import.meta.url` keeps meaning the URL of the module as tsc wrote it (dist/core/cli/main.js
 * reads `../../../package.json` relative to it), wherever the bundle puts its code. Every output
 * file sits directly in `outdir`, so the rewrite is one relative URL per module.
 */
const keepModuleUrls = {
  name: 'keep-module-urls',
  setup(builder) {
    builder.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(dist + sep) || args.path.includes(`${sep}node_modules${sep}`))
        return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const moduleUrl = relative(outdir, args.path).split(sep).join('/');
      return {
        contents: text.replaceAll(
          'import.meta.url',
          `new URL(${JSON.stringify(moduleUrl)}, import.meta.url).href`,
        ),
        loader: 'js',
      };
    });
  },
};

// Not emptied first: a running `sluice` may still import lazy chunks of the build it started
// from. Chunk names carry a content hash, so an unchanged chunk is rewritten in place; files of
// older builds are removed once a day old.
const result = await build({
  absWorkingDir: root,
  entryPoints: {
    sluice: 'generated:sluice.js',
    sdk: 'generated:sdk.js',
    'pool-thread': 'generated:pool-thread.js',
  },
  outdir,
  entryNames: '[name]',
  // Flat: keepModuleUrls relies on every output file being directly in outdir.
  chunkNames: '[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  plugins: [generated, keepModuleUrls],
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
  // Inlined CommonJS code (ajv, yaml, cac, picomatch) calls require() for Node built-ins.
  banner: {
    js: "import { createRequire as __sluiceCreateRequire } from 'node:module';\nconst require = __sluiceCreateRequire(import.meta.url);",
  },
});
const current = new Set(Object.keys(result.metafile.outputs).map((file) => join(root, file)));
const dayAgo = Date.now() - 24 * 3600 * 1000;
for (const name of readdirSync(outdir)) {
  const file = join(outdir, name);
  if (!current.has(file) && statSync(file).mtimeMs < dayAgo) rmSync(file, { force: true });
}
