/**
 * The plugin driver: the only caller of plugin hooks. It creates every instance, reads the
 * fields the runtime owns from plugin configs once (typed, with their defaults), stamps every
 * plugin error with pipeline, step, plugin and item exactly once, and asks the plugin that
 * failed whether its error is retryable (Rollup's PluginDriver plays the same part).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { PipelineDefinition, PluginRef } from '../config/load.js';
import { sourceFoldersInSinks } from '../config/roots.js';
import {
  attributeStreamErrors,
  type ErrorCode,
  type ErrorContext,
  isRetryableByDefault,
  SluiceError,
  type StreamOrigin,
  streamErrorOrigin,
  wrapPluginError,
} from '../errors.js';
import { compileMatcher, type ItemMatcher } from '../item-match.js';
import type { Logger } from '../observe/logger.js';
import type {
  DestinationStat,
  Item,
  PathVersion,
  PluginContext,
  ReservedFile,
  SinkCommit,
  SinkInstance,
  SinkWriteRequest,
  SourceInstance,
  StepContext,
  StepInstance,
  StepOutput,
  SummaryFigure,
} from '../plugin-api.js';
import { adoptChecked, type CheckedInstance, releaseChecked } from './checked-instances.js';
import { countingSink } from './dry-run.js';
import { type SinkFields, type SourceFields, sinkFields, sourceFields } from './fields.js';

/** A source and the fields of its config the runtime enforces. */
export interface SourceRuntime extends SourceFields {
  ref: PluginRef;
  name: string;
  instance: SourceInstance;
}

/** A sink and the fields of its config the runtime enforces. */
export interface SinkRuntime extends SinkFields {
  ref: PluginRef;
  instance: SinkInstance;
}

export interface StepRuntime {
  ref: PluginRef;
  instance: StepInstance;
  ctx: StepContext;
  /** The step's `when`: items it does not match pass the step untouched. */
  when?: ItemMatcher;
}

export interface DriverOptions {
  log: Logger;
  /** A dry run creates no sink plugin: every sink is a counting one, and there is no dead letter. */
  dryRun: boolean;
  tempRoot: string;
  /** Aborted when the pipeline stops (every plugin's `ctx.signal`). */
  signal: AbortSignal;
  /** Figures steps report outside an item (per-item ones go through the attempt). */
  report: (figure: SummaryFigure) => void;
}

export class PluginDriver {
  readonly sources: SourceRuntime[] = [];
  readonly steps: StepRuntime[] = [];
  readonly sinks: SinkRuntime[] = [];
  deadLetter: SinkRuntime | undefined;
  /** True when a step changes bytes (then bytes in and out are counted apart). */
  hasByteSteps = false;
  /** Per sink index: folders under the sink's root where a source lists (never a destination). */
  readonly sourceFolders: Map<number, string[]>;
  private readonly companionChecks: Array<(path: string) => boolean> = [];
  /** Every instance by step id: the plugin an error names is asked whether to retry. */
  private readonly byStep = new Map<string, { isRetryable?(err: unknown): boolean | undefined }>();
  private starting: Promise<void> | undefined;
  /** Instances the start check made and this driver took (their temp folders are ours to remove). */
  private readonly adopted: CheckedInstance[] = [];

  constructor(
    private readonly def: PipelineDefinition,
    private readonly options: DriverOptions,
  ) {
    this.sourceFolders = sourceFoldersInSinks(def);
  }

  /** Creates every plugin instance once; concurrent callers share one start. */
  start(): Promise<void> {
    this.starting ??= this.createInstances();
    return this.starting;
  }

  private async createInstances(): Promise<void> {
    for (const ref of this.def.sources) {
      const instance = await this.create<SourceInstance>(ref);
      const fields = sourceFields(ref);
      if (fields.afterSuccess === 'delete' && !instance.remove)
        throw this.unsupported(ref, 'after_success: delete');
      if (typeof fields.afterSuccess === 'object' && !instance.move)
        throw this.unsupported(ref, 'after_success: move_to');
      if (fields.ready && !instance.openPath) throw this.unsupported(ref, 'ready markers');
      // A watching listing never ends, so the second look `stable` needs never comes.
      if (fields.stable && ref.config.watch === true)
        throw this.unsupported(ref, '`stable` with `watch: true` (a watching source waits with `min_age`)');
      this.sources.push({ ref, name: ref.sourceName ?? ref.name, instance, ...fields });
    }
    for (const ref of this.def.steps) {
      const instance = await this.create<StepInstance>(ref);
      const when = ref.when ? compileMatcher(ref.when, `${ref.jsonPath}/when`).match : undefined;
      this.steps.push({ ref, instance, ctx: this.stepContext(ref), ...(when ? { when } : {}) });
      if (instance.isCompanion) this.companionChecks.push(instance.isCompanion.bind(instance));
      if (ref.plugin.kind !== 'step') this.hasByteSteps = true;
    }
    for (const ref of this.def.sinks) this.sinks.push(await this.sinkRuntime(ref));
    if (this.def.onError && !this.options.dryRun) this.deadLetter = await this.sinkRuntime(this.def.onError);
  }

  private pluginContext(ref: PluginRef): PluginContext {
    return {
      pipeline: this.def.name,
      stepId: ref.stepId,
      log: this.options.log.child({ step: ref.stepId }),
      tempDir: join(this.options.tempRoot, ref.stepId.replace(/[^A-Za-z0-9_.-]/g, '_')),
      stateDir: this.def.stateDir,
      baseDir: this.def.baseDir,
      signal: this.options.signal,
    };
  }

  private async create<T extends { isRetryable?(err: unknown): boolean | undefined }>(
    ref: PluginRef,
  ): Promise<T> {
    // The start check's instance of this very block (same definition), when it kept one: its
    // login is the run's (checked-instances.ts).
    const checked = adoptChecked(this.def, ref, this.options.signal);
    if (checked) {
      this.adopted.push(checked);
      this.byStep.set(ref.stepId, checked.instance as T);
      return checked.instance as T;
    }
    const ctx = this.pluginContext(ref);
    await mkdir(ctx.tempDir, { recursive: true });
    let instance: T;
    try {
      instance = (await ref.plugin.create(ref.config as never, ctx)) as unknown as T;
    } catch (err) {
      throw wrapPluginError(err, this.where(ref), 'SLUICE_E_CONFIG');
    }
    this.byStep.set(ref.stepId, instance);
    return instance;
  }

  private async sinkRuntime(ref: PluginRef): Promise<SinkRuntime> {
    const instance = this.options.dryRun ? countingSink(ref) : await this.create<SinkInstance>(ref);
    return { ref, instance, ...sinkFields(ref) };
  }

  private stepContext(ref: PluginRef): StepContext {
    return {
      ...this.pluginContext(ref),
      openSibling: async (item: Item, name: string, signal?: AbortSignal) => {
        const source = this.sources.find((s) => s.name === item.source);
        if (!source) return null;
        return this.openPath(source, siblingPath(item, name), signal, item.root);
      },
      report: this.options.report,
    };
  }

  private unsupported(ref: PluginRef, what: string): SluiceError {
    return new SluiceError('SLUICE_E_CONFIG', `the ${ref.name} source does not support ${what}`, {
      context: this.where(ref),
    });
  }

  /** Where an error of `ref` happened, for its context. */
  where(ref: PluginRef, item?: string): ErrorContext {
    return {
      pipeline: this.def.name,
      step: ref.stepId,
      plugin: ref.name,
      ...(item !== undefined ? { item } : {}),
    };
  }

  source(name: string): SourceRuntime {
    const source = this.sources.find((s) => s.name === name);
    if (!source)
      throw new SluiceError('SLUICE_E_CONFIG', `pipeline ${this.def.name} has no source named "${name}"`);
    return source;
  }

  /** True for paths a step consumes as companions of another file (never items of their own). */
  isCompanion(path: string): boolean {
    return this.companionChecks.some((check) => check(path));
  }

  /**
   * The retry verdict for an error: its own `retryable` when set, else the plugin the error
   * names (the step that failed knows its errors best), else the default rules. Asking the
   * first plugin with an opinion instead let an SFTP source, whose classifier always answers,
   * decide for a sink's errors.
   */
  isRetryable(err: SluiceError): boolean {
    if (err.retryable !== undefined) return err.retryable;
    const verdict = err.context.step
      ? this.byStep.get(err.context.step)?.isRetryable?.(err.cause)
      : undefined;
    return verdict ?? isRetryableByDefault(err);
  }

  /* ------------------------------------------------------------- hooks, errors stamped */

  list(source: SourceRuntime, signal: AbortSignal): AsyncIterable<Item> {
    return source.instance.list(signal);
  }

  async process(step: StepRuntime, item: Item, ctx: StepContext): Promise<StepOutput> {
    try {
      return await step.instance.process(item, ctx);
    } catch (err) {
      throw located(err, this.where(step.ref, label(item)));
    }
  }

  readAll(source: SourceRuntime, item: Item, signal: AbortSignal): Promise<Buffer> {
    return this.sourceHook(source, item, () => source.instance.readAll!(item, signal));
  }

  /** The listed file, opened for a child process to read itself (`SourceInstance.openFile`). */
  openFile(source: SourceRuntime, item: Item, signal?: AbortSignal) {
    return this.sourceHook(
      source,
      item,
      async () => (await source.instance.openFile?.(item, signal)) ?? null,
    );
  }

  openPath(
    source: SourceRuntime,
    path: string,
    signal?: AbortSignal,
    root?: string,
    version?: PathVersion,
  ): Promise<Readable | null> {
    if (!source.instance.openPath) return Promise.resolve(null);
    return this.sourceHook(source, { source: source.name, path }, () =>
      source.instance.openPath!(path, signal, root, version),
    );
  }

  /** after_success on a listed item (delete / move_to), version-checked by the source. */
  tidy(source: SourceRuntime, item: Item): Promise<void> {
    const action = source.afterSuccess;
    return this.sourceHook(source, item, async () => {
      if (action === 'delete') await source.instance.remove!(item);
      else if (typeof action === 'object') await source.instance.move!(item, action.move_to);
    });
  }

  write(sink: SinkRuntime, item: string, req: SinkWriteRequest): Promise<SinkCommit> {
    return this.sinkHook(sink, item, () => sink.instance.write(req));
  }

  writeBuffer(
    sink: SinkRuntime,
    item: string,
    req: Parameters<NonNullable<SinkInstance['writeBuffer']>>[0],
  ): Promise<SinkCommit> {
    return this.sinkHook(sink, item, () => sink.instance.writeBuffer!(req));
  }

  copy(
    sink: SinkRuntime,
    item: Item,
    destination: string,
    signal: AbortSignal,
    reserve?: (destination: string) => Promise<void>,
  ): Promise<SinkCommit | null> {
    return this.sinkHook(sink, label(item), () => sink.instance.copy!(item, destination, signal, reserve));
  }

  /**
   * A temp file `sink` reserved for one item (`SinkInstance.reserveFile`); its commit and abort
   * fail as the sink's, like every other call.
   */
  async reserveFile(
    sink: SinkRuntime,
    item: string,
    req: Parameters<NonNullable<SinkInstance['reserveFile']>>[0],
  ): Promise<ReservedFile> {
    const file = await this.sinkHook(sink, item, () => sink.instance.reserveFile!(req));
    return {
      fd: file.fd,
      commit: () => this.sinkHook(sink, item, () => file.commit()),
      abort: () => this.sinkHook(sink, item, () => file.abort()),
    };
  }

  /** What is at `destination` of `sink` now (the destination pre-check), null when nothing. */
  stat(
    sink: SinkRuntime,
    item: string,
    destination: string,
    signal: AbortSignal,
  ): Promise<DestinationStat | null> {
    return this.sinkHook(sink, item, () => sink.instance.stat!(destination, signal));
  }

  readBack(sink: SinkRuntime, destination: string, signal: AbortSignal): Promise<Readable> {
    return this.sinkHook(sink, destination, () => sink.instance.readBack!(destination, signal));
  }

  /** Removes what an attempt committed at `destination` (never throws past the caller's choice). */
  removeAt(sink: SinkRuntime, destination: string): Promise<void> {
    return this.sinkHook(sink, destination, async () => sink.instance.remove?.(destination));
  }

  private async sourceHook<T>(
    source: SourceRuntime,
    item: Pick<Item, 'source' | 'path'>,
    fn: () => Promise<T>,
  ): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw wrapPluginError(err, this.where(source.ref, label(item)), 'SLUICE_E_SOURCE');
    }
  }

  private async sinkHook<T>(sink: SinkRuntime, item: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      // A sink fails too when the bytes it reads fail: `located` names the step that made them.
      throw located(err, this.where(sink.ref, item), 'SLUICE_E_SINK');
    }
  }

  async close(): Promise<void> {
    const all = [
      ...this.sources.map((s) => s.instance),
      ...this.steps.map((s) => s.instance),
      ...this.sinks.map((s) => s.instance),
      ...(this.deadLetter ? [this.deadLetter.instance] : []),
    ];
    await Promise.allSettled(all.map((i) => i.close?.()));
    // Taken from the check but not in use (the start failed after it): closed too.
    const open = new Set<unknown>(all);
    await Promise.allSettled(
      this.adopted.map((c) => releaseChecked(c, this.options.log, !open.has(c.instance))),
    );
  }
}

/** `source:path`, how an item is named in messages. */
export function label(item: Pick<Item, 'source' | 'path'>): string {
  return `${item.source}:${item.path}`;
}

/** Source path of the file `name` in the folder of `item` (`in/x.csv` + `x.csv.sha256`). */
export function siblingPath(item: Pick<Item, 'path'>, name: string): string {
  const dir = item.path.includes('/') ? item.path.slice(0, item.path.lastIndexOf('/') + 1) : '';
  return dir + name;
}

/** An `open` whose stream errors, and whose own failures, are attributed to `origin`. */
export function attributedOpen(open: Item['open'], origin: StreamOrigin): Item['open'] {
  return async (signal?: AbortSignal) => {
    let stream: Readable;
    try {
      stream = await open(signal);
    } catch (err) {
      throw located(err, origin.context, origin.code);
    }
    attributeStreamErrors(stream, origin);
    return stream;
  };
}

/**
 * Wraps `err` with where it happened: the step or source whose stream emitted it when a
 * stream did (the sink consuming the bytes only passes it on), else `fallback`.
 */
export function located(
  err: unknown,
  fallback: ErrorContext,
  code: ErrorCode = 'SLUICE_E_PLUGIN',
): SluiceError {
  const fromStream = err instanceof SluiceError && err.context.step ? undefined : streamErrorOrigin(err);
  if (fromStream) return wrapPluginError(fromStream.error, fromStream.origin.context, fromStream.origin.code);
  return wrapPluginError(err, fallback, code);
}
