/**
 * The built-in plugins as a registry. Wired here, at a composition root (the CLI, the SDK, the
 * generated docs), never inside the runtime: the runtime runs whatever registry it is given.
 */
import { builtinPlugins } from '../plugins/index.js';
import { PluginRegistry } from './registry.js';

let registry: PluginRegistry | undefined;

export function builtinRegistry(): PluginRegistry {
  registry ??= new PluginRegistry(builtinPlugins);
  return registry;
}
