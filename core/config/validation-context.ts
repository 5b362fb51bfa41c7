import { join } from 'node:path';
import type { PluginContext } from '../plugin-api.js';
import type { PluginRef } from './plugin-ref.js';

/** What an item-level step is created with at load time, to check its templates and regexes. */
export function validationContext(ref: PluginRef, baseDir: string): PluginContext {
  const controller = new AbortController();
  return {
    pipeline: 'validate',
    stepId: ref.stepId,
    log: {
      debug() {},
      info() {},
      warn() {},
      error() {},
      child() {
        return this;
      },
    },
    tempDir: join(baseDir, '.sluice', 'tmp'),
    stateDir: join(baseDir, '.sluice'),
    baseDir,
    signal: controller.signal,
  };
}
