/** Contexts for calling plugin code directly in tests (the runtime builds the real ones). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { silentLogger } from '../../core/observe/logger.js';
import type { Item, PluginContext, StepContext, SummaryFigure } from '../../core/plugin-api.js';

export function makePluginContext(overrides: Partial<PluginContext> = {}): PluginContext {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-test-ctx-'));
  return {
    pipeline: 'test',
    stepId: 'test',
    log: silentLogger,
    tempDir: join(dir, 'tmp'),
    stateDir: join(dir, 'state'),
    baseDir: dir,
    signal: new AbortController().signal,
    ...overrides,
  };
}

export function makeStepContext(
  overrides: Partial<StepContext> & { siblings?: Record<string, () => Readable> } = {},
): StepContext & { figures: SummaryFigure[] } {
  const figures: SummaryFigure[] = [];
  const { siblings, ...rest } = overrides;
  return {
    ...makePluginContext(),
    openSibling: async (_item: Item, name: string) => siblings?.[name]?.() ?? null,
    report: (f: SummaryFigure) => figures.push(f),
    figures,
    ...rest,
  };
}
