/**
 * ftp source and sink through the real runtime while a TCP proxy on the FTP control connection
 * resets, stalls and slows it: every file must arrive once, whole, and no temp file of an
 * interrupted upload may stay behind.
 *
 * Only the control connection goes through the proxy. basic-ftp opens each passive data
 * connection to the control connection's host (EPSV, or PASV with the control IP forced) at the
 * port vsftpd announces, i.e. straight to vsftpd. Proxying data too would need vsftpd on another
 * loopback address with one proxy per passive port; faults on the control connection already
 * cut transfers mid-way: vsftpd ends the session, data connection included, when it drops.
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
import { startVsftpd, type VsftpdHandle } from '../servers/vsftpd.js';

let ftpd: VsftpdHandle;
let ws: Workspace;

beforeAll(async () => {
  ftpd = await startVsftpd({ username: 'sluice-ftp-faults' });
  ws = makeWorkspace('sluice-faults-ftp-');
});

afterAll(async () => {
  await ftpd?.stop();
  ws?.cleanup();
});

/** Control traffic is a few hundred bytes per file: reset after ~40 commands, stall early. */
async function proxyToFtpControl(): Promise<FaultProxy> {
  return startFaultProxy({
    target: { host: ftpd.host, port: ftpd.port },
    faults: faultProfile({ resetAfterBytes: 6 * 1024, stallAfterBytes: 600 }),
  });
}

function ftpYaml(proxy: FaultProxy, path: string): string[] {
  return [
    '    host: 127.0.0.1',
    `    port: ${proxy.port}`,
    `    username: ${ftpd.username}`,
    `    password: "${ftpd.password}"`,
    `    path: ${path}`,
    '    max_connections: 8',
    '    timeout: 5s',
  ];
}

function arrivedIn(dir: string) {
  return listFiles(dir).map((path) => ({ path, sha256: sha256Of(readFileSync(join(dir, path))) }));
}

describe('ftp under network faults', () => {
  it('sink: local → ftp uploads every file exactly once, no temp files left', async () => {
    const files = makeCorpus();
    writeCorpus(ws.path('up'), files);
    const proxy = await proxyToFtpControl();
    try {
      const file = ws.pipeline(
        ['name: faults-ftp-sink', 'source:', '  local: { path: ./up }', 'sink:', '  ftp:', ...ftpYaml(proxy, join(ftpd.rootDir, 'landed')), FAULT_POLICY_YAML].join('\n'),
        'ftp-sink.yaml',
      );
      const summary = await runPipelineFile(file, { stateDir: ws.path('state-sink') });
      console.info(describeFaults('ftp sink', summary, [proxy]));
      expectSurvivedFaults(summary, files, [proxy]);
      expectExactlyTheCorpus(arrivedIn(join(ftpd.rootDir, 'landed')), files);
    } finally {
      await proxy.stop();
    }
  });

  it('source: ftp → local downloads every file exactly once', async () => {
    const files = makeCorpus();
    writeCorpus(join(ftpd.rootDir, 'outgoing'), files);
    const proxy = await proxyToFtpControl();
    try {
      const file = ws.pipeline(
        ['name: faults-ftp-source', 'source:', '  ftp:', ...ftpYaml(proxy, join(ftpd.rootDir, 'outgoing')), 'sink:', '  local: { path: ./down }', FAULT_POLICY_YAML].join('\n'),
        'ftp-source.yaml',
      );
      const summary = await runPipelineFile(file, { stateDir: ws.path('state-source') });
      console.info(describeFaults('ftp source', summary, [proxy]));
      expectSurvivedFaults(summary, files, [proxy]);
      expectExactlyTheCorpus(arrivedIn(ws.path('down')), files);
    } finally {
      await proxy.stop();
    }
  });
});
