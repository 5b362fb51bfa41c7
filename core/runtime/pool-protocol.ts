/**
 * What the main thread and a pool thread (runtime/pool.ts, runtime/pool-thread.ts) say to each
 * other, and the pipeline definition in a form a message can carry.
 */
import type { PipelineDefinition } from '../config/load.js';
import { SluiceError } from '../errors.js';
import type { LedgerState, LedgerUpdate } from '../ledger/ledger.js';
import type { RunEvents, RunSummary } from '../observe/run-summary.js';
import type { ItemIdentity, Plugin } from '../plugin-api.js';
import type { PluginRegistry, PluginRole } from '../registry.js';
import type { ItemDescription } from './described.js';

/** An error as a message carries it: a SluiceError comes back as one, with its code. */
export interface WireError {
  code: SluiceError['code'];
  message: string;
  retryable?: boolean;
  context?: SluiceError['context'];
}

export type LedgerCall =
  | { op: 'get'; args: [pipeline: string, id: ItemIdentity] }
  | { op: 'doneByName'; args: [pipeline: string, source: string, path: string] }
  | { op: 'doneByContent'; args: [pipeline: string, sha256: string] }
  | { op: 'prune'; args: [pipeline: string, before: Date, limit: number] }
  | { op: 'history'; args: [pipeline: string, options?: { limit?: number; state?: LedgerState }] }
  | { op: 'flush'; args: [] };

export type MainCall = LedgerCall | { op: 'take'; args: [pass: number, destination: string, owner: string] };

export interface ThreadInit {
  t: 'init';
  def: unknown;
  force: boolean;
  trackProgress: boolean;
  secrets: string[];
  flushBeforeSourceChange: boolean;
  /** The levels the main thread's logger writes: a thread sends no record it would drop. */
  logLevels: Array<'debug' | 'info' | 'warn' | 'error'>;
}

export type ToThread =
  | ThreadInit
  | { t: 'item'; id: number; pass: number; desc: ItemDescription }
  | { t: 'reply'; id: number; value?: unknown; error?: WireError }
  | { t: 'end-pass'; pass: number }
  | { t: 'abort' }
  | { t: 'close' };

export interface ThreadProgress {
  source: string;
  path: string;
  size?: number;
  bytesRead: number;
  ms: number;
}

export type FromThread =
  | { t: 'ready'; tempRoot: string }
  | { t: 'init-failed'; error: WireError }
  | ({ t: 'call'; id: number } & MainCall)
  | { t: 'record'; pipeline: string; id: ItemIdentity; update: LedgerUpdate }
  | { t: 'release'; pass: number; destinations: string[] }
  | { t: 'release-owner'; pass: number; owner: string }
  | { t: 'event'; name: keyof RunEvents; payload: unknown }
  | {
      t: 'log';
      level: 'debug' | 'info' | 'warn' | 'error';
      bindings: Record<string, unknown>;
      obj: unknown;
      msg?: string;
    }
  /** An item has ended: what it counted (its share of the pass's summary). */
  | { t: 'done'; id: number; summary?: RunSummary; error?: WireError }
  | { t: 'progress'; items: ThreadProgress[] };

export function toWire(err: unknown): WireError {
  if (err instanceof SluiceError)
    return { code: err.code, message: err.message, retryable: err.retryable, context: { ...err.context } };
  return { code: 'SLUICE_E_INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

export function fromWire(wire: WireError): SluiceError {
  return new SluiceError(wire.code, wire.message, { retryable: wire.retryable, context: wire.context });
}

const PLUGIN_MARK = '__sluicePlugin';

function isPluginRef(value: Record<string, unknown>): boolean {
  return (
    typeof value.role === 'string' &&
    typeof value.name === 'string' &&
    typeof value.plugin === 'object' &&
    value.plugin !== null
  );
}

function isPlain(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * The definition a pool thread needs, without functions: each plugin reference keeps its role
 * and name (the thread finds the plugin in its own registry); what only the main thread uses
 * (trigger, alerts, expect, the report) is left out.
 */
export function portableDefinition(def: PipelineDefinition, concurrency: number): unknown {
  const { trigger: _t, alerts: _a, expect: _e, report: _r, ...rest } = def;
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip);
    if (!isPlain(value)) return value;
    const out: Record<string, unknown> = {};
    const ref = isPluginRef(value);
    for (const [key, v] of Object.entries(value)) {
      if (ref && key === 'plugin') out[PLUGIN_MARK] = true;
      else if (typeof v !== 'function') out[key] = strip(v);
    }
    return out;
  };
  const portable = strip(rest) as Record<string, unknown>;
  portable.policy = { ...def.policy, concurrency, threads: 1 };
  return portable;
}

/** The definition again, each plugin reference given the plugin of `registry`. */
export function restoreDefinition(data: unknown, registry: PluginRegistry): PipelineDefinition {
  const restore = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(restore);
    if (!isPlain(value)) return value;
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) if (key !== PLUGIN_MARK) out[key] = restore(v);
    if (value[PLUGIN_MARK] === true) {
      const plugin: Plugin | undefined = registry.get(out.role as PluginRole, out.name as string);
      if (!plugin)
        throw new SluiceError(
          'SLUICE_E_PLUGIN_LOAD',
          `a pool thread has no ${out.role} plugin "${out.name}"`,
        );
      out.plugin = plugin;
    }
    return out;
  };
  return restore(data) as PipelineDefinition;
}

/**
 * Messages to one thread, sent in batches: what an event-loop turn produces goes as one
 * message (a few per item otherwise: its ledger reads and writes, claims, events), in order.
 */
export class Outbox<T> {
  private queue: T[] = [];
  private scheduled = false;

  constructor(private readonly post: (batch: T[]) => void) {}

  send(msg: T): void {
    this.queue.push(msg);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Sends what is queued now. */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.post(batch);
  }
}
