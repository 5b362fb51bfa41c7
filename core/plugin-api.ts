/**
 * The plugin API: what a plugin declares once, and the contracts the runtime calls.
 * Everything a third-party plugin needs is re-exported from `core/sdk.ts`.
 */
import type { Readable } from 'node:stream';
import type { Static, TSchema } from '@sinclair/typebox';
import type { Logger } from './observe/logger.js';

export const PLUGIN_API_VERSION = 1;

export type PluginKind = 'source' | 'sink' | 'transform' | 'unpack' | 'step';

/**
 * One file moving through a pipeline. Items are immutable in spirit: steps return new items
 * (use `deriveItem`) rather than mutating the one they were given.
 */
export interface Item {
  /** Name of the source that listed the root of this item (`{source}` in templates). */
  readonly source: string;
  /** Relative POSIX path under the source root (or inside the archive, for unpacked entries). */
  readonly path: string;
  /** Size in bytes when known (unknown after most byte transforms). */
  readonly size?: number;
  readonly mtime?: Date;
  /** Backend version tag (S3/Azure etag, HTTP etag) when the source has one. */
  readonly etag?: string;
  /** Checksums known for these exact bytes, hex, keyed by algorithm (`sha256`, `md5`…). */
  readonly checksums: Readonly<Record<string, string>>;
  /** Free metadata that steps may read and write (`{meta.KEY}` in templates). */
  readonly meta: Readonly<Record<string, unknown>>;
  /** The date routing rules and `{date:…}` use (set by `segregate`; default: mtime). */
  readonly date?: Date;
  /** Relative destination path assigned by a routing step; the sink joins it to its root. */
  readonly destination?: string;
  /** Named groups of the regex of the last step `when` that matched (`{match.NAME}` in templates). */
  readonly match?: Readonly<Record<string, string>>;
  /**
   * Where the untouched bytes live, for server-side copies. Set by sources; cleared by any step
   * that changes bytes. A sink may use it to copy without downloading.
   */
  readonly origin?: ItemOrigin;
  /**
   * Returns a fresh Readable of the item's bytes. For a listed item every call re-reads the
   * source; for an unpacked entry it may only be called once (the archive is read sequentially).
   */
  open(signal?: AbortSignal): Promise<Readable>;
  /**
   * Set by a source for a listed entry it cannot represent safely or could not read (a name
   * that is not valid UTF-8 or holds control characters, an unreadable folder): the runtime
   * reports it as a failed item with this reason (`SLUICE_E_NAME`) and never opens, deletes
   * or moves it. `path` is then a display form only.
   */
  readonly rejected?: string;
  /**
   * For a source with several roots (`prefixes:` / `paths:`): the root this item was listed
   * under, as written in the config. With `match: first` an item under an earlier root hides
   * the same relative path under later ones; the summary counts items per root.
   */
  readonly root?: string;
  /**
   * Set by a source whose listed item's bytes are not at `path` (a file a crashed tidy-up set
   * aside, listed as the item it was): the relative path they are at. Opening the item by its
   * path (`openPath`) would read another file, so the runtime never re-opens such an item by
   * path elsewhere (a pool thread).
   */
  readonly storedAt?: string;
  /**
   * Set by a step whose bytes a child process writes itself (pgp_decrypt's gpg engine): writes
   * exactly the bytes `open()` would give into `fd` — a new, empty regular file opened for
   * reading and writing, at offset 0 — and resolves only once they are all written and checked
   * (exit code, integrity, signatures); rejects otherwise, and what it wrote is then discarded.
   * The runtime calls it instead of `open()` only when the item goes to one sink that hands
   * out files (`SinkInstance.reserveFile`). It describes these bytes only: `deriveItem` with a
   * new `open` drops it, and the runtime drops it from any step output whose `open` changed.
   */
  writeTo?(fd: number, signal?: AbortSignal): Promise<void>;
}

/**
 * A listed local file opened for a child process to read itself (`StepContext.openLocal`):
 * pass `fd` as the child's stdin and never read it in this process (the offset is shared).
 */
export interface LocalFile {
  /** Open for reading, at offset 0. */
  readonly fd: number;
  /** The size the source listed. */
  readonly size: number;
  /**
   * Call once the reader is done, before the bytes it made count: throws (SLUICE_E_CHANGED)
   * unless the file still has the listed size and the reader's offset is at its end — it read
   * exactly the listed bytes. Replaces the listed-size check of the stream `open()` gives.
   * `readerFailed`: the reader failed on its own (a child process exited non-zero, e.g. on a
   * corrupt message) — only the file's size is checked, since a reader that gave up stops short
   * of the end, and its own verdict is the one to report.
   */
  finish(options?: { readerFailed?: boolean }): Promise<void>;
  /** Closes `fd` (again: nothing). */
  close(): Promise<void>;
}

export interface ItemOrigin {
  /** Backend kind, e.g. `s3`, `azure_blob`, `local`. */
  readonly kind: string;
  /** Opaque identity of the endpoint/account; a sink copies only when it matches its own. */
  readonly endpoint: string;
  /** Backend-specific location, e.g. `{ bucket, key }`. */
  readonly location: Readonly<Record<string, string>>;
}

/** The identity the ledger uses: a listed item is "already done" when this was finalized. */
export interface ItemIdentity {
  source: string;
  path: string;
  /** size + mtime, or etag: a changed file is a new version and is processed again. */
  version: string;
}

export interface PluginContext {
  /** Pipeline name. */
  readonly pipeline: string;
  /** The step id for messages, e.g. `steps[2].decompress` or `source.sftp`. */
  readonly stepId: string;
  readonly log: Logger;
  /** Folder the plugin may use for spooling; removed when the pipeline stops. */
  readonly tempDir: string;
  /** Folder of the pipeline's durable state (ledger…). */
  readonly stateDir: string;
  /** Folder of the pipeline file: relative paths in config resolve against it. */
  readonly baseDir: string;
  /** Aborted when the pipeline stops. */
  readonly signal: AbortSignal;
}

export interface StepContext extends PluginContext {
  /**
   * Opens a file next to `item` at its source (e.g. `x.csv.gpg.sig` beside `x.csv.gpg`), or
   * returns null when there is no such file. Only for items listed by a source.
   */
  openSibling(item: Item, name: string, signal?: AbortSignal): Promise<Readable | null>;
  /** Records a per-item figure in the run summary (e.g. bytes before/after compression). */
  report(figure: SummaryFigure): void;
  /**
   * Declares the sibling `name` of `item` (as for `openSibling`) a companion of this item alone,
   * e.g. `x.csv.sha256` or `x.gpg.sig`: once the item is finalized, the source's
   * `after_success` (delete / move_to) is applied to the companion too, if it exists. Only
   * paths the step's `isCompanion` matches follow (they are never items of their own). Never
   * declare a file shared by several items (a `SHA256SUMS` listing): it would go with the
   * first of them. Optional for API compatibility; the runtime always provides it.
   */
  reportCompanion?(item: Item, name: string): void;
  /**
   * The listed local file behind `item`, opened for a child process to read itself (see
   * `LocalFile`), or null when its bytes are not a listed local file's as listed (a step before
   * changed them, another source, a platform where the read offset cannot be checked): then
   * use `item.open()`. Optional; the runtime provides it.
   */
  openLocal?(item: Item, signal?: AbortSignal): Promise<LocalFile | null>;
}

export interface SummaryFigure {
  kind: 'compression';
  bytesIn: number;
  bytesOut: number;
}

/* --------------------------------------------------------------------------- pre-flight */

/** What `check` is asked to prove (`sluice check`, and the cheap part at the start of a run). */
export interface PreflightRequest {
  /**
   * `cheap`: connect and log in (host key, credentials) and prove the root (bucket, container,
   * folder) exists — one or two requests, done by `run`/`watch` before any file is touched.
   * `full`: also list the root, and for sinks write a probe object under a temporary name
   * (`.sluice-check-<random>`) and remove it again.
   */
  readonly depth: 'cheap' | 'full';
  readonly signal: AbortSignal;
}

/**
 * The outcome of a check that passed: one short line of what was proven, e.g.
 * `logged in to sftp://alice@host:22, /outgoing listed (12 entries)`. A check that fails throws a
 * SluiceError whose message says what failed and why (`container "drops" does not exist`,
 * `host key changed: expected SHA256:…, got SHA256:…`, `login refused for alice`), with a hint.
 */
export interface PreflightResult {
  readonly detail: string;
}

/* ----------------------------------------------------------------------------- sources */

/** The version of a listed item `openPath` is asked to read (see `SourceInstance.pinsVersions`). */
export interface PathVersion {
  readonly etag?: string;
}

export interface SourceInstance {
  /** Lists items lazily; pagination happens inside. Stops when `signal` aborts. */
  list(signal: AbortSignal): AsyncIterable<Item>;
  /**
   * Reads a small listed item whole (fast path: the runtime uses it for unchanged items of a
   * known size up to 1 MiB, saving the per-file cost of streams at thousands of files a second).
   */
  readAll?(item: Item, signal?: AbortSignal): Promise<Buffer>;
  /**
   * Opens another file at this source by relative path; null when it does not exist. `root` (an
   * item's `Item.root`) keeps a multi-root source to that root; without it, the roots in order.
   * `version.etag` (a listed item's `etag`, when the runtime re-opens an item elsewhere: a pool
   * thread, a cluster worker): a source that sets `pinsVersions` reads only that version and
   * fails, as its listed item's `open` would, when the object was replaced since.
   */
  openPath?(
    path: string,
    signal?: AbortSignal,
    root?: string,
    version?: PathVersion,
  ): Promise<Readable | null>;
  /**
   * `openPath` honours `version.etag` with a conditional read (S3/Azure `If-Match`): an item
   * pinned to its listed etag may then be re-opened by path on a pool thread or a cluster
   * worker without reading a replacement under the listed identity.
   */
  readonly pinsVersions?: boolean;
  /**
   * Deletes a listed item (after_success: delete) — only the version that was listed. Where the
   * backend has conditional requests (S3/Azure `If-Match` on the etag) use them; on file systems
   * rename the file aside, check size + mtime against the item, then delete (or rename it back).
   * When the file at the path is no longer the listed version, leave it and throw a SluiceError
   * `SLUICE_E_CHANGED`: the runtime keeps the delivered version finalized and the new one is
   * listed next pass. A file already gone is not an error.
   */
  remove?(item: Item): Promise<void>;
  /**
   * Moves a listed item into folder `toDir` keeping its relative path (after_success: move_to),
   * with the same version check as `remove`. Across file systems (EXDEV) copy, verify, delete.
   */
  move?(item: Item, toDir: string): Promise<void>;
  /** Classifies a thrown error for the retry policy; undefined = use the default rules. */
  isRetryable?(err: unknown): boolean | undefined;
  /** Pre-flight: see `PreflightRequest`. Never changes anything at the source. */
  check?(req: PreflightRequest): Promise<PreflightResult>;
  /**
   * A local file system source: opens a listed item's file for reading, as `open` reads it
   * (same checks: no link followed, inside the root), for a child process to read itself
   * (`StepContext.openLocal`); null when it is not a regular file.
   */
  openFile?(item: Item, signal?: AbortSignal): Promise<{ fd: number; close(): Promise<void> } | null>;
  close?(): Promise<void>;
}

/* ------------------------------------------------------------------------------- sinks */

/** What a sink knows about an object already at a destination (`SinkInstance.stat`). */
export interface DestinationStat {
  readonly size: number;
  /**
   * The modification time the sink keeps for the object: the source's mtime it stored
   * (`preserve_mtime`, e.g. S3/Azure metadata `mtime`, a file's mtime), else the backend's own.
   */
  readonly mtime?: Date;
  /** Checksums the backend holds for the stored bytes, hex by algorithm (`md5`, `sha256`). */
  readonly checksums?: Readonly<Record<string, string>>;
}

export interface SinkWriteRequest {
  readonly item: Item;
  /** Relative destination (already validated not to escape the root). */
  readonly destination: string;
  /** The bytes. Errors on this stream mean: abort, leave nothing at the destination. */
  readonly body: Readable;
  /** Known size of `body`, if any (lets a sink pick single-part uploads). */
  readonly size?: number;
  /** sha256 of the bytes when known before writing (e.g. for metadata templates). */
  readonly sha256?: string;
  /** md5 of the bytes when known before writing (`{md5}` in metadata templates: `needsDigests`). */
  readonly md5?: string;
  readonly signal: AbortSignal;
  /**
   * The sink awaits this right before it makes the bytes visible under a name (before the
   * rename, link or final commit; with `if_exists: rename` for each candidate name, the plain
   * one included). The runtime fences there (a cluster worker that lost its job stops: the call
   * throws) and, with `rename`, records the name durably, so a redo after a crash finds the copy
   * an earlier attempt committed instead of writing a twin. Optional for API compatibility;
   * the runtime always provides it.
   */
  reserve?(destination: string): Promise<void>;
}

/**
 * A temp file a sink reserved for one item (`SinkInstance.reserveFile`): the bytes are written
 * into `fd` by someone else (a child process), then `commit` places them exactly as `write`
 * places a finished stream (mtime, fsync, `if_exists`, `reserve`, atomic rename), or `abort`
 * removes the temp file. One of the two is called, once; both close `fd`.
 */
export interface ReservedFile {
  /** A new, empty regular file, open for reading and writing, at offset 0. */
  readonly fd: number;
  commit(): Promise<SinkCommit>;
  abort(): Promise<void>;
}

export interface SinkCommit {
  /** Where the object landed, for logs and the ledger (e.g. `s3://bucket/key`). */
  readonly location: string;
  /**
   * The relative destination the bytes are at when it differs from the one asked for
   * (`if_exists: rename` → `x (1).csv`). The runtime removes exactly this on a failed
   * verification and records it.
   */
  readonly destination?: string;
  /**
   * Size the backend reports for what it stored (the runtime compares it). A commit without a
   * size fails `verify: size` (only `verify: none` accepts a sink that cannot say what it
   * stored). For a skip: the size of the object that was already there.
   */
  readonly size?: number;
  /** sha256 the backend reports or recomputed (the runtime compares it when present). */
  readonly sha256?: string;
  /**
   * The modification time the backend reports it stored, read back after the commit (with
   * `preserve_mtime`, the default, it should be the item's `mtime`). When both this and the
   * item's mtime are known the runtime compares them at the sink's `mtimePrecisionMs`, and a
   * mismatch fails verification like a size mismatch. Undefined when the sink keeps no mtime
   * (`preserve_mtime: false`) or cannot read it back.
   */
  readonly mtime?: Date;
  /**
   * True when `if_exists: skip` (or `fail` finding the same bytes) left an existing object in
   * place. The runtime counts a skip as delivered only when the existing object holds the same
   * bytes (it compares `sha256` when given, else re-reads it with `readBack`).
   */
  readonly skipped?: boolean;
}

export interface SinkInstance {
  /**
   * True when the sink needs the sha256 before it starts writing (e.g. metadata templates with
   * `{sha256}`): the runtime then hashes the bytes first and passes `SinkWriteRequest.sha256`.
   */
  readonly needsSha256?: boolean;
  /**
   * The digests the sink needs before it starts writing (`['md5']` for `{md5}` in metadata
   * templates): the runtime hashes the bytes first and passes them in the write request
   * (`sha256`, `md5`). `needsSha256: true` is the older spelling of `['sha256']`.
   */
  readonly needsDigests?: readonly ('sha256' | 'md5')[];
  /**
   * True when `SinkCommit.sha256` comes from the backend (a checksum the server computed):
   * the runtime then hashes while streaming to compare, even with `verify: size`.
   */
  readonly reportsSha256?: boolean;
  /**
   * Granularity of the mtimes this sink stores and reports, in ms (1000 for SFTP/FTP, which keep
   * whole seconds). The runtime truncates both sides to it before comparing. Default 1.
   */
  readonly mtimePrecisionMs?: number;
  /**
   * Consumes `body` completely and makes the object visible atomically, only after the stream
   * ended cleanly. On any error: nothing visible at the destination, temp data removed, reject.
   */
  write(req: SinkWriteRequest): Promise<SinkCommit>;
  /** Writes a small item held in memory, with the same atomicity as `write` (fast path). */
  writeBuffer?(req: Omit<SinkWriteRequest, 'body'> & { readonly data: Buffer }): Promise<SinkCommit>;
  /**
   * A temp file for the item's bytes, for a step that writes into a file itself
   * (`Item.writeTo`); same atomicity as `write`: nothing visible before `commit`. A sink on a
   * local file system only.
   */
  reserveFile?(req: Omit<SinkWriteRequest, 'body'>): Promise<ReservedFile>;
  /** Server-side copy of an untouched item; return null when not possible for this item. */
  copy?(
    item: Item,
    destination: string,
    signal: AbortSignal,
    /** As `SinkWriteRequest.reserve`: awaited right before the copy becomes visible under a name. */
    reserve?: (destination: string) => Promise<void>,
  ): Promise<SinkCommit | null>;
  /** Re-reads a committed object (for `verify: sha256`). */
  readBack?(destination: string, signal: AbortSignal): Promise<Readable>;
  /**
   * What is at `destination` now, or null when nothing is (one request: HEAD / stat). The
   * runtime asks before reading the source when `if_exists` is `skip` or `fail` and the item
   * reaches the sink unchanged, so an item already delivered is not downloaded again.
   */
  stat?(destination: string, signal: AbortSignal): Promise<DestinationStat | null>;
  /** Pre-flight: see `PreflightRequest`. A `full` check writes and removes only a probe. */
  check?(req: PreflightRequest): Promise<PreflightResult>;
  /**
   * Removes an object this attempt committed (verification failed, or a later entry of the
   * same archive failed): `destination` is the commit's own `destination` when it reported one.
   */
  remove?(destination: string): Promise<void>;
  isRetryable?(err: unknown): boolean | undefined;
  close?(): Promise<void>;
}

/* ------------------------------------------------------------------------------- steps */

/**
 * What a step returns for one item:
 * - an Item (possibly the same one) to pass on,
 * - null to drop it (filtered out: counted as skipped, finalized like a success),
 * - an array or async iterable of items (unpackers). For an async iterable each item's bytes
 *   must be consumed before the next is pulled; the runtime does exactly that.
 */
export type StepOutput = Item | null | Item[] | AsyncIterable<Item>;

export interface StepInstance {
  process(item: Item, ctx: StepContext): Promise<StepOutput> | StepOutput;
  /**
   * True for paths this step consumes as companions of another file (`x.sig`, `x.sha256`):
   * the runtime does not process them as items of their own.
   */
  isCompanion?(path: string): boolean;
  isRetryable?(err: unknown): boolean | undefined;
  close?(): Promise<void>;
}

/* ---------------------------------------------------------------------------- plugins */

export interface PluginExample {
  title: string;
  /** The YAML of the plugin's config (the value under the plugin name). */
  yaml: string;
}

interface PluginBase<K extends PluginKind, S extends TSchema, I> {
  /** snake_case name used in YAML. */
  readonly name: string;
  readonly kind: K;
  /** One line for `sluice plugins`. */
  readonly summary: string;
  /** Longer Markdown description (optional). */
  readonly description?: string;
  /** TypeBox schema of the config: JSON Schema for validation and the TypeScript type. */
  readonly config: S;
  readonly examples?: readonly PluginExample[];
  /** Plugin API version the plugin was written for (default: current). */
  readonly apiVersion?: number;
  /**
   * Static checks beyond the schema (regexes, templates, formats) that need no I/O; throw a
   * SluiceError with `context.jsonPath` relative to the plugin config. `sluice validate` runs
   * it. Item-level `step` plugins need not: their `create` is called at validation instead.
   */
  validate?(config: Static<S>): void;
  create(config: Static<S>, ctx: PluginContext): I | Promise<I>;
}

export type SourcePlugin<S extends TSchema = TSchema> = PluginBase<'source', S, SourceInstance>;
export type SinkPlugin<S extends TSchema = TSchema> = PluginBase<'sink', S, SinkInstance> & {
  /**
   * Whether the sink's `copy` would take `item` server-side (same endpoint, within limits),
   * judged from the config and the item alone, without a request. `plan` and `--dry-run`
   * create no sink: they count such an item from its listed size instead of reading its bytes.
   */
  copies?(config: Static<S>, item: Item): boolean;
};
export type StepPlugin<S extends TSchema = TSchema> = PluginBase<
  'transform' | 'unpack' | 'step',
  S,
  StepInstance
>;
export type Plugin<S extends TSchema = TSchema> = SourcePlugin<S> | SinkPlugin<S> | StepPlugin<S>;

/** Declares a plugin. Identity function that checks the shape and fixes the types. */
export function definePlugin<S extends TSchema>(plugin: SourcePlugin<S>): SourcePlugin<S>;
export function definePlugin<S extends TSchema>(plugin: SinkPlugin<S>): SinkPlugin<S>;
export function definePlugin<S extends TSchema>(plugin: StepPlugin<S>): StepPlugin<S>;
export function definePlugin<S extends TSchema>(plugin: Plugin<S>): Plugin<S> {
  if (!/^[a-z][a-z0-9_]*$/.test(plugin.name)) {
    throw new TypeError(`plugin name "${plugin.name}" must be snake_case`);
  }
  return Object.freeze({ apiVersion: PLUGIN_API_VERSION, ...plugin });
}
