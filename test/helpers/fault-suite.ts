/**
 * Shared pieces of the connector fault suites (test/e2e/faults-*.test.ts): a corpus of random
 * files, the fault profile the TCP proxy applies, the retry policy, and the checks that every
 * file arrived exactly once, whole, with nothing half-written left behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expect, it } from 'vitest';
import type { RunSummary } from '../../core/runtime/runner.js';
import { runPipelineFile } from '../../core/sdk.js';
import type { FaultProxy, ProxyFaults } from '../servers/fault-proxy.js';
import { listFiles, type Workspace } from './workspace.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export interface FaultFile {
  /** Relative POSIX path. */
  path: string;
  data: Buffer;
  sha256: string;
}

export interface CorpusOptions {
  /** Small files (1–64 KiB). Default 300 minus the large ones. */
  count?: number;
  /** Files of `largeSize` so that resets land in the middle of a transfer. Default 3. */
  large?: number;
  largeSize?: number;
}

/** ~300 files of random bytes: mostly 1–64 KiB, a few of a few MiB; some in a sub-folder. */
export function makeCorpus(options: CorpusOptions = {}): FaultFile[] {
  const large = options.large ?? 3;
  const count = options.count ?? 300 - large;
  const files: FaultFile[] = [];
  const add = (path: string, size: number) => {
    const data = randomBytes(size);
    files.push({ path, data, sha256: createHash('sha256').update(data).digest('hex') });
  };
  for (let i = 0; i < count; i++) {
    const dir = i % 10 === 0 ? 'deep/' : '';
    add(`${dir}f-${String(i).padStart(4, '0')}.bin`, KiB + Math.floor(Math.random() * 63 * KiB));
  }
  for (let i = 0; i < large; i++) add(`large-${i}.bin`, (options.largeSize ?? 3 * MiB) + i * 4099);
  return files;
}

export function writeCorpus(root: string, files: FaultFile[]): void {
  for (const f of files) {
    const abs = join(root, f.path);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, f.data);
  }
}

export function totalBytes(files: FaultFile[]): number {
  return files.reduce((n, f) => n + f.data.length, 0);
}

/**
 * Resets every `everyNth` connection after `resetAfterBytes` bytes (counted both ways), stalls
 * those connections once, and slows each of their chunks a little. Connection 1 (the first one
 * a client opens, typically the listing) is clean unless everyNth is 1.
 */
export function faultProfile(overrides: ProxyFaults = {}): ProxyFaults {
  return {
    resetAfterBytes: 160 * KiB,
    direction: 'both',
    everyNthConnection: 3,
    stallMs: 250,
    stallAfterBytes: 4 * KiB,
    latencyMs: 1,
    ...overrides,
  };
}

/** The pipeline policy every fault suite runs with: 8 at once, fast retries. */
export const FAULT_POLICY_YAML = [
  'policy:',
  '  concurrency: 8',
  '  retry:',
  '    max_attempts: 8',
  '    initial_delay: 20ms',
  '    max_delay: 200ms',
].join('\n');

/** sha256 of `data`. */
export function sha256Of(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The run succeeded for every file, retried at least once, and the proxy really reset
 * connections: a fault suite whose faults never fired proves nothing.
 */
export function expectSurvivedFaults(
  summary: RunSummary,
  files: FaultFile[],
  proxies: FaultProxy[],
  /** `client`: the connector's SDK retries each request itself, so the runtime may see none. */
  retriedBy: 'runtime' | 'client' = 'runtime',
): void {
  expect(summary.failures).toEqual([]);
  expect(summary).toMatchObject({
    failed: 0,
    ok: files.length,
    filesWritten: files.length,
    interrupted: false,
  });
  const resets = proxies.reduce((n, p) => n + p.stats.resets, 0);
  expect(resets).toBeGreaterThan(0);
  if (retriedBy === 'runtime') expect(summary.retries).toBeGreaterThan(0);
}

/**
 * `arrived` maps each path found at the destination to its sha256: exactly the corpus, each
 * file once with its own bytes — no temp files, no partial objects, no extras.
 */
export function expectExactlyTheCorpus(
  arrived: Array<{ path: string; sha256: string }>,
  files: FaultFile[],
): void {
  const paths = arrived.map((a) => a.path).sort();
  expect(paths).toEqual(files.map((f) => f.path).sort());
  const expected = new Map(files.map((f) => [f.path, f.sha256]));
  const wrong = arrived.filter((a) => expected.get(a.path) !== a.sha256).map((a) => a.path);
  expect(wrong).toEqual([]);
}

/** One-line account of what the proxies did, for the test log. */
export function describeFaults(label: string, summary: RunSummary, proxies: FaultProxy[]): string {
  const stats = proxies.reduce(
    (acc, p) => ({
      connections: acc.connections + p.stats.connections,
      resets: acc.resets + p.stats.resets,
      stalls: acc.stalls + p.stats.stalls,
    }),
    { connections: 0, resets: 0, stalls: 0 },
  );
  const failures = summary.failures.map((f) => `\n  failed ${f.path}: ${f.code} ${f.error}`).join('');
  return `${label}: ${summary.ok} ok, ${summary.retries} retries, ${stats.connections} connections, ${stats.resets} resets, ${stats.stalls} stalls, ${Math.round(summary.durationMs)} ms${failures}`;
}

/** Paths and sha256 of every file under `dir`, for `expectExactlyTheCorpus`. */
export function arrivedIn(dir: string): Array<{ path: string; sha256: string }> {
  return listFiles(dir).map((path) => ({ path, sha256: sha256Of(readFileSync(join(dir, path))) }));
}

export interface RemoteFsFaultCases {
  /** Plugin name (`sftp`, `ftp`): source and sink of one remote file system. */
  plugin: string;
  /** Where the server's files live on this machine. */
  rootDir: () => string;
  /** A proxy with faults in front of the server. */
  startProxy: () => Promise<FaultProxy>;
  /** The plugin's config lines (indented 4) for a connection through `proxy` at `path`. */
  yaml: (proxy: FaultProxy, path: string) => string[];
  workspace: () => Workspace;
}

/** The sink case (local → remote) and the source case (remote → local) of a remote file system. */
export function remoteFsFaultCases(c: RemoteFsFaultCases): void {
  const run = async (
    direction: 'sink' | 'source',
    files: FaultFile[],
    proxy: FaultProxy,
    arrived: () => string,
  ) => {
    try {
      const ws = c.workspace();
      const remote = [
        `  ${c.plugin}:`,
        ...c.yaml(proxy, join(c.rootDir(), direction === 'sink' ? 'landed' : 'outgoing')),
      ];
      const lines =
        direction === 'sink'
          ? ['source:', '  local: { path: ./up }', 'sink:', ...remote]
          : ['source:', ...remote, 'sink:', '  local: { path: ./down }'];
      const file = ws.pipeline(
        [`name: faults-${c.plugin}-${direction}`, ...lines, FAULT_POLICY_YAML].join('\n'),
        `${c.plugin}-${direction}.yaml`,
      );
      const summary = await runPipelineFile(file, { stateDir: ws.path(`state-${direction}`) });
      console.info(describeFaults(`${c.plugin} ${direction}`, summary, [proxy]));
      expectSurvivedFaults(summary, files, [proxy]);
      expectExactlyTheCorpus(arrivedIn(arrived()), files);
    } finally {
      await proxy.stop();
    }
  };

  it(`sink: local → ${c.plugin} uploads every file exactly once, no temp files left`, async () => {
    const files = makeCorpus();
    writeCorpus(c.workspace().path('up'), files);
    await run('sink', files, await c.startProxy(), () => join(c.rootDir(), 'landed'));
  });

  it(`source: ${c.plugin} → local downloads every file exactly once`, async () => {
    const files = makeCorpus();
    writeCorpus(join(c.rootDir(), 'outgoing'), files);
    await run('source', files, await c.startProxy(), () => c.workspace().path('down'));
  });
}
