/** The `sluice` binary as a long-running child process: JSON log lines, waiting, signals, free ports. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const SLUICE_BIN = join(import.meta.dirname, '..', '..', 'bin', 'sluice.js');

export interface SluiceProcess {
  child: ChildProcess;
  /** Parsed JSON log lines (stderr) so far. */
  logs: Array<Record<string, unknown>>;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first log line (past or future) matching; rejects after `timeoutMs`. */
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
    what?: string,
  ): Promise<Record<string, unknown>>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

export function startSluice(args: string[], cwd: string, env: Record<string, string> = {}): SluiceProcess {
  const child = spawn(process.execPath, [SLUICE_BIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...forcedThreads(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let partial = '';
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<{
    match: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }> = [];
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
    partial += c.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      logs.push(rec);
      for (const w of [...waiters]) {
        if (w.match(rec)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(rec);
        }
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    logs,
    stdout: () => out,
    stderr: () => err,
    waitForLog(match, timeoutMs = 15_000, what = 'a log line') {
      const found = logs.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr:\n${err.slice(-3000)}`),
            ),
          timeoutMs,
        );
        waiters.push({
          match,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
    exited,
    kill(signal = 'SIGTERM') {
      child.kill(signal);
    },
  };
}

/**
 * The port of the status server of a child started with `--metrics-port 0` (the OS picks a free
 * one, so parallel test files never race for a port), read from its start-up log line.
 */
export async function statusPort(p: SluiceProcess): Promise<number> {
  const line = await p.waitForLog(
    (l) => typeof l.url === 'string' && String(l.msg).startsWith('status page'),
    20_000,
    'the status server',
  );
  return Number(new URL(String(line.url)).port);
}

export async function until<T>(
  probe: () => T | Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(v)?.slice(0, 500)})`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SLUICE_THREADS of the test run (a suite run with a forced thread pool), passed on. */
function forcedThreads(): Record<string, string> {
  const threads = process.env.SLUICE_THREADS;
  return threads ? { SLUICE_THREADS: threads } : {};
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `node bin/sluice.js <args>` to its end, in `cwd`, with only PATH and HOME of this
 * environment (and `env`): what a one-shot command prints and its exit code.
 */
export function runSluiceSync(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SLUICE_BIN, ...args], {
    cwd,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...forcedThreads(), ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * `sluice <args>` on a pseudo-terminal of `rows` × `cols` (util-linux `script`, as a user's
 * shell gives one; 0 × 0 is a terminal that reports no size), NO_COLOR set: the exit status,
 * what it drew (`raw`) and that text without terminal control sequences (`screen`).
 */
export function runSluiceInTerminal(
  args: string[],
  cwd: string,
  size: { rows: number; cols: number },
): { status: number | null; raw: string; screen: string } {
  const command = [process.execPath, SLUICE_BIN, ...args].map((a) => JSON.stringify(a)).join(' ');
  const r = spawnSync(
    'script',
    ['-qec', `stty rows ${size.rows} cols ${size.cols}; ${command}`, '/dev/null'],
    {
      cwd,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1' },
    },
  );
  return { status: r.status, raw: r.stdout, screen: r.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '') };
}

/** SIGKILLs `proc` if it is still running and waits for it (a test's afterEach). */
export async function killSluice(proc: SluiceProcess | undefined): Promise<void> {
  if (!proc || proc.child.exitCode !== null) return;
  proc.kill('SIGKILL');
  await proc.exited;
}
