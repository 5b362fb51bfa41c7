/**
 * Retry classification asks the plugin that failed. An SFTP source's classifier answers for
 * every error; asked first, in pipeline order, it used to decide that a sink's own transient
 * error was final, so the item failed without a retry.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { testRegistry } from '../helpers/test-plugins.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { type SshdHandle, startSshd } from '../servers/sshd.js';

let sshd: SshdHandle;
let ws: Workspace;
beforeAll(async () => {
  sshd = await startSshd();
  ws = makeWorkspace();
});
afterAll(async () => {
  ws?.cleanup();
  await sshd?.stop();
});

it('retries a sink error that only the sink classifies as retryable, with an SFTP source', async () => {
  const file = join(sshd.rootDir, 'report.csv');
  writeFileSync(file, 'a,b\n1,2\n');
  chmodSync(file, 0o644);
  const pipeline = ws.pipeline(
    [
      'name: picky',
      'source:',
      '  sftp:',
      ...sshd.sftpYaml(),
      `    path: ${sshd.rootDir}`,
      'sink:',
      '  picky_sink: { busy_times: 1 }',
      'policy:',
      '  retry: { max_attempts: 3, initial_delay: 10ms, max_delay: 10ms }',
      '',
    ].join('\n'),
  );
  const summary = await runPipelineFile(pipeline, { registry: testRegistry() });
  expect(summary).toMatchObject({ ok: 1, failed: 0, retries: 1 });
});
