/**
 * azure_blob source and sink through the real runtime while a TCP proxy in front of Azurite
 * resets, stalls and slows connections: every blob must arrive once, whole, nothing partial.
 */
import { readFileSync } from 'node:fs';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
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
import { type AzuriteHandle, startAzurite } from '../servers/azurite.js';
import { type FaultProxy, startFaultProxy } from '../servers/fault-proxy.js';

const CONTAINER = 'sluice-faults';
let azurite: AzuriteHandle;
let container: ContainerClient;
let ws: Workspace;

beforeAll(async () => {
  azurite = await startAzurite();
  container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(CONTAINER);
  await container.create();
  ws = makeWorkspace('sluice-faults-azure-');
});

afterAll(async () => {
  await azurite?.stop();
  ws?.cleanup();
});

async function proxyToAzurite(): Promise<FaultProxy> {
  return startFaultProxy({
    target: { host: '127.0.0.1', port: Number(new URL(azurite.accountUrl).port) },
    faults: faultProfile(),
  });
}

function azureYaml(proxy: FaultProxy, prefix: string): string[] {
  const blobEndpoint = `http://127.0.0.1:${proxy.port}/${azurite.account}`;
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${azurite.account};AccountKey=${azurite.accountKey};BlobEndpoint=${blobEndpoint};`;
  return [
    `    connection_string: "${connectionString}"`,
    `    container: ${CONTAINER}`,
    `    prefix: ${prefix}`,
  ];
}

async function blobsUnder(prefix: string): Promise<Array<{ path: string; sha256: string }>> {
  const out: Array<{ path: string; sha256: string }> = [];
  for await (const blob of container.listBlobsFlat({ prefix })) {
    out.push({
      path: blob.name.slice(prefix.length),
      sha256: sha256Of(await container.getBlobClient(blob.name).downloadToBuffer()),
    });
  }
  return out;
}

describe('azure_blob under network faults', () => {
  it('sink: local → azure_blob uploads every file exactly once', async () => {
    const files = makeCorpus();
    writeCorpus(ws.path('up'), files);
    const proxy = await proxyToAzurite();
    try {
      const file = ws.pipeline(
        [
          'name: faults-azure-sink',
          'source:',
          '  local: { path: ./up }',
          'sink:',
          '  azure_blob:',
          ...azureYaml(proxy, 'landed/'),
          FAULT_POLICY_YAML,
        ].join('\n'),
        'azure-sink.yaml',
      );
      const summary = await runPipelineFile(file, { stateDir: ws.path('state-sink') });
      console.info(describeFaults('azure_blob sink', summary, [proxy]));
      // Uploads are buffered blocks the SDK's StorageRetryPolicy resends itself (4 tries, 4 s
      // base delay), so the runtime sees no failure; the proxy's resets prove faults happened.
      expectSurvivedFaults(summary, files, [proxy], 'client');
      expectExactlyTheCorpus(await blobsUnder('landed/'), files);
      // Uncommitted blocks of aborted uploads never become blobs.
      const uncommitted: string[] = [];
      for await (const blob of container.listBlobsFlat({ prefix: 'landed/', includeUncommitedBlobs: true }))
        uncommitted.push(blob.name);
      expect(uncommitted).toHaveLength(files.length);
    } finally {
      await proxy.stop();
    }
  });

  it('source: azure_blob → local downloads every blob exactly once', async () => {
    const files = makeCorpus();
    for (const f of files) await container.getBlockBlobClient(`outgoing/${f.path}`).uploadData(f.data);
    const proxy = await proxyToAzurite();
    try {
      const file = ws.pipeline(
        [
          'name: faults-azure-source',
          'source:',
          '  azure_blob:',
          ...azureYaml(proxy, 'outgoing/'),
          'sink:',
          '  local: { path: ./down }',
          FAULT_POLICY_YAML,
        ].join('\n'),
        'azure-source.yaml',
      );
      const summary = await runPipelineFile(file, { stateDir: ws.path('state-source') });
      console.info(describeFaults('azure_blob source', summary, [proxy]));
      expectSurvivedFaults(summary, files, [proxy]);
      const arrived = listFiles(ws.path('down')).map((path) => ({
        path,
        sha256: sha256Of(readFileSync(ws.path('down', path))),
      }));
      expectExactlyTheCorpus(arrived, files);
    } finally {
      await proxy.stop();
    }
  });
});
