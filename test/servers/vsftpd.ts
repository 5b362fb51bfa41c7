/**
 * Starts vsftpd on 127.0.0.1 at a free port with its own config: plain FTP, explicit FTPS
 * (AUTH TLS) or implicit FTPS, with a self-signed certificate made by openssl for 127.0.0.1.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, killDescendants, stopPid, waitForPort } from './remote-fs-net.js';
import { selfSignedCert } from './self-signed.js';
import { ensureUnixUser } from './unix-user.js';

export interface VsftpdHandle {
  host: string;
  port: number;
  username: string;
  password: string;
  /** The server certificate (PEM), to trust as a CA; undefined without TLS. */
  caFile?: string;
  /** The login folder: a fresh folder owned by the test user. */
  rootDir: string;
  pid: number;
  /** Kills the processes serving current connections (the listener stays up). */
  killSessions(): void;
  stop(): Promise<void>;
}

export interface VsftpdOptions {
  tls?: 'explicit' | 'implicit';
  username?: string;
  /** More vsftpd.conf lines (`mdtm_write=NO`…), after the defaults so they win. */
  extraConfig?: string[];
}

export async function startVsftpd(options: VsftpdOptions = {}): Promise<VsftpdHandle> {
  // One user per transport: each start sets a fresh password, so test files running in
  // parallel must not share a user.
  const username = options.username ?? `sluice-ftp${options.tls ? `-${options.tls}` : ''}`;
  const user = ensureUnixUser(username);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-vsftpd-'));
  chmodSync(dir, 0o711);
  const rootDir = join(dir, 'files');
  mkdirSync(rootDir);
  chownSync(rootDir, user.uid, user.gid);
  mkdirSync('/var/run/vsftpd/empty', { recursive: true });

  const port = await freePort();
  // A private passive range per server; collisions between parallel test files are unlikely.
  const pasvMin = 40_000 + Math.floor(Math.random() * 20_000);
  const lines = [
    'listen=YES',
    'listen_ipv6=NO',
    'listen_address=127.0.0.1',
    `listen_port=${port}`,
    'background=NO',
    'anonymous_enable=NO',
    'local_enable=YES',
    'write_enable=YES',
    'local_umask=022',
    `local_root=${rootDir}`,
    'pasv_enable=YES',
    'pasv_address=127.0.0.1',
    `pasv_min_port=${pasvMin}`,
    `pasv_max_port=${pasvMin + 200}`,
    'utf8_filesystem=YES',
    'seccomp_sandbox=NO',
    'secure_chroot_dir=/var/run/vsftpd/empty',
    'pam_service_name=vsftpd',
    'max_clients=100',
    'max_per_ip=100',
    'xferlog_enable=YES',
    `vsftpd_log_file=${join(dir, 'vsftpd.log')}`,
  ];
  let caFile: string | undefined;
  if (options.tls) {
    const key = join(dir, 'server.key');
    caFile = join(dir, 'server.crt');
    selfSignedCert(key, caFile);
    lines.push(
      'ssl_enable=YES',
      `rsa_cert_file=${caFile}`,
      `rsa_private_key_file=${key}`,
      'force_local_logins_ssl=YES',
      'force_local_data_ssl=YES',
      `implicit_ssl=${options.tls === 'implicit' ? 'YES' : 'NO'}`,
    );
  }
  lines.push(...(options.extraConfig ?? []));
  const config = join(dir, 'vsftpd.conf');
  writeFileSync(config, `${lines.join('\n')}\n`);
  // vsftpd has no pidfile option: the child's PID (background=NO) is the listener's.
  const child = spawn('/usr/sbin/vsftpd', [config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let exit: string | undefined;
  child.once('exit', (code) => {
    exit = `vsftpd exited with ${code}: ${stderr}`;
  });
  await waitForPort(port, 10_000, () => exit);
  const pid = child.pid!;
  return {
    host: '127.0.0.1',
    port,
    username,
    password: user.password,
    caFile,
    rootDir,
    pid,
    killSessions: () => killDescendants(pid),
    async stop() {
      killDescendants(pid);
      await stopPid(pid);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function vsftpdLog(handle: VsftpdHandle): string {
  try {
    return readFileSync(join(handle.rootDir, '..', 'vsftpd.log'), 'utf8');
  } catch {
    return '';
  }
}
