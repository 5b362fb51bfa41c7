/**
 * The plugin registry: built-ins plus third-party plugins named in a pipeline's `plugins:` list.
 * A source and a sink may share a name (`s3`), so plugins are keyed by role and name.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SluiceError } from './errors.js';
import { PLUGIN_API_VERSION, type Plugin, type PluginKind } from './plugin-api.js';

export type PluginRole = 'source' | 'sink' | 'step';

export function roleOf(kind: PluginKind): PluginRole {
  return kind === 'source' || kind === 'sink' ? kind : 'step';
}

const VALID_KINDS: readonly PluginKind[] = ['source', 'sink', 'transform', 'unpack', 'step'];

export class PluginRegistry {
  private readonly byRole: Record<PluginRole, Map<string, Plugin>> = {
    source: new Map(),
    sink: new Map(),
    step: new Map(),
  };

  constructor(plugins: Iterable<Plugin> = []) {
    for (const p of plugins) this.add(p);
  }

  add(plugin: Plugin, origin = 'built-in'): void {
    const map = this.byRole[roleOf(plugin.kind)];
    const existing = map.get(plugin.name);
    if (existing && existing !== plugin) {
      throw new SluiceError('SLUICE_E_PLUGIN_LOAD', `plugin "${plugin.name}" (${origin}) is already defined`);
    }
    map.set(plugin.name, plugin);
  }

  get(role: PluginRole, name: string): Plugin | undefined {
    return this.byRole[role].get(name);
  }

  names(role: PluginRole): string[] {
    return [...this.byRole[role].keys()].sort();
  }

  all(): Plugin[] {
    return [...this.byRole.source.values(), ...this.byRole.step.values(), ...this.byRole.sink.values()];
  }

  /** A registry with these extra plugins on top of this one's. */
  extend(plugins: Array<{ plugin: Plugin; origin: string }>): PluginRegistry {
    const next = new PluginRegistry(this.all());
    for (const { plugin, origin } of plugins) next.add(plugin, origin);
    return next;
  }
}

/**
 * Loads third-party plugin modules: an npm package name or a path relative to the pipeline
 * file. A module exports a plugin as default, or `plugins` (an array), or named plugin objects.
 */
export async function loadPluginModule(specifier: string, baseDir: string): Promise<Plugin[]> {
  const isPath = specifier.startsWith('.') || isAbsolute(specifier);
  const target = isPath ? pathToFileURL(resolve(baseDir, specifier)).href : specifier;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(target)) as Record<string, unknown>;
  } catch (err) {
    throw new SluiceError(
      'SLUICE_E_PLUGIN_LOAD',
      `cannot load plugin module "${specifier}": ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const candidates: unknown[] = [];
  if (Array.isArray(mod.plugins)) candidates.push(...mod.plugins);
  else if (mod.default !== undefined)
    candidates.push(...(Array.isArray(mod.default) ? mod.default : [mod.default]));
  else candidates.push(...Object.values(mod));
  const plugins = candidates.filter(isPluginLike);
  if (plugins.length === 0) {
    throw new SluiceError(
      'SLUICE_E_PLUGIN_LOAD',
      `module "${specifier}" exports no plugin (use definePlugin from "sluice")`,
    );
  }
  for (const p of plugins) {
    if (!VALID_KINDS.includes(p.kind)) {
      throw new SluiceError(
        'SLUICE_E_PLUGIN_LOAD',
        `plugin "${p.name}" from "${specifier}" has unknown kind "${p.kind}"`,
      );
    }
    const version = p.apiVersion ?? PLUGIN_API_VERSION;
    if (version !== PLUGIN_API_VERSION) {
      throw new SluiceError(
        'SLUICE_E_PLUGIN_LOAD',
        `plugin "${p.name}" from "${specifier}" targets plugin API v${version}; this Sluice provides v${PLUGIN_API_VERSION}`,
      );
    }
  }
  return plugins;
}

function isPluginLike(v: unknown): v is Plugin {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as Plugin).name === 'string' &&
    typeof (v as Plugin).kind === 'string' &&
    typeof (v as Plugin).create === 'function' &&
    typeof (v as Plugin).config === 'object'
  );
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

export function nearest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestScore) {
      best = c;
      bestScore = d;
    }
  }
  return best !== undefined && bestScore <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}
