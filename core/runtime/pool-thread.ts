/**
 * The pool thread's side (runtime/pool.ts): a runner of its own — its own plugin instances and
 * connections — that runs the items the main thread sends, with the main thread's ledger and
 * claim books behind a message port.
 */
import type { MessagePort } from 'node:worker_threads';
import type { SluiceError } from '../errors.js';
import type { Ledger, LedgerRecord } from '../ledger/ledger.js';
import type { Logger } from '../observe/logger.js';
import { redact, redactDeep, registerSecret } from '../observe/redact.js';
import type { RunEvents } from '../observe/run-summary.js';
import { loadPluginModule, type PluginRegistry } from '../registry.js';
import {
  type FromThread,
  fromWire,
  type MainCall,
  Outbox,
  restoreDefinition,
  type ThreadInit,
  type ToThread,
  toWire,
} from './pool-protocol.js';
import { PipelineRunner } from './runner.js';
import type { ClaimBook } from './stage.js';

const EVENTS: ReadonlyArray<keyof RunEvents> = [
  'item:start',
  'item:done',
  'item:skipped',
  'item:parked',
  'item:failed',
  'item:retry',
];

/** How often a thread tells the main thread what its items have read (with progress on). */
const PROGRESS_MS = 500;

export function servePoolThread(port: MessagePort, registry: PluginRegistry): void {
  const outbox = new Outbox<FromThread>((batch) => postBatch(port, batch));
  const send = (msg: FromThread) => outbox.send(msg);
  let nextCall = 1;
  const calls = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  const call = <T>(c: MainCall): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextCall++;
      calls.set(id, { resolve: resolve as (v: unknown) => void, reject });
      send({ t: 'call', id, ...c } as FromThread);
    });

  let runner: PipelineRunner | undefined;
  let progressTimer: NodeJS.Timeout | undefined;
  // One key per pass of the main thread: its claim book, its once-a-pass work (pruning).
  const passKeys = new Map<number, object>();
  const passOf = new WeakMap<object, number>();
  const passKey = (pass: number): object => {
    let key = passKeys.get(pass);
    if (!key) {
      key = {};
      passKeys.set(pass, key);
      passOf.set(key, pass);
    }
    return key;
  };

  const init = async (msg: ThreadInit) => {
    for (const secret of msg.secrets) registerSecret(secret);
    // The `plugins:` modules the file named are loaded here again, then every reference resolved.
    const { pluginModules, baseDir } = msg.def as { pluginModules?: string[]; baseDir: string };
    const extra = [];
    for (const spec of pluginModules ?? [])
      for (const plugin of await loadPluginModule(spec, baseDir)) extra.push({ plugin, origin: spec });
    const def = restoreDefinition(msg.def, extra.length > 0 ? registry.extend(extra) : registry);
    const ledger = portLedger(call, send, msg.flushBeforeSourceChange);
    runner = new PipelineRunner(def, {
      ledger,
      log: forwardingLogger(send, {}, new Set(msg.logLevels)),
      force: msg.force,
      trackProgress: msg.trackProgress,
      claims: (key) => remoteClaims(call, send, passOf.get(key) ?? 0),
    });
    for (const name of EVENTS)
      runner.on(name, ((payload: unknown) => send({ t: 'event', name, payload })) as never);
    await runner.start();
    if (msg.trackProgress) {
      // Sent while items are in flight, and once when none are left.
      let reported = false;
      progressTimer = setInterval(() => {
        const busy = runner !== undefined && runner.activeItems > 0;
        if (busy) send({ t: 'progress', items: (runner as PipelineRunner).inFlightItems });
        else if (reported) send({ t: 'progress', items: [] });
        reported = busy;
      }, PROGRESS_MS);
      progressTimer.unref();
    }
  };

  let initialised: Promise<void> = Promise.resolve();
  port.on('message', (batch: ToThread[]) => {
    for (const msg of batch) receive(msg);
  });
  const receive = (msg: ToThread) => {
    switch (msg.t) {
      case 'init':
        initialised = init(msg).then(
          () => send({ t: 'ready', tempRoot: (runner as PipelineRunner).tempRoot }),
          (err) => send({ t: 'init-failed', error: toWire(err) }),
        );
        break;
      case 'reply': {
        const pending = calls.get(msg.id);
        calls.delete(msg.id);
        if (msg.error) pending?.reject(fromWire(msg.error));
        else pending?.resolve(msg.value);
        break;
      }
      case 'item': {
        // Each item is counted apart and its count sent back with it: what a thread counted is
        // never lost with the thread.
        const r = runner as PipelineRunner;
        const summary = r.newSummary();
        r.reviveItem(msg.desc)
          .then((listed) => r.processListed(listed, summary, {}, passKey(msg.pass)))
          .then(
            () => send({ t: 'done', id: msg.id, summary }),
            (err) => send({ t: 'done', id: msg.id, error: toWire(err) }),
          );
        break;
      }
      case 'end-pass':
        passKeys.delete(msg.pass);
        break;
      case 'abort':
        runner?.abortNow();
        break;
      case 'close':
        // A thread still starting finishes first, so that what it opened is closed too; then
        // the thread ends, whatever a plugin left open.
        if (progressTimer) clearInterval(progressTimer);
        initialised
          .then(() => runner?.close())
          .catch(() => undefined)
          .finally(() => {
            outbox.flush();
            process.exit(0);
          });
        break;
    }
  };
}

/** The main thread's ledger: reads and flushes are asked, writes are sent in order. */
function portLedger(
  call: <T>(c: MainCall) => Promise<T>,
  send: (msg: FromThread) => void,
  flushBeforeSourceChange: boolean,
): Ledger {
  return {
    get: (...args) => call<LedgerRecord | undefined>({ op: 'get', args }),
    record: (pipeline, id, update) => send({ t: 'record', pipeline, id, update }),
    doneByName: (...args) => call<LedgerRecord | undefined>({ op: 'doneByName', args }),
    doneByContent: (...args) => call<LedgerRecord | undefined>({ op: 'doneByContent', args }),
    prune: (...args) => call<number>({ op: 'prune', args }),
    history: (...args) => call<LedgerRecord[]>({ op: 'history', args }),
    flush: () => call<void>({ op: 'flush', args: [] }),
    close: async () => undefined,
    flushBeforeSourceChange,
  };
}

/** The claim book of pass `pass`, kept by the main thread. */
function remoteClaims(
  call: <T>(c: MainCall) => Promise<T>,
  send: (msg: FromThread) => void,
  pass: number,
): ClaimBook {
  return {
    take: (destination, owner) => call<string | undefined>({ op: 'take', args: [pass, destination, owner] }),
    release: (destinations) => send({ t: 'release', pass, destinations: [...destinations] }),
    releaseOwner: (owner) => send({ t: 'release-owner', pass, owner }),
  };
}

/** A logger whose records go to the main thread's logger (secrets masked here first). */
function forwardingLogger(
  send: (msg: FromThread) => void,
  bindings: Record<string, unknown>,
  levels: ReadonlySet<string>,
): Logger {
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (obj: object | string, msg?: string): void => {
      if (!levels.has(level)) return;
      send({
        t: 'log',
        level,
        bindings,
        obj: redactDeep(obj),
        msg: msg === undefined ? undefined : redact(msg),
      });
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => forwardingLogger(send, { ...bindings, ...more }, levels),
    // Lines for a level main drops are not built at all (logsAt).
    isLevelEnabled: (level) => levels.has(level),
  } as Logger;
}

/**
 * Posts a batch; a log record holding something no message can carry (a function, a socket) is
 * sent as its JSON text instead, and the rest of the batch as it is.
 */
function postBatch(port: MessagePort, batch: FromThread[]): void {
  try {
    port.postMessage(batch);
  } catch {
    for (const msg of batch) {
      try {
        port.postMessage([msg]);
      } catch (err) {
        if (msg.t !== 'log') throw err;
        port.postMessage([{ ...msg, obj: JSON.parse(JSON.stringify(msg.obj, safeReplacer()) ?? 'null') }]);
      }
    }
  }
}

function safeReplacer() {
  const seen = new WeakSet();
  return (_key: string, value: unknown) => {
    if (typeof value === 'function') return undefined;
    if (value instanceof Error) return { message: value.message, code: (value as SluiceError).code };
    if (typeof value === 'object' && value !== null) {
      if (seen.has(value)) return undefined;
      seen.add(value);
    }
    return value;
  };
}
