// Plain-JS starters for the benchmark servers (the test helpers are TypeScript under test/):
// s3rver as a child process, OpenSSH sshd with its own config, both on 127.0.0.1 at free ports.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { repoDir } from './common.mjs';

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, timeoutMs, failed) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const problem = failed();
    if (problem) throw new Error(problem);
    const open = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function stopChild(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

const S3RVER_CHILD = `
const S3rver = require('s3rver');
const server = new S3rver({ address: '127.0.0.1', port: 0, directory: process.argv[1], silent: true });
server.run().then((a) => process.stdout.write(JSON.stringify({ port: a.port }) + '\\n'), (e) => { console.error(e); process.exit(1); });
process.on('SIGTERM', () => server.close().finally(() => process.exit(0)));
`;

/** s3rver needs --openssl-legacy-provider for ListObjectsV2 pagination (DES continuation tokens). */
export async function startS3rver() {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-s3rver-'));
  const child = spawn(process.execPath, ['-e', S3RVER_CHILD, dir], {
    cwd: repoDir,
    env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  process.once('exit', () => child.kill('SIGKILL'));
  const port = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code}`)));
    createInterface({ input: child.stdout }).once('line', (line) => resolve(JSON.parse(line).port));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    pid: child.pid,
    async createBucket(name) {
      const res = await fetch(`${endpoint}/${name}`, { method: 'PUT' });
      if (res.status !== 200) throw new Error(`creating bucket ${name}: HTTP ${res.status}`);
    },
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function ensureUnixUser(username) {
  const password = `pw-${randomBytes(9).toString('base64url')}`;
  if (spawnSync('id', ['-u', username]).status !== 0) {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/bash', username], { stdio: 'pipe' });
  }
  execFileSync('chpasswd', { input: `${username}:${password}\n`, stdio: ['pipe', 'pipe', 'pipe'] });
  const uid = Number(execFileSync('id', ['-u', username]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', username]).toString().trim());
  return { username, password, uid, gid };
}

/** OpenSSH sshd (internal-sftp) for a local user with a key pair; files live under `rootDir`. */
export async function startSshd(username = 'sluice-bench') {
  const user = ensureUnixUser(username);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-sshd-'));
  chmodSync(dir, 0o711);
  const rootDir = join(dir, 'files');
  mkdirSync(rootDir);
  chownSync(rootDir, user.uid, user.gid);
  mkdirSync('/run/sshd', { recursive: true });
  const hostKey = join(dir, 'host_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  const hostKeySha256 = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`]).toString().split(' ')[1];
  const privateKeyFile = join(dir, 'client_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', privateKeyFile]);
  const keys = join(dir, 'authorized_keys');
  mkdirSync(keys);
  writeFileSync(join(keys, username), readFileSync(`${privateKeyFile}.pub`));
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${keys}/%u`,
      'StrictModes no',
      'PasswordAuthentication yes',
      'UsePAM no',
      'Subsystem sftp internal-sftp',
      `AllowUsers ${username}`,
      'MaxStartups 100',
      'MaxSessions 100',
      '',
    ].join('\n'),
  );
  const log = join(dir, 'sshd.log');
  const child = spawn('/usr/sbin/sshd', ['-D', '-f', config, '-E', log], { stdio: 'ignore' });
  process.once('exit', () => child.kill('SIGKILL'));
  let exited;
  child.once('exit', (code) => {
    exited = `sshd exited with ${code}`;
  });
  await waitForPort(port, 10_000, () => exited);
  return {
    host: '127.0.0.1',
    port,
    username,
    privateKeyFile,
    hostKeySha256,
    rootDir,
    uid: user.uid,
    gid: user.gid,
    async stop() {
      const kids = spawnSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)]).stdout.toString().trim();
      for (const pid of kids ? kids.split(/\s+/).map(Number) : []) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
