/** A plugin as a pipeline names it: which plugin, its validated config, and where it stands. */
import type { MatchSpec } from '../item-match.js';
import type { Plugin } from '../plugin-api.js';
import type { PluginRole } from '../registry.js';

export interface PluginRef {
  role: PluginRole;
  name: string;
  plugin: Plugin;
  /** Validated config with defaults applied. */
  config: Record<string, unknown>;
  /** For messages: `steps[1].segregate`, `source.s3`, `sinks[0].local`, `on_error.local`. */
  stepId: string;
  /** JSON pointer of the plugin's config, e.g. `/steps/1/segregate`. */
  jsonPath: string;
  /** Steps only: `when`, taken out of `config` (the runtime applies it, not the plugin). */
  when?: MatchSpec;
  /** The named connection its config was merged with (`connection: acme`), if any. */
  connection?: string;
  /** Sources only: the name used in ledger keys and `{source}`. */
  sourceName?: string;
}
