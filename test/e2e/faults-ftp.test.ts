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
import { afterAll, beforeAll, describe } from 'vitest';
import { faultProfile, remoteFsFaultCases } from '../helpers/fault-suite.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';
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

describe('ftp under network faults', () => {
  remoteFsFaultCases({
    plugin: 'ftp',
    rootDir: () => ftpd.rootDir,
    startProxy: proxyToFtpControl,
    yaml: ftpYaml,
    workspace: () => ws,
  });
});
