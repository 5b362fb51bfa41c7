/**
 * Starts OpenSSH's sshd on 127.0.0.1 at a free port with its own config, host key and
 * authorized_keys folder, for a local test user with both a password and a key pair.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  childPids,
  descendantPids,
  freePort,
  killDescendants,
  stopPid,
  waitForPort,
} from './remote-fs-net.js';
import { ensureUnixUser } from './unix-user.js';

export interface SshdHandle {
  host: string;
  port: number;
  username: string;
  password: string;
  /** Client private key (OpenSSH format, no passphrase) whose public half is authorized. */
  privateKeyFile: string;
  /** Host key fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`). */
  hostKeySha256: string;
  /** A fresh folder owned by the test user (absolute path, same on the server). */
  rootDir: string;
  /** sshd's log (one `Accepted …` line per logged-in connection). */
  logFile: string;
  /** How many file descriptors the server's session processes hold open on `path` now. */
  openHandles(path: string): number;
  /** PID of the listening sshd; per-connection processes are its children. */
  pid: number;
  /**
   * Every file the SFTP server opened for reading so far (paths as the server saw them, in
   * order); only with `startSshd(…, {logReads: true})`, which logs the SFTP subsystem at VERBOSE.
   */
  reads(): string[];
  /** Every OPEN the SFTP server was sent (path and flags as it logs them); only with `logReads`. */
  opens(): { path: string; flags: string }[];
  /**
   * Kills the sshd processes serving current connections (the listener stays up): the
   * privileged monitor and the user's child under it — killing only the monitor orphans the
   * child, which keeps serving the connection.
   */
  killSessions(): void;
  /**
   * The connection keys of an `sftp:` source or sink for this server (key auth, pinned host
   * key), as YAML lines indented under the plugin name; `via` points them at a proxy.
   */
  sftpYaml(via?: { host: string; port: number }): string[];
  /** The same keys as a config object (plus timeouts), for creating a source or sink in code. */
  sftpConfig(): {
    host: string;
    port: number;
    username: string;
    private_key_file: string;
    host_key_sha256: string;
    insecure_accept_any_host_key: false;
    connect_timeout: string;
    keepalive_interval: string;
  };
  stop(): Promise<void>;
}

export async function startSshd(
  username = 'sluice-sftp',
  options: { logReads?: boolean; maxSessions?: number } = {},
): Promise<SshdHandle> {
  const user = ensureUnixUser(username);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-sshd-'));
  // The SFTP subsystem runs as the test user, who must be able to pass through to rootDir.
  chmodSync(dir, 0o711);
  const rootDir = join(dir, 'files');
  mkdirSync(rootDir);
  chownSync(rootDir, user.uid, user.gid);
  mkdirSync('/run/sshd', { recursive: true });

  const hostKey = join(dir, 'host_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  const hostKeySha256 = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`])
    .toString()
    .split(' ')[1];
  const privateKeyFile = join(dir, 'client_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', privateKeyFile]);
  const authorizedKeys = join(dir, 'authorized_keys');
  mkdirSync(authorizedKeys);
  writeFileSync(join(authorizedKeys, username), readFileSync(`${privateKeyFile}.pub`));

  const readsLog = join(dir, 'sftp-requests.log');
  if (options.logReads) {
    writeFileSync(readsLog, '');
    chownSync(readsLog, user.uid, user.gid);
  }
  const port = await freePort();
  const pidFile = join(dir, 'sshd.pid');
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${pidFile}`,
      `AuthorizedKeysFile ${authorizedKeys}/%u`,
      'StrictModes no',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      // internal-sftp logs to syslog only: the server binary logs its requests to stderr (-e),
      // which the user's shell sends to a file the test user may write.
      options.logReads
        ? `Subsystem sftp /usr/lib/openssh/sftp-server -e -l VERBOSE 2>>${readsLog}`
        : 'Subsystem sftp internal-sftp',
      `AllowUsers ${username}`,
      'MaxStartups 100',
      `MaxSessions ${options.maxSessions ?? 100}`,
      '',
    ].join('\n'),
  );
  const log = join(dir, 'sshd.log');
  // -D keeps sshd in the foreground so the child's PID is the listener's PID.
  const child = spawn('/usr/sbin/sshd', ['-D', '-f', config, '-E', log], { stdio: 'ignore' });
  let exit: string | undefined;
  child.once('exit', (code) => {
    exit = `sshd exited with ${code}: ${safeRead(log)}`;
  });
  await waitForPort(port, 10_000, () => exit);
  const pid = child.pid!;

  return {
    host: '127.0.0.1',
    port,
    username,
    password: user.password,
    privateKeyFile,
    hostKeySha256,
    rootDir,
    logFile: log,
    openHandles: (path) => openDescriptors(pid, path),
    pid,
    reads: () => [...safeRead(readsLog).matchAll(/open "([^"]*)" flags READ/g)].map((m) => m[1]),
    opens: () =>
      [...safeRead(readsLog).matchAll(/open "([^"]*)" flags ([A-Z,]+)/g)].map((m) => ({
        path: m[1],
        flags: m[2],
      })),
    killSessions: () => killDescendants(pid),
    sftpYaml: (via) => [
      `    host: ${via?.host ?? '127.0.0.1'}`,
      `    port: ${via?.port ?? port}`,
      `    username: ${username}`,
      `    private_key_file: ${privateKeyFile}`,
      `    host_key_sha256: "${hostKeySha256}"`,
    ],
    sftpConfig: () => ({
      host: '127.0.0.1',
      port,
      username,
      private_key_file: privateKeyFile,
      host_key_sha256: hostKeySha256,
      insecure_accept_any_host_key: false,
      connect_timeout: '10s',
      keepalive_interval: '15s',
    }),
    async stop() {
      killDescendants(pid);
      await stopPid(pid);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** PIDs of the per-connection sshd monitors (children of the listener). */
export function sessionPids(listenerPid: number): number[] {
  return childPids(listenerPid);
}

function openDescriptors(listenerPid: number, path: string): number {
  let count = 0;
  for (const pid of descendantPids(listenerPid)) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // exited meanwhile
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === path) count++;
      } catch {
        // closed meanwhile
      }
    }
  }
  return count;
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
