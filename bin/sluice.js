#!/usr/bin/env node
// libuv's thread pool does every file-system call; its default of 4 threads starves pipelines
// that keep 16+ files in flight. It must be sized before the first pool use, so here.
process.env.UV_THREADPOOL_SIZE ??= '16';
// The bundled CLI (scripts/build-cli.mjs, part of `npm run build`): it starts several times
// faster than tsc's ~100 separate modules in dist/core.
import('../dist/cli/sluice.js').then((m) => m.main(process.argv.slice(2)));
