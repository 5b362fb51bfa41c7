/**
 * http source and sink (the DataHub-like REST API of test/servers/rest-api.ts) through the real
 * runtime while a TCP proxy in front of the API resets, stalls and slows connections: every
 * file must arrive once, whole, and no aborted upload may be stored.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import {
  describeFaults,
  expectExactlyTheCorpus,
  expectSurvivedFaults,
  FAULT_POLICY_YAML,
  faultProfile,
  makeCorpus,
  sha256Of,
  writeCorpus,
} from '../helpers/fault-suite.js';
import { listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { type FaultProxy, startFaultProxy } from '../servers/fault-proxy.js';
import { type RestApi, startRestApi } from '../servers/rest-api.js';

const TOKEN = 'faults-token-9d1e';
let ws: Workspace;

beforeAll(() => {
  ws = makeWorkspace('sluice-faults-http-');
});

afterAll(() => ws?.cleanup());

async function withApi(run: (api: RestApi, proxy: FaultProxy) => Promise<void>): Promise<void> {
  const api = await startRestApi({ token: TOKEN, pageSize: 50 });
  const proxy = await startFaultProxy({
    target: { host: '127.0.0.1', port: Number(new URL(api.url).port) },
    faults: faultProfile(),
  });
  try {
    await run(api, proxy);
  } finally {
    await proxy.stop();
    await api.stop();
  }
}

describe('http under network faults', () => {
  it('sink: local → REST API uploads every file exactly once, nothing partial stored', async () => {
    const files = makeCorpus();
    writeCorpus(ws.path('up'), files);
    await withApi(async (api, proxy) => {
      const file = ws.pipeline(
        [
          'name: faults-http-sink',
          'source:',
          '  local: { path: ./up }',
          'sink:',
          '  http:',
          '    method: PUT',
          `    url: http://127.0.0.1:${proxy.port}/api/files/{path}`,
          `    headers: { Authorization: "Bearer ${TOKEN}" }`,
          '    response: { size: size, sha256: sha256 }',
          FAULT_POLICY_YAML,
        ].join('\n'),
        'http-sink.yaml',
      );
      const summary = await runPipelineFile(file, { stateDir: ws.path('state-sink') });
      console.info(describeFaults('http sink', summary, [proxy]));
      expectSurvivedFaults(summary, files, [proxy]);
      expectExactlyTheCorpus(
        api.files().map((f) => ({ path: f.name, sha256: f.sha256 })),
        files,
      );
      expect(await api.pendingUploads()).toBe(0);
    });
  });

  it('source: REST API → local downloads every file exactly once', async () => {
    const files = makeCorpus();
    await withApi(async (api, proxy) => {
      for (const f of files) await api.seed(f.path, f.data);
      const base = `http://127.0.0.1:${proxy.port}`;
      const file = ws.pipeline(
        [
          'name: faults-http-source',
          'source:',
          '  http:',
          '    list:',
          `      url: ${base}/api/files`,
          `      headers: { Authorization: "Bearer ${TOKEN}" }`,
          '      items: files',
          '      next: next_page',
          '      fields: { id: id, path: name, size: size, mtime: modified }',
          `    download: { url: "${base}/api/files/{meta.id}/content" }`,
          'sink:',
          '  local: { path: ./down }',
          FAULT_POLICY_YAML,
        ].join('\n'),
        'http-source.yaml',
      );
      const summary = await runPipelineFile(file, { stateDir: ws.path('state-source') });
      console.info(describeFaults('http source', summary, [proxy]));
      expectSurvivedFaults(summary, files, [proxy]);
      const arrived = listFiles(ws.path('down')).map((path) => ({
        path,
        sha256: sha256Of(readFileSync(ws.path('down', path))),
      }));
      expectExactlyTheCorpus(arrived, files);
    });
  });
});
