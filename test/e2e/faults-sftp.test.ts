/**
 * sftp source and sink through the real runtime while a TCP proxy in front of sshd resets,
 * stalls and slows SSH connections: every file must arrive once, whole, and no temp file of an
 * interrupted upload may stay behind.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { runPipelineFile } from '../../core/runtime/run-file.js';
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
import { type SshdHandle, startSshd } from '../servers/sshd.js';

let sshd: SshdHandle;
let ws: Workspace;

beforeAll(async () => {
  sshd = await startSshd('sluice-sftp-faults');
  ws = makeWorkspace('sluice-faults-sftp-');
});

afterAll(async () => {
  await sshd?.stop();
  ws?.cleanup();
});

async function proxyToSshd(): Promise<FaultProxy> {
  return startFaultProxy({ target: { host: sshd.host, port: sshd.port }, faults: faultProfile() });
}

function sftpYaml(proxy: FaultProxy, path: string): string[] {
  return [
    `    host: 127.0.0.1`,
    `    port: ${proxy.port}`,
    `    username: ${sshd.username}`,
    `    private_key_file: ${sshd.privateKeyFile}`,
    `    host_key_sha256: "${sshd.hostKeySha256}"`,
    `    path: ${path}`,
    '    max_connections: 8',
    '    connect_timeout: 5s',
  ];
}

function arrivedIn(dir: string) {
  return listFiles(dir).map((path) => ({ path, sha256: sha256Of(readFileSync(join(dir, path))) }));
}

describe('sftp under network faults', () => {
  it('sink: local → sftp uploads every file exactly once, no temp files left', async () => {
    const files = makeCorpus();
    writeCorpus(ws.path('up'), files);
    const proxy = await proxyToSshd();
    try {
      const file = ws.pipeline(
        ['name: faults-sftp-sink', 'source:', '  local: { path: ./up }', 'sink:', '  sftp:', ...sftpYaml(proxy, join(sshd.rootDir, 'landed')), FAULT_POLICY_YAML].join('\n'),
        'sftp-sink.yaml',
      );
      const summary = await runPipelineFile(file, { stateDir: ws.path('state-sink') });
      console.info(describeFaults('sftp sink', summary, [proxy]));
      expectSurvivedFaults(summary, files, [proxy]);
      expectExactlyTheCorpus(arrivedIn(join(sshd.rootDir, 'landed')), files);
    } finally {
      await proxy.stop();
    }
  });

  it('source: sftp → local downloads every file exactly once', async () => {
    const files = makeCorpus();
    writeCorpus(join(sshd.rootDir, 'outgoing'), files);
    const proxy = await proxyToSshd();
    try {
      const file = ws.pipeline(
        ['name: faults-sftp-source', 'source:', '  sftp:', ...sftpYaml(proxy, join(sshd.rootDir, 'outgoing')), 'sink:', '  local: { path: ./down }', FAULT_POLICY_YAML].join('\n'),
        'sftp-source.yaml',
      );
      const summary = await runPipelineFile(file, { stateDir: ws.path('state-source') });
      console.info(describeFaults('sftp source', summary, [proxy]));
      expectSurvivedFaults(summary, files, [proxy]);
      expectExactlyTheCorpus(arrivedIn(ws.path('down')), files);
    } finally {
      await proxy.stop();
    }
  });
});
