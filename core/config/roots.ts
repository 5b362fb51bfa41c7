/**
 * Sinks never write where their sources list. A sink writing inside (or at) a source's root
 * makes the source list its own output: re-ingested one level deeper every pass with `keep`, the
 * only copy deleted with `delete`. That is a validation error, decided here from the configs
 * alone (no connection is made). A sink whose root merely contains a source's root is accepted:
 * its destinations decide whether anything lands in the source (the reference pipeline
 * cdr-s3-segregation lists `incoming/` and writes `segregated/…` and `errors/…` of the same bucket).
 *
 * Where each plugin keeps its files is declared once, in `PLUGIN_ROOTS`, keyed by plugin name:
 * a table in the core rather than a field on each plugin declaration, so that the rule covers the
 * built-in connectors without reaching into their modules. A plugin missing from the table
 * (HTTP, third-party) is not checked.
 */
import { existsSync, realpathSync } from 'node:fs';
import { dirname, basename as fsBasename, join, posix, resolve, sep } from 'node:path';
import type { PluginRef } from './plugin-ref.js';

/** Where a plugin's files are: roots compare only within one `store`. */
export interface Root {
  /** The system and the identity of its server, account or bucket, e.g. `sftp://u@host:22`. */
  store: string;
  /** Folder inside the store, `/`-separated without a trailing `/`; `` is the whole store. */
  path: string;
  /** The config key the root comes from (the error points at it). */
  field: string;
  /** For messages, e.g. `sftp://u@host:22/in` or `/srv/in`. */
  shown: string;
}

export interface PluginRoots {
  /** The folders the plugin lists (a source) or writes under (a sink). */
  roots: Root[];
  /** A source's `after_success: {move_to}` folder, in the same store. */
  moveTo?: Root;
  /** Whether a source lists sub-folders (`recursive`, default true). */
  recursive: boolean;
  /** Whether the source leaves out its `move_to` folder when that lies inside its root. */
  skipsMoveTo: boolean;
}

type Config = Record<string, unknown>;
type RootsReader = (config: Config, baseDir: string) => PluginRoots;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const moveToOf = (config: Config): string | undefined => {
  const after = config.after_success;
  return after !== null && typeof after === 'object'
    ? str((after as { move_to?: unknown }).move_to)
    : undefined;
};
const recursiveOf = (config: Config) => config.recursive !== false;

/** An absolute local path with the symlinks of its existing part resolved. */
function realLocal(path: string): string {
  let existing = path;
  const rest: string[] = [];
  while (!existsSync(existing)) {
    const parent = dirname(existing);
    if (parent === existing) return path;
    rest.unshift(fsBasename(existing));
    existing = parent;
  }
  return join(realpathSync(existing), ...rest);
}

function localRoot(path: string, baseDir: string, field: string): Root {
  const abs = realLocal(resolve(baseDir, path));
  return { store: 'local', path: abs.split(sep).filter(Boolean).join('/'), field, shown: abs };
}

/** SFTP/FTP: the login's server; a relative path is relative to the login folder, so it only compares with relative ones. */
function remoteRoot(scheme: string, config: Config, defaultPort: number, path: string, field: string): Root {
  const host = (str(config.host) ?? '').toLowerCase();
  const port = typeof config.port === 'number' ? config.port : defaultPort;
  const server = `${scheme}://${str(config.username) ?? ''}@${host}:${port}`;
  const absolute = path.startsWith('/');
  const clean = posix
    .normalize(path)
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .join('/');
  return {
    store: absolute ? server : `${server} (login folder)`,
    path: clean,
    field,
    shown: `${server}${absolute ? '/' : '/~/'}${clean}`,
  };
}

function remoteRoots(scheme: string, defaultPort: (config: Config) => number): RootsReader {
  return (config) => {
    const port = defaultPort(config);
    const moveTo = moveToOf(config);
    return {
      roots: [remoteRoot(scheme, config, port, str(config.path) ?? '.', 'path')],
      moveTo:
        moveTo === undefined ? undefined : remoteRoot(scheme, config, port, moveTo, 'after_success/move_to'),
      recursive: recursiveOf(config),
      skipsMoveTo: true,
    };
  };
}

/** An object store folder: keys, so only a trailing `/` (implied) and leading ones (stripped by the connectors) are dropped. */
function objectRoot(store: string, scheme: string, container: string, prefix: string, field: string): Root {
  const path = prefix.replace(/^\/+/, '').replace(/\/+$/, '');
  return { store, path, field, shown: `${scheme}://${container}/${path}` };
}

function s3Roots(config: Config): PluginRoots {
  const endpoint = str(config.endpoint)?.trim();
  const bucket = str(config.bucket) ?? '';
  // Bucket names are global on AWS: the region does not make another bucket.
  const store = `s3 ${endpoint ? urlIdentity(endpoint) : 'aws'} ${bucket}`;
  const prefixes = Array.isArray(config.prefixes)
    ? (config.prefixes as string[])
    : [str(config.prefix) ?? ''];
  const moveTo = moveToOf(config);
  return {
    roots: prefixes.map((p, i) =>
      objectRoot(store, 's3', bucket, p, Array.isArray(config.prefixes) ? `prefixes/${i}` : 'prefix'),
    ),
    moveTo:
      moveTo === undefined ? undefined : objectRoot(store, 's3', bucket, moveTo, 'after_success/move_to'),
    recursive: recursiveOf(config),
    skipsMoveTo: false,
  };
}

function azureRoots(config: Config): PluginRoots {
  const { account, container } = azureContainer(config);
  const store = `azure_blob ${account} ${container}`;
  const moveTo = moveToOf(config);
  return {
    roots: [objectRoot(store, 'azure', container, str(config.prefix) ?? '', 'prefix')],
    moveTo:
      moveTo === undefined
        ? undefined
        : objectRoot(store, 'azure', container, moveTo, 'after_success/move_to'),
    recursive: recursiveOf(config),
    skipsMoveTo: false,
  };
}

/** The account's blob service URL and the container, whichever way the connection is given. */
function azureContainer(config: Config): { account: string; container: string } {
  const sasUrl = str(config.sas_url);
  let container = str(config.container);
  let account: string;
  const connection = str(config.connection_string);
  if (connection) {
    const field = (name: string) =>
      new RegExp(`(?:^|;)\\s*${name}=([^;]*)`, 'i').exec(connection)?.[1]?.trim();
    const name = field('AccountName') ?? '';
    account = urlIdentity(
      field('BlobEndpoint') ??
        `${field('DefaultEndpointsProtocol') ?? 'https'}://${name}.blob.${field('EndpointSuffix') ?? 'core.windows.net'}`,
    );
  } else if (sasUrl && URL.canParse(sasUrl)) {
    const url = urlIdentity(sasUrl);
    if (container === undefined) {
      // A container SAS URL: its last path segment is the container.
      container = decodeURIComponent(url.slice(url.lastIndexOf('/') + 1));
      account = url.slice(0, url.lastIndexOf('/'));
    } else {
      account = url;
    }
  } else {
    account = urlIdentity(
      str(config.endpoint) ?? `https://${str(config.account) ?? ''}.blob.core.windows.net`,
    );
  }
  return { account, container: container ?? '' };
}

/** A service URL without query, trailing `/` or default port; host in lower case. */
function urlIdentity(raw: string): string {
  if (!URL.canParse(raw)) return raw;
  const url = new URL(raw);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

export const PLUGIN_ROOTS: Readonly<Record<string, RootsReader>> = {
  local: (config, baseDir) => {
    const moveTo = moveToOf(config);
    return {
      roots: Array.isArray(config.paths)
        ? (config.paths as string[]).map((p, i) => localRoot(p, baseDir, `paths/${i}`))
        : [localRoot(str(config.path) ?? '.', baseDir, 'path')],
      moveTo: moveTo === undefined ? undefined : localRoot(moveTo, baseDir, 'after_success/move_to'),
      recursive: recursiveOf(config),
      skipsMoveTo: true,
    };
  },
  sftp: remoteRoots('sftp', () => 22),
  ftp: remoteRoots('ftp', (config) => (config.secure === 'implicit' ? 990 : 21)),
  s3: s3Roots,
  azure_blob: azureRoots,
};

/** Whether folder `inner` is `outer` or below it (same store). */
function within(inner: Root, outer: Root): boolean {
  return (
    inner.store === outer.store &&
    (outer.path === '' || inner.path === outer.path || inner.path.startsWith(`${outer.path}/`))
  );
}

export interface RootProblem {
  ref: PluginRef;
  /** JSON pointer of the offending value. */
  pointer: string;
  message: string;
  hint: string;
}

/**
 * Every sink (and the dead-letter sink) whose root is a source's root or inside it, every source
 * whose `move_to` folder it would list again, and every local source that lists the state folder. A sink strictly inside a source that does not list
 * sub-folders is fine: the source never sees below its own level.
 */
export function rootProblems(def: {
  sources: PluginRef[];
  sinks: PluginRef[];
  onError?: PluginRef;
  baseDir: string;
  stateDir: string;
}): RootProblem[] {
  const rootsOf = (ref: PluginRef) => PLUGIN_ROOTS[ref.name]?.(ref.config, def.baseDir);
  const problems: RootProblem[] = [];
  const sources = def.sources.map((ref) => ({ ref, roots: rootsOf(ref) }));
  for (const sink of [...def.sinks, ...(def.onError ? [def.onError] : [])]) {
    const sinkRoots = rootsOf(sink);
    if (!sinkRoots) continue;
    for (const out of sinkRoots.roots) {
      for (const { ref, roots } of sources) {
        for (const src of roots?.roots ?? []) {
          const relation =
            out.path === src.path && out.store === src.store
              ? `is the root of ${ref.stepId}`
              : within(out, src) && roots!.recursive
                ? `is inside ${src.shown}, the root of ${ref.stepId}`
                : undefined;
          if (!relation) continue;
          problems.push({
            ref: sink,
            pointer: `${sink.jsonPath}/${out.field}`,
            message: `${sink.stepId} writes under ${out.shown}, which ${relation}`,
            hint: 'the source would list what the sink writes (delivered again every pass, or deleted with after_success: delete): give the sink a folder outside the source',
          });
        }
      }
    }
  }
  // The ledger is a file too: a local source listing the state folder would deliver (and with
  // `delete`, remove) it. A `.sluice` folder is the one name the local source never lists.
  const state = localRoot(def.stateDir, def.baseDir, 'path');
  for (const { ref, roots } of sources) {
    const lister = roots?.roots.find((r) => within(state, r) && (roots.recursive || state.path === r.path));
    if (
      !lister ||
      state.path
        .slice(lister.path.length)
        .split('/')
        .some((s) => /^\.sluice(-tmp)?$/.test(s))
    )
      continue;
    problems.push({
      ref,
      pointer: `${ref.jsonPath}/${lister.field}`,
      message: `${ref.stepId} lists ${lister.shown}, which holds the state folder ${state.shown} (the ledger)`,
      hint: 'put the state folder (state.dir or --state-dir) outside the source folder, or name it .sluice',
    });
  }
  for (const { ref, roots } of sources) {
    if (!roots?.moveTo || roots.skipsMoveTo || !roots.recursive) continue;
    const moveTo = roots.moveTo;
    const lister = roots.roots.find((r) => within(moveTo, r));
    if (!lister) continue;
    problems.push({
      ref,
      pointer: `${ref.jsonPath}/${moveTo.field}`,
      message: `${ref.stepId} moves delivered files to ${moveTo.shown}, inside ${lister.shown} that it lists with its sub-folders`,
      hint: 'moved files would be listed and delivered again every pass: move them outside the source prefix, or set recursive: false',
    });
  }
  // `match: first` hides a later root's copy only while an earlier root holds the path: once the
  // winner is deleted or moved away, the next pass takes the hidden (older) copy and delivers it
  // over the one just delivered. So the hidden copies must stay where the winner stays.
  for (const { ref } of sources) {
    const after = ref.config.after_success;
    if (ref.config.match !== 'first' || after === undefined || after === 'keep') continue;
    problems.push({
      ref,
      pointer: `${ref.jsonPath}/match`,
      message: `${ref.stepId} takes each path from the first root holding it (match: first) and tidies it (after_success): the next pass would take the hidden copy of a later root and deliver it over the one delivered`,
      hint: 'keep the sources (after_success: keep, the default) with match: first, or use match: all',
    });
  }
  return problems;
}

/**
 * Per sink index, the folders (relative to the sink's root) where a source lists: a sink whose
 * root contains a source root is valid, but a destination under one of these folders would be
 * listed again by that source, so the runtime refuses it item by item.
 */
export function sourceFoldersInSinks(def: {
  sources: PluginRef[];
  sinks: PluginRef[];
  baseDir: string;
}): Map<number, string[]> {
  const rootsOf = (ref: PluginRef) => PLUGIN_ROOTS[ref.name]?.(ref.config, def.baseDir);
  const sourceRoots = def.sources.flatMap((ref) => rootsOf(ref)?.roots ?? []);
  const out = new Map<number, string[]>();
  def.sinks.forEach((sink, index) => {
    for (const root of rootsOf(sink)?.roots ?? []) {
      for (const src of sourceRoots) {
        if (src.store !== root.store || !within(src, root) || src.path === root.path) continue;
        const folder = root.path === '' ? src.path : src.path.slice(root.path.length + 1);
        out.set(index, [...(out.get(index) ?? []), folder]);
      }
    }
  });
  return out;
}
