/**
 * Seed workflow "datahub-compress" (pipelines/datahub-compress.yaml) against the REST test
 * server, through the real CLI: a dry run first (nothing uploaded or deleted, ratio shown), then
 * for real — files of the month ≥ 1 MiB and not already .gz are gzipped, PUT as `<path>.gz`,
 * verified, and their originals deleted through the API; everything else is left alone. The
 * server throws in 429s and 500s now and then, which must be retried.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../helpers/object-store.js';
import { type CliResult, pipelineFile, runCli } from '../../helpers/workflows.js';
import { makeWorkspace, type Workspace } from '../../helpers/workspace.js';
import { type RestApi, startRestApi } from '../../servers/rest-api.js';

const TOKEN = 'datahub-e2e-token';
const MiB = 1024 * 1024;
const JUNE = (day: number) => new Date(Date.UTC(2023, 5, day, 8, 30));
const JULY = new Date(Date.UTC(2023, 6, 2, 9, 0));

let api: RestApi;
let ws: Workspace;
let env: Record<string, string>;
const originals = new Map<string, string>(); // name → sha256

/** Sensor readings as CSV: compressible like the real exports, but not trivially so. */
function csv(size: number, seed: number): Buffer {
  const lines: string[] = ['timestamp,sensor,value,status'];
  let length = lines[0].length + 1;
  let x = seed;
  for (let i = 0; length < size; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const line = `2023-06-${String((i % 30) + 1).padStart(2, '0')}T${String(i % 24).padStart(2, '0')}:00:00Z,sensor-${x % 97},${(x % 100000) / 1000},${x % 13 === 0 ? 'WARN' : 'OK'}`;
    lines.push(line);
    length += line.length + 1;
  }
  return Buffer.from(`${lines.join('\n')}\n`).subarray(0, size);
}

/** June files: [name, size, compressed?]. */
const JUNE_FILES: Array<[string, number, boolean]> = [
  ['meter-small.csv', 300 * 1024, false],
  ['meter-just-under.csv', MiB - 1, false],
  ['meter-exactly-1mib.csv', MiB, true],
  ['meter-big.csv', 3 * MiB, true],
  ['exports/2023-06/sales report #7 (final).csv', 2 * MiB + 123, true],
  ['archive-already.csv.gz', 2 * MiB, false],
];

function cli(extra: string[]): Promise<CliResult> {
  return runCli(
    [
      'run',
      pipelineFile('datahub-compress'),
      '--var',
      'MONTH=06',
      '--var',
      'YEAR=2023',
      '--state-dir',
      ws.path('state'),
      '--log-format',
      'pretty',
      ...extra,
    ],
    ws.dir,
    env,
  );
}

beforeAll(async () => {
  // One list page: with offset pagination, deleting files while later pages are still to be
  // fetched shifts them, and a pass can miss files (picked up by the next pass). The http
  // source's paging itself is covered in test/e2e/http.test.ts.
  api = await startRestApi({ token: TOKEN, pageSize: 10 });
  ws = makeWorkspace('sluice-wf-datahub-');
  env = { DATAHUB_URL: api.url, DATAHUB_TOKEN: TOKEN };
  for (const [i, [name, size]] of JUNE_FILES.entries()) {
    const body = csv(size, i + 1);
    originals.set(name, sha256(body));
    await api.seed(name, body, JUNE(i + 1));
  }
  const july = csv(2 * MiB, 99);
  originals.set('july-big.csv', sha256(july));
  await api.seed('july-big.csv', july, JULY);
});

afterAll(async () => {
  await api?.stop();
  ws?.cleanup();
});

const writes = () => api.requests.filter((r) => r.method === 'PUT' || r.method === 'DELETE');

describe('datahub-compress workflow (CLI)', () => {
  it('--dry-run compresses in memory only: nothing uploaded, nothing deleted, the ratio shown', async () => {
    const r = await cli(['--dry-run']);
    expect(r.stderr).not.toMatch(/FAILED|error/i);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^datahub-compress \(dry run\): 3 ok, 0 failed, 0 skipped \(done before\), 3 filtered/m,
    );
    expect(r.stdout).toMatch(/compression: .* ratio \d+\.\d\d:1, saved .*\(\d+\.\d%\)/);
    expect(writes()).toEqual([]);
    expect(
      api
        .files()
        .map((f) => f.name)
        .sort(),
    ).toEqual([...originals.keys()].sort());
  });

  it('compresses the big files of the month, PUTs them as .gz, deletes the originals, retrying 429/500', async () => {
    api.faults.throttleEvery = 5;
    api.faults.failEvery = 7;
    api.faults.retryAfter = '1';
    const requestsBefore = api.requests.length;
    const r = await cli(['--summary-json', ws.path('summary.json')]);
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^datahub-compress: 3 ok, 0 failed, 0 skipped \(done before\), 3 filtered — 3 files written/m,
    );
    expect(r.stdout).toMatch(/compression: .* ratio \d+\.\d\d:1, saved .*\(\d+\.\d%\)/);

    const summary = JSON.parse(readFileSync(ws.path('summary.json'), 'utf8')) as {
      compression: { bytesIn: number; bytesOut: number };
      retries: number;
    };
    const compressed = JUNE_FILES.filter(([, , c]) => c);
    expect(summary.compression.bytesIn).toBe(compressed.reduce((n, [, size]) => n + size, 0));
    const stored = compressed.map(([name]) => api.file(`${name}.gz`));
    expect(summary.compression.bytesOut).toBe(stored.reduce((n, f) => n + (f?.size ?? 0), 0));
    expect(summary.compression.bytesOut).toBeLessThan(summary.compression.bytesIn / 2);

    // The injected faults happened and were retried (list pages retry inside the source).
    const faulted = api.requests.slice(requestsBefore).filter((q) => q.status === 429 || q.status === 500);
    expect(faulted.length).toBeGreaterThan(0);
    expect(faulted.some((q) => q.method !== 'GET' || q.url.includes('/content'))).toBe(true);
    expect(summary.retries).toBeGreaterThan(0);
  });

  it('stored the gzip of every big file, deleted exactly those originals and left the rest alone', async () => {
    for (const [name, , compressed] of JUNE_FILES) {
      if (compressed) {
        expect(api.file(name), `${name} should be deleted`).toBeUndefined();
        expect(sha256(gunzipSync(await api.read(`${name}.gz`))), name).toBe(originals.get(name));
      } else {
        expect(api.file(`${name}.gz`)).toBeUndefined();
        expect(sha256(await api.read(name)), name).toBe(originals.get(name));
      }
    }
    expect(sha256(await api.read('july-big.csv'))).toBe(originals.get('july-big.csv'));
    expect(api.file('july-big.csv.gz')).toBeUndefined();
    expect(await api.pendingUploads()).toBe(0);
  });

  it('a rerun uploads and deletes nothing', async () => {
    api.faults.throttleEvery = undefined;
    api.faults.failEvery = undefined;
    const before = writes().length;
    const r = await cli([]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^datahub-compress: 0 ok, 0 failed, .* 3 filtered — 0 files written/m);
    expect(writes().length).toBe(before);
  });
});
