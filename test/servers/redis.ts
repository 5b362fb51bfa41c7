/**
 * Starts redis-server on 127.0.0.1 at a free port with its own folder. `persistent` keeps data
 * across `restart()` (append-only file, fsync always), as a production Redis would.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stopPid, waitForPort } from './remote-fs-net.js';

export interface RedisHandle {
  url: string;
  port: number;
  pid: number;
  /** Stops the server (SIGTERM: it writes its append-only file) and starts it again on the same port and folder. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(options: { persistent?: boolean } = {}): Promise<RedisHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-redis-'));
  const port = await freePort();
  const pidFile = join(dir, 'redis.pid');
  const launch = async () => {
    const persistence = options.persistent
      ? ['--appendonly', 'yes', '--appendfsync', 'always']
      : ['--appendonly', 'no'];
    execFileSync('redis-server', [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      ...persistence,
      '--daemonize',
      'yes',
      '--pidfile',
      pidFile,
      '--dir',
      dir,
      '--logfile',
      join(dir, 'redis.log'),
    ]);
    await waitForPort(port, 10_000);
    // The pid file appears before redis has written its number: an empty read is 0, and
    // signalling pid 0 would SIGTERM the test runner's whole process group.
    for (let i = 0; i < 500; i++) {
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
      if (Number.isInteger(pid) && pid > 1) return pid;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`redis-server wrote no pid to ${pidFile}`);
  };
  const handle: RedisHandle = {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: await launch(),
    async restart(downMs = 500) {
      await stopPid(handle.pid);
      await new Promise((r) => setTimeout(r, downMs));
      handle.pid = await launch();
    },
    async stop() {
      await stopPid(handle.pid);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}
