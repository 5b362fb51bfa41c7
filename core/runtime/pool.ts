/**
 * Items on several threads (issue 16). The main thread lists, keeps the ledger, the claim book
 * of each pass, the summary and progress; each pool thread (runtime/pool-thread.ts) has its own
 * plugin instances and connections and runs whole items — ledger check, attempts, steps, sinks,
 * verification, tidy-up — asking the main thread for every ledger read and destination claim,
 * and sending it every ledger write in order. Nothing about an item's route changes: the same
 * runtime code runs in the thread, against the same ledger, so the delivery guarantee is the
 * single-thread one.
 *
 * A thread that stops unexpectedly fails the items it had (the ledger keeps what they reached;
 * the next pass redoes them as after a crash) and a new thread takes its place, up to
 * `RESTARTS_PER_MINUTE` a minute per thread of the pool (a plugin that kills every thread it
 * runs in must not spin); past that the pass goes on with the threads left, or on the main thread.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { PipelineDefinition } from '../config/load.js';
import { SluiceError } from '../errors.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../observe/logger.js';
import { registeredSecrets } from '../observe/redact.js';
import type { RunEvents, RunSummary } from '../observe/run-summary.js';
import { describeItem, type ListedItem } from './described.js';
import {
  type FromThread,
  fromWire,
  type MainCall,
  Outbox,
  portableDefinition,
  type ThreadProgress,
  type ToThread,
  toWire,
} from './pool-protocol.js';
import type { PassState } from './stage.js';

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** How long a closing thread may take to close its plugins before it is terminated. */
const CLOSE_TIMEOUT_MS = 30_000;

/** The first of these thread entries that exists (a composition root knows where its bundle is). */
export function existingEntry(...candidates: URL[]): PoolOptions | undefined {
  const entry = candidates.find((url) => existsSync(fileURLToPath(url)));
  return entry ? { entry } : undefined;
}

/** How many stopped threads a minute, per thread of the pool, are replaced by a new one. */
const RESTARTS_PER_MINUTE = 2;

/** With `threads: auto`, a pass starts the pool once it has listed more items than this. */
export const AUTO_POOL_AFTER_ITEMS = 64;

export interface PoolOptions {
  /** The module a pool thread runs (a composition root: it brings the registry). */
  entry: URL;
}

/** What the pool needs of the runner that owns it. */
export interface PoolHost {
  readonly def: PipelineDefinition;
  readonly ledger: Ledger;
  /** The logger records of the threads go to (bindings included). */
  readonly rootLog: Logger;
  readonly force: boolean;
  readonly trackProgress: boolean;
  emit<K extends keyof RunEvents>(event: K, ...args: RunEvents[K]): boolean;
}

/**
 * How many threads a pass uses: SLUICE_THREADS (the test suites force a pool with it) over
 * `policy.threads`. 1 means no pool. `auto` leaves a core to the main thread (listing, ledger,
 * messages) and uses a pool only from 4 cores: on 2 cores a pool of 2 measured slower than one
 * thread and used twice the CPU (bench/RESULTS.md, small-files and sftp-s3-small), the cost of
 * each item's messages and of three event loops sharing libuv's thread pool.
 */
export function poolSize(
  def: PipelineDefinition,
  env: NodeJS.ProcessEnv = process.env,
): {
  threads: number;
  eager: boolean;
} {
  // More threads than items in flight would only hold plugins and connections.
  const atMost = (n: number) => Math.min(n, def.policy.concurrency);
  const forced = env.SLUICE_THREADS === undefined ? undefined : Number(env.SLUICE_THREADS);
  if (forced !== undefined && Number.isInteger(forced) && forced >= 1)
    return { threads: atMost(forced), eager: true };
  const policy = def.policy.threads;
  if (policy === 'auto') {
    const cores = availableParallelism();
    return { threads: atMost(cores >= 4 ? cores - 1 : 1), eager: false };
  }
  return { threads: atMost(policy), eager: true };
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

class PoolThread {
  readonly worker: Worker;
  /** Items sent and not answered. */
  inFlight = 0;
  ready = false;
  /** Started in place of a thread that stopped (items wait for it rather than go to main). */
  replacement = false;
  stopped: SluiceError | undefined;
  progress: ThreadProgress[] = [];
  /** The thread's spool folder: removed here when the thread ends without closing its runner. */
  tempRoot: string | undefined;
  readonly answers = new Map<number, Pending>();
  readonly started: Promise<void>;
  readonly exited: Promise<void>;
  private readonly outbox: Outbox<ToThread>;

  constructor(
    entry: URL,
    init: ToThread,
    onMessage: (thread: PoolThread, msg: FromThread) => void,
    onExit: (thread: PoolThread) => void = () => undefined,
  ) {
    this.worker = new Worker(entry, { stdout: false, stderr: false });
    this.outbox = new Outbox((batch) => this.worker.postMessage(batch));
    let started!: Pending;
    this.started = new Promise<void>((resolve, reject) => {
      started = { resolve: resolve as (v: unknown) => void, reject };
    });
    this.started.catch(() => undefined);
    this.worker.on('message', (batch: FromThread[]) => {
      for (const msg of batch) {
        if (msg.t === 'ready') {
          this.ready = true;
          this.tempRoot = msg.tempRoot;
          started.resolve(undefined);
        } else if (msg.t === 'init-failed') {
          this.stop(fromWire(msg.error));
          started.reject(this.stopped);
          void this.worker.terminate();
        } else onMessage(this, msg);
      }
    });
    this.exited = new Promise<void>((resolve) => {
      this.worker.on('error', (err) => {
        this.stop(
          new SluiceError('SLUICE_E_INTERNAL', `a pool thread failed: ${err.message}`, { cause: err }),
        );
        started.reject(this.stopped);
      });
      this.worker.on('exit', (code) => {
        // Whether it had started: a thread that never did is not replaced (it would fail again).
        const wasReady = this.ready || this.tempRoot !== undefined;
        this.stop(new SluiceError('SLUICE_E_INTERNAL', `a pool thread stopped (exit code ${code})`));
        started.reject(this.stopped);
        resolve();
        if (wasReady) onExit(this);
      });
    });
    this.send(init);
  }

  send(msg: ToThread): void {
    this.outbox.send(msg);
  }

  /** Every answer still awaited fails with `error`; nothing more is sent to this thread. */
  stop(error: SluiceError): void {
    this.ready = false;
    this.progress = [];
    this.stopped ??= error;
    for (const pending of this.answers.values()) pending.reject(this.stopped);
    this.answers.clear();
  }

  ask<T>(msg: ToThread & { id: number }): Promise<T> {
    if (this.stopped) return Promise.reject(this.stopped);
    return new Promise<T>((resolve, reject) => {
      this.answers.set(msg.id, { resolve: resolve as (v: unknown) => void, reject });
      this.send(msg);
    });
  }

  answer(id: number, value: unknown, error?: SluiceError): void {
    const pending = this.answers.get(id);
    if (!pending) return;
    this.answers.delete(id);
    if (error) pending.reject(error);
    else pending.resolve(value);
  }
}

export class ThreadPool {
  private readonly threads: PoolThread[] = [];
  private nextId = 1;
  private readonly passIds = new WeakMap<PassState, number>();
  private readonly passes = new Map<number, PassState>();
  private nextPass = 1;
  private closing = false;
  /** When threads were replaced (ms), for the restart budget. */
  private readonly restarts: number[] = [];
  private init: ToThread | undefined;

  constructor(
    private readonly host: PoolHost,
    private readonly options: PoolOptions,
    readonly size: number,
  ) {}

  private started: Promise<void> | undefined;

  /** Starts the threads (once); resolves when each has started or failed to. */
  start(): Promise<void> {
    this.started ??= this.startThreads();
    return this.started;
  }

  private startThreads(): Promise<void> {
    const concurrency = Math.max(1, Math.ceil(this.host.def.policy.concurrency / this.size));
    const init: ToThread = {
      t: 'init',
      def: portableDefinition(this.host.def, concurrency),
      force: this.host.force,
      trackProgress: this.host.trackProgress,
      secrets: registeredSecrets(),
      flushBeforeSourceChange: this.host.ledger.flushBeforeSourceChange === true,
      logLevels: LEVELS.filter((level) => {
        const log = this.host.rootLog as Logger & { isLevelEnabled?: (level: string) => boolean };
        return log.isLevelEnabled?.(level) ?? true;
      }),
    };
    this.init = init;
    for (let i = 0; i < this.size; i++) this.threads.push(this.newThread(init));
    return Promise.allSettled(this.threads.map((t) => t.started)).then((results) => {
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      const running = this.threads.filter((t) => t.ready).length;
      const log = this.host.rootLog.child({ pipeline: this.host.def.name });
      if (failed && !this.closing)
        log.warn(
          { err: (failed.reason as Error).message, threads: running },
          running > 0
            ? `${this.size - running} of ${this.size} pool threads could not start`
            : 'the thread pool could not start; items run on the main thread',
        );
      if (running > 0) log.info({ threads: running }, `items run on ${running} threads`);
    });
  }

  private newThread(init: ToThread): PoolThread {
    return new PoolThread(
      this.options.entry,
      init,
      (t, m) => this.onMessage(t, m),
      (t) => this.replace(t),
    );
  }

  /**
   * A thread that had started stopped: a new one takes its place, within the restart budget.
   * Its spool folder goes now (its runner did not close). The new thread's start is not waited
   * for: items go to the threads ready meanwhile, or to the main thread.
   */
  private replace(dead: PoolThread): void {
    if (dead.tempRoot) void rm(dead.tempRoot, { recursive: true, force: true }).catch(() => undefined);
    const at = this.threads.indexOf(dead);
    if (this.closing || at < 0 || !this.init) return;
    const now = Date.now();
    while (this.restarts.length > 0 && now - this.restarts[0]! > 60_000) this.restarts.shift();
    const log = this.host.rootLog.child({ pipeline: this.host.def.name });
    if (this.restarts.length >= RESTARTS_PER_MINUTE * this.size) {
      log.warn(
        { err: dead.stopped?.message, threads: this.threads.filter((t) => t.ready).length },
        'a pool thread stopped and is not replaced (too many stopped within a minute)',
      );
      return;
    }
    this.restarts.push(now);
    const fresh = this.newThread(this.init);
    fresh.replacement = true;
    this.threads[at] = fresh;
    log.warn({ err: dead.stopped?.message }, 'a pool thread stopped; a new one takes its place');
    // Passes it joins midway: it learns of them from their first item (pass ids are global).
    fresh.started.catch(() => undefined);
  }

  /** True when some thread can take an item now. */
  get available(): boolean {
    return this.threads.some((t) => t.ready);
  }

  /**
   * When no thread is ready because every one stopped and their replacements are starting:
   * waits (at most `waitMs`) for one to be ready. True when one is; false sends the item to
   * the main thread.
   */
  async replaced(waitMs: number): Promise<boolean> {
    const starting = this.threads.filter((t) => t.replacement && !t.ready && !t.stopped);
    if (starting.length === 0) return false;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      ...starting.map((t) => t.started.catch(() => undefined)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, waitMs);
      }),
    ]);
    clearTimeout(timer);
    return this.available;
  }

  /** What the threads' items have read so far (progress, /status). */
  get progress(): ThreadProgress[] {
    return this.threads.flatMap((t) => t.progress);
  }

  /**
   * Runs one listed item on the least busy thread; resolves with what it counted once it has
   * ended there. Rejects when the thread stopped before the item ended.
   */
  async process(listed: ListedItem, pass: PassState): Promise<RunSummary> {
    const ready = this.threads.filter((t) => t.ready);
    if (ready.length === 0) throw new SluiceError('SLUICE_E_INTERNAL', 'no pool thread is running');
    const thread = ready.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
    thread.inFlight++;
    try {
      return await thread.ask<RunSummary>({
        t: 'item',
        id: this.nextId++,
        pass: this.passId(pass),
        desc: describeItem(listed),
      });
    } finally {
      thread.inFlight--;
    }
  }

  /** The pass has ended: its claim book is no longer asked for, and the threads forget it. */
  endPass(pass: PassState): void {
    const id = this.passIds.get(pass);
    if (id === undefined) return;
    this.passes.delete(id);
    for (const t of this.threads) if (!t.stopped) t.send({ t: 'end-pass', pass: id });
  }

  /** Aborts the items in flight on every thread (a drain that timed out, a second signal). */
  abort(): void {
    for (const t of this.threads) if (!t.stopped) t.send({ t: 'abort' });
  }

  /** Closes every thread's plugins and ends the threads. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      this.threads.map(async (t) => {
        if (t.stopped) await t.worker.terminate();
        else {
          t.send({ t: 'close' });
          const timer = setTimeout(() => void t.worker.terminate(), CLOSE_TIMEOUT_MS);
          await t.exited;
          clearTimeout(timer);
        }
        // A thread that died or was terminated did not remove its spool folder (its runner's
        // close() does that); removing it again after a clean close costs nothing.
        if (t.tempRoot) await rm(t.tempRoot, { recursive: true, force: true }).catch(() => undefined);
      }),
    );
    this.threads.length = 0;
  }

  private passId(pass: PassState): number {
    let id = this.passIds.get(pass);
    if (id === undefined) {
      id = this.nextPass++;
      this.passIds.set(pass, id);
      this.passes.set(id, pass);
    }
    return id;
  }

  /**
   * One message of a thread. What fails here (a ledger write that throws: disk full) stops that
   * thread as if it had died — its items fail, unrecorded — instead of the process.
   */
  private onMessage(thread: PoolThread, msg: FromThread): void {
    try {
      this.handle(thread, msg);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.host.rootLog.error(
        { pipeline: this.host.def.name, err: message },
        'a message of a pool thread failed; the thread is stopped',
      );
      thread.stop(new SluiceError('SLUICE_E_INTERNAL', `a pool thread stopped: ${message}`));
      void thread.worker.terminate();
    }
  }

  private handle(thread: PoolThread, msg: FromThread): void {
    switch (msg.t) {
      case 'done':
        thread.answer(msg.id, msg.summary, msg.error ? fromWire(msg.error) : undefined);
        break;
      case 'record':
        this.host.ledger.record(msg.pipeline, msg.id, msg.update);
        break;
      case 'call':
        this.call(msg).then(
          (value) => thread.send({ t: 'reply', id: msg.id, value }),
          (err) => thread.send({ t: 'reply', id: msg.id, error: toWire(err) }),
        );
        break;
      case 'release':
        this.passes.get(msg.pass)?.claims.release(msg.destinations);
        break;
      case 'release-owner':
        this.passes.get(msg.pass)?.claims.releaseOwner(msg.owner);
        break;
      case 'event':
        (this.host.emit as (name: string, payload: unknown) => boolean)(msg.name, msg.payload);
        break;
      case 'log': {
        const log = this.host.rootLog.child(msg.bindings);
        if (msg.msg === undefined) log[msg.level](msg.obj as object);
        else log[msg.level](msg.obj as object, msg.msg);
        break;
      }
      case 'progress':
        thread.progress = msg.items;
        break;
    }
  }

  private async call(msg: MainCall): Promise<unknown> {
    const ledger = this.host.ledger;
    switch (msg.op) {
      case 'get':
        return ledger.get(...msg.args);
      case 'doneByName':
        return ledger.doneByName(...msg.args);
      case 'doneByContent':
        return ledger.doneByContent(...msg.args);
      case 'prune':
        return ledger.prune(...msg.args);
      case 'history':
        return ledger.history(...msg.args);
      case 'flush':
        return ledger.flush();
      case 'take': {
        const [pass, destination, owner] = msg.args;
        const state = this.passes.get(pass);
        if (!state) throw new SluiceError('SLUICE_E_INTERNAL', `pass ${pass} has ended`);
        return state.claims.take(destination, owner);
      }
    }
  }
}
