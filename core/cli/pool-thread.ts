/**
 * A pool thread's entry (runtime/pool.ts): a composition root like the CLI — it brings the
 * built-in plugins and hands them to the runtime's side of the pool. Bundled as
 * dist/cli/pool-thread.js (scripts/build-cli.mjs).
 */
import { parentPort } from 'node:worker_threads';
import { builtinRegistry } from '../builtins.js';
import { servePoolThread } from '../runtime/pool-thread.js';

if (parentPort) servePoolThread(parentPort, builtinRegistry());
