/**
 * Starts Debian's PostgreSQL (apt `postgresql`) on 127.0.0.1 at a free port, with its own data
 * folder in a temp dir, run as the unprivileged `postgres` user (initdb refuses root). Logins
 * need the password (scram-sha-256, also over the socket), so a test of a wrong password means
 * something. Debian's own cluster on 5432 is never touched.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './remote-fs-net.js';
import { ensureUnixUser } from './unix-user.js';

export interface PostgresHandle {
  /** `postgres://sluice:<password>@127.0.0.1:<port>/<database>` */
  url: string;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** The URL with another password (or user/database), for failure tests. */
  urlWith(parts: { password?: string; user?: string; database?: string }): string;
  stop(): Promise<void>;
}

/** `/usr/lib/postgresql/<major>/bin` of the newest installed major. */
function binDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((d) => /^\d+$/.test(d) && existsSync(join(root, d, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (majors.length === 0) {
    throw new Error(`no PostgreSQL under ${root}: apt-get install --no-install-recommends postgresql`);
  }
  return join(root, majors[0], 'bin');
}

export async function startPostgres(options: { database?: string } = {}): Promise<PostgresHandle> {
  const bin = binDir();
  // The package's own system user; made like the SSH/FTP test users where it is missing.
  const osUser = ensurePostgresUser();
  const dir = mkdtempSync(join(tmpdir(), 'sluice-postgres-'));
  const data = join(dir, 'data');
  const user = 'sluice';
  const password = `pg-${randomBytes(12).toString('base64url')}`;
  const database = options.database ?? 'datahub';
  const port = await freePort();
  const pwfile = join(dir, 'pwfile');
  writeFileSync(pwfile, `${password}\n`);
  chownSync(dir, osUser.uid, osUser.gid);
  chownSync(pwfile, osUser.uid, osUser.gid);
  chmodSync(pwfile, 0o600);
  const asPostgres = (command: string, args: string[]) =>
    execFileSync('runuser', ['-u', osUser.username, '--', join(bin, command), ...args], {
      stdio: 'pipe',
      cwd: dir,
      // psql logs in like any client: with the password (runuser passes the environment on).
      env: { ...process.env, PGPASSWORD: password },
    });
  try {
    asPostgres('initdb', [
      '-D',
      data,
      '-U',
      user,
      `--pwfile=${pwfile}`,
      '-A',
      'scram-sha-256',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    rmSync(pwfile);
    const settings = [
      `-p ${port}`,
      `-k ${dir}`,
      '-c listen_addresses=127.0.0.1',
      '-c timezone=UTC',
      '-c fsync=off',
      '-c full_page_writes=off',
    ].join(' ');
    asPostgres('pg_ctl', [
      '-D',
      data,
      '-o',
      settings,
      '-l',
      join(dir, 'server.log'),
      '-w',
      '-t',
      '30',
      'start',
    ]);
    asPostgres('psql', [
      '-h',
      dir,
      '-p',
      String(port),
      '-U',
      user,
      '-d',
      'postgres',
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      `CREATE DATABASE "${database}"`,
    ]);
  } catch (err) {
    const log = existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8') : '';
    rmSync(dir, { recursive: true, force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`PostgreSQL did not start: ${(err as Error).message}\n${stderr}\n${log.slice(-2000)}`);
  }
  const host = '127.0.0.1';
  const urlWith = (parts: { password?: string; user?: string; database?: string }) =>
    `postgres://${encodeURIComponent(parts.user ?? user)}:${encodeURIComponent(parts.password ?? password)}@${host}:${port}/${encodeURIComponent(parts.database ?? database)}`;
  return {
    url: urlWith({}),
    host,
    port,
    user,
    password,
    database,
    urlWith,
    async stop() {
      try {
        asPostgres('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Debian's package makes the `postgres` user; without it (PostgreSQL from elsewhere) a user of
 * our own runs the server. Only its ids are needed; it never logs in.
 */
function ensurePostgresUser(): { username: string; uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    return { username: 'postgres', uid, gid };
  } catch {
    return ensureUnixUser('sluicepg');
  }
}
