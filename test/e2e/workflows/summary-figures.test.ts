/**
 * Regression (found by the datahub-compress workflow): figures a step reports (bytes before and
 * after compression) used to be added to the run summary on every attempt, so an item retried
 * after its stream had been compressed counted twice and the ratio / space saved were inflated.
 */
import { Type } from '@sinclair/typebox';
import { afterEach, describe, expect, it } from 'vitest';
import { SluiceError } from '../../../core/errors.js';
import { definePlugin } from '../../../core/plugin-api.js';
import { runPipelineFile } from '../../../core/sdk.js';
import { testRegistry } from '../../helpers/test-plugins.js';
import { makeWorkspace, type Workspace } from '../../helpers/workspace.js';

/** Reports 1000 → 100 bytes for each item, then fails its first attempt (retryably). */
const reportThenFail = definePlugin({
  name: 'report_then_fail',
  kind: 'step',
  summary: 'test: reports a compression figure, then fails the first attempt',
  config: Type.Object({}),
  create() {
    const attempts = new Map<string, number>();
    return {
      process(item, ctx) {
        ctx.report({ kind: 'compression', bytesIn: 1000, bytesOut: 100 });
        const n = (attempts.get(item.path) ?? 0) + 1;
        attempts.set(item.path, n);
        if (n === 1)
          throw new SluiceError('SLUICE_E_PLUGIN', `first attempt of ${item.path} fails`, {
            retryable: true,
          });
        return item;
      },
    };
  },
});

let ws: Workspace;
afterEach(() => ws?.cleanup());

describe('run summary figures', () => {
  it('counts the figures of the successful attempt only', async () => {
    ws = makeWorkspace('sluice-figures-');
    ws.write('in/a.txt', 'a');
    ws.write('in/b.txt', 'b');
    const file = ws.pipeline(`name: figures
source:
  local: { path: ./in }
steps:
  - report_then_fail: {}
sink:
  local: { path: ./out }
policy:
  retry: { max_attempts: 3, initial_delay: 10ms, max_delay: 20ms }
`);
    const registry = testRegistry().extend([{ plugin: reportThenFail, origin: 'test' }]);
    const summary = await runPipelineFile(file, { registry });
    expect(summary).toMatchObject({ ok: 2, failed: 0, retries: 2 });
    expect(summary.compression).toEqual({ bytesIn: 2000, bytesOut: 200 });
  });
});
