/**
 * Crash tests: SIGKILL `sluice run` at chosen moments, rerun until it finishes, and after every
 * round prove that no file is gone from the source unless its exact bytes are at the sink.
 * Used by test/e2e/crash-recovery.test.ts, test/e2e/cluster-kill.test.ts and test/chaos/.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { SLUICE_BIN } from './sluice-process.js';
import { sha256, type Workspace } from './workspace.js';

/**
 * Writes `count` distinct files of 0.5–16.5 KiB spread over 20 sub-folders under `folder` of
 * the workspace; returns relative path → sha256.
 */
export function writeNumberedFiles(ws: Workspace, folder: string, count: number): Map<string, string> {
  const hashes = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const rel = `d${i % 20}/file-${i}.dat`;
    const body = Buffer.alloc(512 + ((i * 7919) % 16384), i % 251);
    body.write(`file ${i}`);
    ws.write(`${folder}/${rel}`, body);
    hashes.set(rel, sha256(body));
  }
  return hashes;
}

/** sha256 of the file at `rel` under a local sink folder, or undefined when it is not there. */
export function localCopies(root: string): (rel: string) => string | undefined {
  return (rel) => {
    const path = join(root, rel);
    return existsSync(path) ? sha256(readFileSync(path)) : undefined;
  };
}

/**
 * The no-loss rule: every expected file that is gone from the source has a copy with its exact
 * bytes at the sink (`copyOf` gives the sha256 of the sink's copy, undefined when there is none).
 * Returns how many files are still at the source.
 */
export function expectNoLoss(
  expected: Map<string, string>,
  atSource: Iterable<string>,
  copyOf: (rel: string) => string | undefined,
): number {
  const remaining = new Set(atSource);
  const lost: string[] = [];
  for (const [rel, hash] of expected) {
    if (remaining.has(rel)) continue;
    const copy = copyOf(rel);
    if (copy === undefined) lost.push(`${rel} deleted at the source but missing in the sink`);
    else if (copy !== hash)
      lost.push(`${rel} deleted at the source but its copy differs (sha256 ${copy}, expected ${hash})`);
  }
  expect(lost).toEqual([]);
  return remaining.size;
}

export interface KillRound {
  round: number;
  /** The process died of our SIGKILL while it was running. */
  killed: boolean;
  /** Exit code (null when killed). */
  code: number | null;
  ms: number;
  /** Files left at the source after the round (from `afterRound`). */
  remaining: number;
  /** What `killMoment` said about this round's kill (e.g. which trigger), for the report. */
  note?: string;
  /** The end of its output, when a round that was not killed exited non-zero. */
  output?: string;
}

export interface KillLoopOptions {
  /** Arguments after `node bin/sluice.js` for round `round`. */
  args: (round: number) => string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Kills that must land; rounds after that run to completion. */
  kills: number;
  /**
   * Resolves at the moment to SIGKILL this round's process (optionally with a note on how the
   * moment was chosen). `signal` aborts when the process exits first: stop waiting then.
   */
  killMoment: (round: number, signal: AbortSignal) => Promise<string | undefined>;
  /** The no-loss check after every round (`killed`: this round died of a kill); returns how many files are left at the source. */
  afterRound: (round: number, killed: boolean) => number | Promise<number>;
  maxRounds: number;
  /** A round that is not being killed and runs longer than this is a hang: the loop fails. */
  roundTimeoutMs: number;
  /** Stop trying to kill after this many rounds even if fewer kills landed (default: no limit). */
  maxKillAttempts?: number;
}

export interface KillLoopResult {
  rounds: KillRound[];
  /** SIGKILLs that hit a running process. */
  kills: number;
  /** The last round exited 0 with nothing left at the source. */
  finished: boolean;
}

/**
 * Runs `sluice` round after round: while fewer than `kills` kills have landed, each round is
 * SIGKILLed at its `killMoment`; then rounds run to their end, until one exits 0 with nothing
 * left at the source. A kill counts only when the process died of it (not when it had exited).
 */
export async function killLoop(options: KillLoopOptions): Promise<KillLoopResult> {
  const rounds: KillRound[] = [];
  let kills = 0;
  let attempts = 0;
  let finished = false;
  for (let round = 0; round < options.maxRounds && !finished; round++) {
    const started = performance.now();
    const child = spawn(process.execPath, [SLUICE_BIN, ...options.args(round)], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail = outputTail(child);
    const exitedFirst = new AbortController();
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => {
        exitedFirst.abort();
        resolve({ code, signal });
      }),
    );
    let note: string | undefined;
    const killing = kills < options.kills && attempts < (options.maxKillAttempts ?? Number.POSITIVE_INFINITY);
    if (killing) {
      attempts++;
      note = await Promise.race([exit.then(() => undefined), options.killMoment(round, exitedFirst.signal)]);
      if (!exitedFirst.signal.aborted) child.kill('SIGKILL');
    } else {
      const timer = setTimeout(() => child.kill('SIGKILL'), options.roundTimeoutMs);
      void exit.then(() => clearTimeout(timer));
    }
    const { code, signal } = await exit;
    if (!killing && signal === 'SIGKILL') {
      throw new Error(
        `round ${round}: sluice ${options.args(round).join(' ')} hung (no exit within ${options.roundTimeoutMs} ms); output:\n${tail()}`,
      );
    }
    const killed = killing && signal === 'SIGKILL';
    if (killed) kills++;
    const remaining = await options.afterRound(round, killed);
    rounds.push({
      round,
      killed,
      code,
      ms: Math.round(performance.now() - started),
      remaining,
      note: killed ? note : undefined,
      output: !killed && code !== 0 ? tail() : undefined,
    });
    finished = !killed && code === 0 && remaining === 0;
  }
  return { rounds, kills, finished };
}

/** Keeps the last 8 KiB of a child's stdout+stderr, for the message of a failing round. */
function outputTail(child: ChildProcess): () => string {
  let out = '';
  const keep = (chunk: Buffer) => {
    out = (out + chunk.toString()).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => out;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleepUnless(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Resolves once `ready()` holds (polled every `everyMs`), or when `signal` aborts; returns
 * whether `ready()` held.
 */
export async function pollUntil(ready: () => boolean, signal: AbortSignal, everyMs = 50): Promise<boolean> {
  while (!signal.aborted) {
    if (ready()) return true;
    await sleepUnless(everyMs, signal);
  }
  return false;
}

/** Files under `dir`, recursively (no stat: cheap enough to poll while a run moves them). */
export function countFiles(dir: string): number {
  let n = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    n += entry.isDirectory() ? countFiles(join(dir, entry.name)) : 1;
  }
  return n;
}

/**
 * A kill moment by progress, not by time: waits until a random share of the files left in
 * `dir` has gone (each kill still to come gets about the same share), so a run that got faster
 * (another Node, a quieter machine) still has work left for every kill. Timed moments let runs
 * finish before their kill and the loop end a few kills short.
 */
export function killAfterShare(
  dir: string,
  kills: number,
): (round: number, exited: AbortSignal) => Promise<undefined> {
  return async (round, exited) => {
    const left = countFiles(dir);
    const share = Math.max(2, Math.floor(left / (Math.max(1, kills - round) + 1)));
    const target = left - 1 - Math.floor(Math.random() * share);
    await pollUntil(() => countFiles(dir) <= target, exited, 20);
    return undefined;
  };
}
