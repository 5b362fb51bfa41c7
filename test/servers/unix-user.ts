/** Makes a local Unix user for SSH/FTP test servers (tests run as root, as CI does). */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface UnixUser {
  username: string;
  password: string;
  uid: number;
  gid: number;
}

/**
 * Creates `username` if missing and gives it a fresh random password. Idempotent; retries
 * while another test process holds the passwd lock.
 */
export function ensureUnixUser(username: string): UnixUser {
  const password = `pw-${randomBytes(9).toString('base64url')}`;
  for (let attempt = 0; ; attempt++) {
    try {
      if (spawnSync('id', ['-u', username]).status !== 0) {
        // A real shell: vsftpd's PAM stack refuses users whose shell is not in /etc/shells.
        execFileSync('useradd', ['--create-home', '--shell', '/bin/bash', username], { stdio: 'pipe' });
      }
      execFileSync('chpasswd', { input: `${username}:${password}\n`, stdio: ['pipe', 'pipe', 'pipe'] });
      break;
    } catch (err) {
      if (attempt >= 20) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100 + Math.random() * 200);
    }
  }
  const uid = Number(execFileSync('id', ['-u', username]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', username]).toString().trim());
  return { username, password, uid, gid };
}
