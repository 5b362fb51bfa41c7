/** Spawning `sluice` processes for the scale-out tests and benchmark. */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const sluiceBin = join(import.meta.dirname, '..', '..', 'bin', 'sluice.js');
export const clusterPlugins = join(import.meta.dirname, 'cluster-plugins.mjs');

export interface SluiceProcess {
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  output(): string;
  /** SIGTERM (graceful: active items finish), then waits. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

/** Fast stall detection and lister takeover, so the tests run in seconds. */
export function clusterEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    SLUICE_CLUSTER_STALL_MS: '2000',
    SLUICE_CLUSTER_LISTER_TTL_MS: '2000',
    SLUICE_CLUSTER_POLL_MS: '200',
    ...extra,
  };
}

export function spawnSluice(
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = clusterEnv(),
): SluiceProcess {
  const child = spawn(process.execPath, [sluiceBin, ...args], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    pid: child.pid!,
    exited,
    output: () => out,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Resolves when `check` is true, polling every 50 ms; rejects after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
