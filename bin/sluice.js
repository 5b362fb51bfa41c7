#!/usr/bin/env node
import { mkdirSync } from 'node:fs';
import module from 'node:module';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

// libuv's thread pool does every file-system call; its default of 4 threads starves pipelines
// that keep 16+ files in flight. It must be sized before the first pool use, so here.
process.env.UV_THREADPOOL_SIZE ??= '16';

/**
 * Node's compile cache (22.1+) keeps V8's compiled code of the bundle between runs, in the
 * user's cache folder (XDG_CACHE_HOME, else ~/.cache), under sluice/compile-cache. Node checks
 * each entry against the source's hash, so a rebuilt bundle or another Node version never uses
 * a stale one. Best effort: a cache folder that cannot be made or written only costs the gain
 * (Node then returns a failed status, it does not throw or print), NODE_DISABLE_COMPILE_CACHE=1
 * turns it off, and a NODE_COMPILE_CACHE folder the user chose is kept.
 */
function enableCompileCache() {
  const env = process.env;
  if (
    typeof module.enableCompileCache !== 'function' ||
    env.NODE_COMPILE_CACHE ||
    env.NODE_DISABLE_COMPILE_CACHE
  )
    return;
  try {
    const xdg = env.XDG_CACHE_HOME;
    const base = xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache');
    // One level at a time, not `recursive`: Node's recursive mkdir spins forever on a path
    // where mkdir answers ENOENT under an existing folder (seen under /proc).
    let dir = base;
    for (const part of ['', 'sluice', 'compile-cache']) {
      dir = join(dir, part);
      try {
        mkdirSync(dir, { mode: 0o700 });
      } catch (err) {
        if (err.code !== 'EEXIST') return;
      }
    }
    module.enableCompileCache(dir);
  } catch {
    // no home folder, or an older API shape: run without the cache
  }
}
enableCompileCache();

// The bundled CLI (scripts/build-cli.mjs, part of `npm run build`): it starts several times
// faster than tsc's ~100 separate modules in dist/core.
import('../dist/cli/sluice.js').then((m) => m.main(process.argv.slice(2)));
