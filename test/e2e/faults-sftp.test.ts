/**
 * sftp source and sink through the real runtime while a TCP proxy in front of sshd resets,
 * stalls and slows SSH connections: every file must arrive once, whole, and no temp file of an
 * interrupted upload may stay behind.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { faultProfile, remoteFsFaultCases } from '../helpers/fault-suite.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';
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

/**
 * Resets after 48 KiB: with 64 reads in flight a session moves its files fast and the pool
 * spreads them unevenly, so a faulty session (every third) could end a run under 160 KiB and
 * the run would not have met a reset at all.
 */
async function proxyToSshd(): Promise<FaultProxy> {
  return startFaultProxy({
    target: { host: sshd.host, port: sshd.port },
    faults: faultProfile({ resetAfterBytes: 48 * 1024 }),
  });
}

function sftpYaml(proxy: FaultProxy, path: string): string[] {
  return [
    ...sshd.sftpYaml({ host: '127.0.0.1', port: proxy.port }),
    `    path: ${path}`,
    '    max_connections: 8',
    '    connect_timeout: 5s',
  ];
}

describe('sftp under network faults', () => {
  remoteFsFaultCases({
    plugin: 'sftp',
    rootDir: () => sshd.rootDir,
    startProxy: proxyToSshd,
    yaml: sftpYaml,
    workspace: () => ws,
  });
});
