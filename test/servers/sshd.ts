/**
 * Starts OpenSSH's sshd on 127.0.0.1 at a free port with its own config, host key and
 * authorized_keys folder, for a local test user with both a password and a key pair.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stopPid, waitForPort } from './remote-fs-net.js';
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
  /** PID of the listening sshd; per-connection processes are its children. */
  pid: number;
  /** Kills the sshd processes serving current connections (the listener stays up). */
  killSessions(): void;
  stop(): Promise<void>;
}

export async function startSshd(username = 'sluice-sftp'): Promise<SshdHandle> {
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
      'Subsystem sftp internal-sftp',
      `AllowUsers ${username}`,
      'MaxStartups 100',
      'MaxSessions 100',
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
    pid,
    killSessions() {
      for (const session of sessionTreePids(pid)) {
        try {
          process.kill(session, 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }
    },
    async stop() {
      const sessions = sessionTreePids(pid);
      await stopPid(pid);
      await Promise.all(sessions.map((session) => stopPid(session, 'SIGKILL')));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** PIDs of the per-connection sshd monitors (children of the listener). */
export function sessionPids(listenerPid: number): number[] {
  return childrenOf(listenerPid);
}

/**
 * Every process serving a connection: the privileged monitor and the user's child under it.
 * Killing only the monitor orphans the child, which keeps serving the connection.
 */
function sessionTreePids(listenerPid: number): number[] {
  const all: number[] = [];
  const visit = (pid: number) => {
    for (const child of childrenOf(pid)) {
      all.push(child);
      visit(child);
    }
  };
  visit(listenerPid);
  return all;
}

function childrenOf(pid: number): number[] {
  // ps exits with 1 when there are none: that is an answer, not a failure.
  const out = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)])
    .stdout.toString()
    .trim();
  return out ? out.split(/\s+/).map(Number) : [];
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
