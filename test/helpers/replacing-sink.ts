/** A sink for tidy-up tests: the window between a commit and after_success, where a producer replaces the source file. */
import { utimesSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { definePlugin, type SinkCommit } from '../../core/plugin-api.js';
import type { PluginRegistry } from '../../core/registry.js';
import { localSink } from '../../plugins/local/sink.js';
import { testRegistry } from './test-plugins.js';

export const REPLACED_CONTENT = 'the producer’s new version, never delivered';

/**
 * The local sink, but after each commit the file `replace` (relative to the pipeline file, or
 * absolute: a source file, possibly on a test server's disk) is rewritten in place with new
 * bytes and an mtime 7 s later — another version under the same name, owner unchanged.
 */
export const replacingSink = definePlugin({
  ...localSink,
  name: 'replacing_local',
  config: Type.Object({ path: Type.String(), replace: Type.String() }),
  async create(cfg, ctx) {
    const inner = await localSink.create({ path: cfg.path }, ctx);
    const replace = (commit: SinkCommit) => {
      const file = resolve(ctx.baseDir, cfg.replace);
      writeFileSync(file, REPLACED_CONTENT);
      utimesSync(file, new Date(), new Date(Date.now() + 7000));
      return commit;
    };
    return {
      ...inner,
      copy: undefined,
      writeBuffer: undefined,
      write: async (req) => replace(await inner.write(req)),
    };
  },
});

export function safetyRegistry(): PluginRegistry {
  return testRegistry().extend([{ plugin: replacingSink, origin: 'test' }]);
}
