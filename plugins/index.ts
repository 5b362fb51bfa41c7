/**
 * The built-in plugins, listed explicitly. Each import is cheap: plugin modules load their
 * heavy client libraries lazily inside `create`.
 */
import type { Plugin } from '../core/plugin-api.js';

// core item steps and local connector
// (one line per plugin; keep alphabetical within a family)

export const builtinPlugins: readonly Plugin[] = [];
