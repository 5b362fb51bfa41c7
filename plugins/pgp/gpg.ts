/**
 * GnuPG as a child process: a throwaway GNUPGHOME per plugin instance, and streaming filters
 * (`gpg --decrypt`, `--encrypt`, `--verify sig -`) whose output ends only after gpg exited 0.
 * gpg writes plaintext before it has checked the integrity code at the end of a message and
 * reports a failure only through its exit status, so the exit status gates the end of stream.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, fstatSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline, type Readable, type Writable } from 'node:stream';
import { promisify } from 'node:util';
import { SluiceError } from '../../core/errors.js';
import { EndGate, type LateVerdict } from './stream-gates.js';

const execFileAsync = promisify(execFile);

/** Keep the tail of gpg's stderr: enough for its messages and status lines, bounded. */
const MAX_STDERR = 64 * 1024;

let gpgOnPath: Promise<boolean> | undefined;

export function isGpgAvailable(): Promise<boolean> {
  gpgOnPath ??= execFileAsync('gpg', ['--version']).then(
    () => true,
    () => false,
  );
  return gpgOnPath;
}

export interface GpgResult {
  code: number | null;
  /** `[GNUPG:] KEYWORD args…` status lines, split into words. */
  status: string[][];
  /** gpg's human-readable messages (`gpg: …` lines). */
  messages: string[];
}

function parseStderr(text: string): Pick<GpgResult, 'status' | 'messages'> {
  const status: string[][] = [];
  const messages: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('[GNUPG:] PROGRESS ')) continue; // liveness only (see spawnGpg)
    if (line.startsWith('[GNUPG:] ')) status.push(line.slice(9).trim().split(' '));
    else if (line.startsWith('gpg: ')) messages.push(line.slice(5).trim());
  }
  return { status, messages };
}

export function hasStatus(result: GpgResult, keyword: string): boolean {
  return result.status.some((s) => s[0] === keyword);
}

/** gpg's human lines that say nothing about a failure. */
const NOISE =
  /^(encrypted with|using|issuer|Signature made|WARNING: This key is not certified|There is no indication|signature verification suppressed|Total number processed|imported:|secret keys read|unchanged:)/;

/**
 * Status keywords that say why gpg failed (doc/DETAILS in GnuPG): shown with their arguments,
 * which are key ids, error codes and packet types, never a passphrase.
 */
const FAILURE_STATUS = new Set([
  'NODATA',
  'UNEXPECTED',
  'BADARMOR',
  'BADMDC',
  'DECRYPTION_FAILED',
  'NO_SECKEY',
  'NO_PUBKEY',
  'BAD_PASSPHRASE',
  'MISSING_PASSPHRASE',
  'KEYEXPIRED',
  'KEYREVOKED',
  'INV_RECP',
  'INV_SGNR',
  'NO_RECP',
  'NO_SGNR',
  'IMPORT_PROBLEM',
  'ERROR',
  'FAILURE',
]);

/**
 * Why gpg failed, in its own words: its last messages (without the "… failed: Unknown system
 * error" it ends many failures with, which names no cause) and the failure status lines. Never
 * the passphrase: gpg does not echo it, and neither the messages nor these status lines carry it.
 */
export function gpgFailure(result: GpgResult, what: string): SluiceError {
  const informative = (m: string) =>
    !NOISE.test(m) && !m.startsWith('"') && !/: Unknown system error$/.test(m);
  const reasons = result.messages.filter(informative);
  const said = (reasons.length > 0 ? reasons : result.messages).slice(-3).join('; ');
  const status = [
    ...new Set(result.status.filter((s) => FAILURE_STATUS.has(s[0])).map((s) => s.join(' '))),
  ].slice(-4);
  const parts = [said, status.length > 0 ? `[gpg status: ${status.join(', ')}]` : ''].filter(Boolean);
  const text = parts.join(' ') || `exit code ${result.code}`;
  const badPassphrase = /bad passphrase/i.test(said) || result.status.some((s) => s[0] === 'BAD_PASSPHRASE');
  return new SluiceError(
    badPassphrase ? 'SLUICE_E_CONFIG' : 'SLUICE_E_BAD_DATA',
    `${what} failed (gpg): ${text}`,
    {
      retryable: false,
    },
  );
}

interface SpawnOptions {
  passphrase?: string;
  /** A descriptor gpg gets as its stdin (a file it reads itself) instead of a pipe. */
  stdin?: number;
  /** A descriptor gpg gets as its stdout (a file it writes itself) instead of a pipe. */
  stdout?: number;
}

/**
 * gpg writing into a file has no pipe to this process but its status channel: were this
 * process killed, nothing would tell gpg, and it would write the whole plaintext into the
 * sink's temp folder. With these it writes a PROGRESS status line at most once a second and
 * exits when that write fails (its reader is gone), so it stops within about a second.
 */
const EXIT_WITH_PARENT = ['--enable-progress-filter', '--exit-on-status-write-error'];

/** Spawns gpg with a passphrase on fd 3 (never on the command line) and collects stderr. */
export function spawnGpg(
  home: string,
  args: string[],
  options: SpawnOptions,
): { child: ChildProcess; done: Promise<GpgResult> } {
  const passphraseArgs =
    options.passphrase !== undefined ? ['--pinentry-mode', 'loopback', '--passphrase-fd', '3'] : [];
  const liveness = options.stdout !== undefined ? EXIT_WITH_PARENT : [];
  const child = spawn(
    'gpg',
    [
      '--homedir',
      home,
      '--batch',
      '--yes',
      '--no-tty',
      '--status-fd',
      '2',
      ...liveness,
      ...passphraseArgs,
      ...args,
    ],
    { stdio: [options.stdin ?? 'pipe', options.stdout ?? 'pipe', 'pipe', 'pipe'] },
  );
  const passphraseFd = child.stdio[3] as Writable;
  passphraseFd.on('error', () => {}); // gpg may close fd 3 early; its exit status tells
  passphraseFd.end(options.passphrase !== undefined ? `${options.passphrase}\n` : undefined);
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    // PROGRESS lines (a liveness signal, once a second) never push the others out of the tail.
    stderr = (stderr + text).replace(/^\[GNUPG:\] PROGRESS .*\n/gm, '').slice(-MAX_STDERR);
  });
  const done = new Promise<GpgResult>((resolve, reject) => {
    child.once('error', (err) =>
      reject(
        new SluiceError('SLUICE_E_PLUGIN', `cannot run gpg: ${err.message}`, {
          cause: err,
          retryable: false,
        }),
      ),
    );
    child.once('close', (code) => resolve({ code, ...parseStderr(stderr) }));
  });
  done.catch(() => {});
  return { child, done };
}

/** Runs gpg to completion on a small input; rejects unless it exits 0. */
export async function runGpg(
  home: string,
  args: string[],
  input?: Buffer,
  options: SpawnOptions = {},
): Promise<GpgResult> {
  const { child, done } = spawnGpg(home, args, options);
  child.stdin?.on('error', () => {});
  child.stdin?.end(input);
  child.stdout?.resume();
  const result = await done;
  if (result.code !== 0) throw gpgFailure(result, `gpg ${args.filter((a) => a.startsWith('--')).join(' ')}`);
  return result;
}

/** How long gpg reads on after its reader stopped early, for a late verdict not asked for yet. */
const LATE_VERDICT_GRACE_MS = 2000;
/** The longest gpg reads on (the rest of its input) for a late verdict that was asked for. */
const LATE_VERDICT_CAP_MS = 60_000;
/** What gpg says when the reader of its output went away (stdout is a socket pair under Node). */
export const READER_GONE = /Broken pipe|Connection reset by peer/i;

/**
 * What gpg reads: a stream this process feeds into its stdin, or a file gpg reads itself
 * through an inherited descriptor (no byte passes through this process).
 */
export type GpgInput = Readable | GpgFileInput;

export interface GpgFileInput {
  /** Open for reading at offset 0; gpg's stdin. */
  readonly fd: number;
  readonly size: number;
  /** Called once gpg exited: throws when the file was not read as it should be (changed meanwhile). */
  finish(options?: { readerFailed?: boolean }): Promise<void>;
  /** Called once gpg exited, after `finish`: the descriptor is gpg's own to read no more. */
  close(): Promise<void>;
}

function isFileInput(input: GpgInput): input is GpgFileInput {
  return typeof (input as GpgFileInput).fd === 'number' && typeof (input as Readable).pipe !== 'function';
}

/** gpg's input, being fed: its own failure (which wins over gpg's verdict), its size, a way to stop it. */
interface Fed {
  failure(): Promise<unknown>;
  bytes(): number;
  stop(): void;
}

function feed(child: ChildProcess, input: GpgInput, done: Promise<GpgResult>): Fed {
  if (isFileInput(input)) {
    // Checked once, as soon as gpg exited (its offset is final then), and closed right after:
    // the verdict and a late verdict both read this answer.
    // gpg exiting non-zero (a corrupt message, a wrong key) stops reading where it gave up: only
    // a changed size then says the file changed; otherwise gpg's own verdict is reported.
    const failure = done
      .then((result) => input.finish({ readerFailed: result.code !== 0 }))
      .then(
        () => undefined,
        (err: unknown) => err ?? new Error('input failed'),
      )
      .finally(() => input.close().catch(() => undefined));
    return { failure: () => failure, bytes: () => input.size, stop: () => undefined };
  }
  let inputError: Error | undefined;
  // gpg says only "Unknown system error" about an empty input: count what it was given.
  let bytesIn = 0;
  input.on('data', (chunk: Buffer) => {
    bytesIn += chunk.length;
  });
  pipeline(input, child.stdin as Writable, (err) => {
    // EPIPE means gpg stopped reading: its exit status says why.
    if (err && (err as NodeJS.ErrnoException).code !== 'EPIPE') {
      inputError = err;
      child.kill();
    }
  });
  return {
    failure: async () => inputError,
    bytes: () => bytesIn,
    stop: () => {
      if (!input.destroyed && !input.readableEnded) input.destroy();
    },
  };
}

type VerdictOptions = {
  what: string;
  accept?: (result: GpgResult) => boolean;
};

/**
 * gpg's verdict once it exited: the input's own failure first (it may be retryable, or say
 * that the file changed), then its exit status, unless `accept(result)` says that exit is fine.
 */
async function judge(result: GpgResult, fed: Fed, options: VerdictOptions): Promise<void> {
  const failed = await fed.failure();
  if (failed) throw failed;
  if (result.code === 0 || options.accept?.(result)) return;
  if (fed.bytes() === 0)
    throw new SluiceError('SLUICE_E_BAD_DATA', `${options.what} failed (gpg): the input is empty`, {
      retryable: false,
    });
  throw gpgFailure(result, options.what);
}

/**
 * Streams `input` through gpg. The returned stream errors — before it ends — when gpg exits
 * non-zero, unless `accept(result)` says that exit is fine; `accept` may also throw its own
 * verdict. An error of `input` itself is passed on as is (it may be retryable).
 *
 * `late` is for a reader that stopped early because the bytes looked broken (a gunzip meeting
 * garbage): gpg, which goes on reading its input a moment after its output was closed (it
 * checks the integrity code at the end even when nobody reads the plaintext), says whether
 * the message itself failed — `lateFailure(result)` decides from its status — or nothing.
 */
export function gpgFilter(
  home: string,
  args: string[],
  input: GpgInput,
  options: SpawnOptions &
    VerdictOptions & {
      lateFailure?: (result: GpgResult) => boolean;
    },
): { output: Readable; done: Promise<GpgResult>; late: LateVerdict } {
  const fileIn = isFileInput(input) ? input.fd : undefined;
  const { child, done } = spawnGpg(home, args, { ...options, stdin: fileIn });
  const fed = feed(child, input, done);
  const verdict = async () => judge(await done, fed, options);
  const output = pipeline(child.stdout as Readable, new EndGate(verdict), () => {}) as unknown as Readable;
  done.catch((err) => output.destroy(err));

  let stopTimer: NodeJS.Timeout | undefined;
  let lateAsked = false;
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
    fed.stop();
  };
  const stopIn = (ms: number) => {
    clearTimeout(stopTimer);
    stopTimer = setTimeout(stop, ms);
    stopTimer.unref();
  };
  void done.finally(() => clearTimeout(stopTimer)).catch(() => {});
  output.once('close', () => {
    if (child.exitCode !== null || child.signalCode !== null || !options.lateFailure) stop();
    else stopIn(lateAsked ? LATE_VERDICT_CAP_MS : LATE_VERDICT_GRACE_MS);
  });
  const late: LateVerdict = async () => {
    if (!options.lateFailure) return undefined;
    lateAsked = true;
    if (output.closed) stopIn(LATE_VERDICT_CAP_MS);
    const result = await done.catch(() => undefined);
    if (!result || (await fed.failure()) || !options.lateFailure(result)) return undefined;
    // Not the writes that failed once its reader had stopped: those say nothing about the message.
    return gpgFailure(
      { ...result, messages: result.messages.filter((m) => !READER_GONE.test(m)) },
      options.what,
    );
  };
  return { output, done, late };
}

/**
 * Runs gpg on `input` with its output written by gpg itself into `outFd` (a file). `written`
 * resolves once gpg exited and its verdict (as `gpgFilter`'s) is good; it rejects otherwise,
 * or when `signal` aborts (gpg is stopped). What gpg wrote is then the caller's to discard.
 */
export function gpgInto(
  home: string,
  args: string[],
  input: GpgInput,
  outFd: number,
  options: SpawnOptions & VerdictOptions & { signal?: AbortSignal },
): { done: Promise<GpgResult>; written: Promise<void> } {
  const fileIn = isFileInput(input) ? input.fd : undefined;
  const { signal } = options;
  if (signal?.aborted) {
    if (isFileInput(input)) void input.close().catch(() => undefined);
    else input.destroy();
    const aborted = Promise.reject(signal.reason);
    aborted.catch(() => {});
    return { done: aborted, written: aborted };
  }
  const { child, done } = spawnGpg(home, args, { ...options, stdin: fileIn, stdout: outFd });
  const fed = feed(child, input, done);
  const onAbort = () => {
    child.kill();
    fed.stop();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const written = (async () => {
    try {
      const result = await done;
      if (signal?.aborted) throw signal.reason;
      await judge(result, fed, options);
      // An exit judged fine although not 0 (a signature problem beside a good decryption): the
      // file must still hold the whole plaintext, which gpg announced — a failed write of it
      // (a full disk) exits the same way.
      if (result.code !== 0) {
        const short = shortPlaintext(result, fstatSync(outFd).size);
        if (short)
          throw new SluiceError('SLUICE_E_SINK', `${options.what} failed (gpg): ${short}`, {
            retryable: true,
          });
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      fed.stop();
    }
  })();
  return { done, written };
}

/**
 * Why `size` bytes written are not the plaintext gpg announced (`PLAINTEXT_LENGTH`), or
 * undefined when they are or it cannot be told: no length announced (a message of partial-length
 * packets), or a text-mode literal (format other than binary `b`), whose line ends gpg may
 * change on the way out.
 */
export function shortPlaintext(result: GpgResult, size: number): string | undefined {
  const format = result.status.find((s) => s[0] === 'PLAINTEXT')?.[1];
  const announced = result.status.find((s) => s[0] === 'PLAINTEXT_LENGTH')?.[1];
  if (format !== '62' || announced === undefined || !/^\d+$/.test(announced)) return undefined;
  const length = Number(announced);
  return size === length ? undefined : `it wrote ${size} of the ${length} bytes of the plaintext`;
}

const HOME_PREFIX = 'sluice-gpg-';

/**
 * The agent of a throwaway home. gpg-agent keeps a protected secret key protected and unlocks
 * it again (an iterated S2K hash of the passphrase) for every decryption or signature: with its
 * default count (calibrated by the agent at start: 285 million here) that was 0.5–2 s per file
 * on a loaded machine, 20× what openpgp.js needs for the whole file.
 * The count's floor (65,536) makes each unlock ~1 ms. What it weakens: the copy of the key
 * inside this home (mode 0700, removed at close, swept after a crash) is re-protected with the
 * low count; the passphrase itself already sits in this agent's memory. The user's key file is
 * not touched.
 */
const AGENT_CONF = 'allow-preset-passphrase\ns2k-count 65536\n';
const PRESET_TOOL = '/usr/lib/gnupg/gpg-preset-passphrase';

/**
 * A private GNUPGHOME, removed (agent included) at close. It lives directly in the system temp
 * folder, not under the pipeline's state folder: gpg-agent's socket path must fit in 108
 * bytes, and a deep project path made `gpg --import` fail. Homes left by killed processes
 * (they hold key material) are removed by the next one.
 */
export class GpgHome {
  private constructor(readonly dir: string) {}

  static async create(): Promise<GpgHome> {
    await sweepDeadHomes();
    const dir = await mkdtemp(join(tmpdir(), `${HOME_PREFIX}${process.pid}-`));
    await writeFile(join(dir, 'gpg.conf'), 'no-auto-key-retrieve\ntrust-model always\n', { mode: 0o600 });
    await writeFile(join(dir, 'gpg-agent.conf'), AGENT_CONF, { mode: 0o600 });
    return new GpgHome(dir);
  }

  /**
   * Gives the agent the passphrase of every secret key once, so decryptions need no
   * passphrase of their own. Several concurrent `--pinentry-mode loopback` requests to one
   * agent sometimes fail with "Bad passphrase" under load; a preset passphrase avoids the
   * loopback exchange altogether. Returns false when gpg-preset-passphrase is not installed.
   */
  async presetPassphrase(passphrase: string): Promise<boolean> {
    if (!existsSync(PRESET_TOOL)) return false;
    const { stdout } = await execFileAsync('gpg', [
      '--homedir',
      this.dir,
      '--batch',
      '--with-colons',
      '--with-keygrip',
      '--list-secret-keys',
    ]);
    const keygrips = stdout
      .split('\n')
      .filter((line) => line.startsWith('grp:'))
      .map((line) => line.split(':')[9])
      .filter((grip) => grip);
    for (const keygrip of keygrips) {
      await new Promise<void>((resolve, reject) => {
        const child = spawn(PRESET_TOOL, ['--preset', keygrip], {
          env: { ...process.env, GNUPGHOME: this.dir },
          stdio: ['pipe', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr?.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        child.once('error', reject);
        child.once('close', (code) =>
          code === 0
            ? resolve()
            : reject(new SluiceError('SLUICE_E_PLUGIN', `gpg-preset-passphrase failed: ${stderr.trim()}`)),
        );
        child.stdin?.end(passphrase);
      });
    }
    return keygrips.length > 0;
  }

  /** Imports keys; returns the fingerprints of the primary keys imported. */
  async importKeys(keys: Buffer[]): Promise<string[]> {
    const fingerprints: string[] = [];
    for (const key of keys) {
      const result = await runGpg(this.dir, ['--import'], key);
      for (const s of result.status) if (s[0] === 'IMPORT_OK' && s[2]) fingerprints.push(s[2].toUpperCase());
    }
    return [...new Set(fingerprints)];
  }

  /** Writes a file inside the home (signatures, recipient keys) and returns its path. */
  async writeFile(name: string, data: Uint8Array): Promise<string> {
    const path = join(this.dir, name);
    await writeFile(path, data, { mode: 0o600 });
    return path;
  }

  async close(): Promise<void> {
    if (!(await killAgent(join(this.dir, 'S.gpg-agent')))) {
      await execFileAsync('gpgconf', ['--homedir', this.dir, '--kill', 'all']).catch(() => {});
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** How long closing waits for the agent's answer before falling back to `gpgconf --kill`. */
const KILL_AGENT_TIMEOUT_MS = 5000;

/**
 * Tells the agent listening on `socket` to exit (Assuan `KILLAGENT`, what `gpgconf --kill`
 * has `gpg-connect-agent` send), without two child processes: each spawn from a Node process
 * of ~100 MiB costs it 20–50 ms of CPU, and the pair took ~0.25 s of every run's close.
 * Resolves true once the agent acknowledged; false when there is no agent on that socket (none
 * started, or its socket lives elsewhere, e.g. under /run/user) or it did not answer.
 */
export function killAgent(socket: string): Promise<boolean> {
  if (!existsSync(socket)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const conn = connect(socket);
    let said = '';
    let asked = false;
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      conn.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), KILL_AGENT_TIMEOUT_MS);
    timer.unref();
    conn.setEncoding('utf8');
    conn.on('data', (text: string) => {
      said += text;
      const lines = said.split('\n');
      said = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('ERR')) return finish(false);
        if (!line.startsWith('OK')) continue; // comments, status
        if (asked) return finish(true);
        asked = true;
        conn.write('KILLAGENT\n');
      }
    });
    conn.on('error', () => finish(false));
    conn.on('close', () => finish(false));
  });
}

async function sweepDeadHomes(): Promise<void> {
  const entries = await readdir(tmpdir()).catch(() => [] as string[]);
  for (const entry of entries) {
    if (!entry.startsWith(HOME_PREFIX)) continue;
    const pid = Number(entry.slice(HOME_PREFIX.length).split('-')[0]);
    if (!Number.isInteger(pid) || pid === process.pid || isAlive(pid)) continue;
    const dir = join(tmpdir(), entry);
    await execFileAsync('gpgconf', ['--homedir', dir, '--kill', 'all']).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
