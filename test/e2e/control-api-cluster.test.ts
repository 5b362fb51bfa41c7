/**
 * The control API in cluster mode, against a real redis-server: `sluice watch --cluster` serves
 * the API and lists, two `sluice worker` processes run the items. A run asked for with variables
 * is listed by the accepting node, executed by both workers (loaded with the run's variables),
 * and followed on the accepting node to 100 % with every worker's item events and the failing
 * file; cancelling a run with many jobs still queued takes them out of the queue.
 */
import { mkdirSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterEnv, type SluiceProcess as WorkerProcess } from '../helpers/cluster.js';
import { clusterSuite } from '../helpers/cluster-suite.js';
import { SLOW_PLUGIN } from '../helpers/slow-plugin.js';
import { type SluiceProcess, startSluice, statusPort, until } from '../helpers/sluice-process.js';
import { listFiles } from '../helpers/workspace.js';

const TOKEN = 'cluster-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

// One file per provider, run through the API by provider name (the Octo shape).
const OCTO = `name: octo
plugins: [./slow.mjs]
source:
  local: { path: "./in/\${PROVIDER}" }
steps:
  - slow: { ms: 150, fail: bad- }
sink:
  local: { path: "./out/\${PROVIDER}" }
policy:
  concurrency: 2
  retry: { max_attempts: 1 }
`;

const suite = clusterSuite('sluice-api-cluster-');
const { ws } = suite;
let watch: SluiceProcess;
const workers: WorkerProcess[] = [];
let base: string;

interface Run {
  id: string;
  state: string;
  total: number | null;
  done: number;
  failed: number;
  skipped: number;
  percent: number;
  bytes_in: number;
  bytes_out: number;
  failures: Array<{ source: string; path: string; code: string; reason: string }>;
  summary: { ok: number; failed: number } | null;
}

const get = async <T>(path: string): Promise<T> => {
  const res = await fetch(base + path, { headers: auth });
  expect(res.status, `GET ${path}`).toBe(200);
  return (await res.json()) as T;
};
const post = (path: string, body?: unknown) =>
  fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const startRun = async (vars: Record<string, string>) => {
  const res = await post('/api/pipelines/octo/runs', { vars });
  const body = (await res.json()) as { run_id: string };
  expect(res.status, JSON.stringify(body)).toBe(202);
  return body.run_id;
};
const ended = (r: Run) => ['succeeded', 'failed', 'cancelled'].includes(r.state);

async function readEvents(path: string): Promise<Array<{ event: string; data: Record<string, unknown> }>> {
  const res = await fetch(base + path, { headers: auth });
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.includes('event: '))
    .map((block) => ({
      event: /^event: (.+)$/m.exec(block)?.[1] ?? '',
      data: JSON.parse(/^data: (.+)$/m.exec(block)?.[1] ?? 'null') as Record<string, unknown>,
    }));
}

beforeAll(async () => {
  ws.write('slow.mjs', SLOW_PLUGIN);
  mkdirSync(ws.path('in/none'), { recursive: true });
  for (let i = 0; i < 8; i++) ws.write(`in/beta/b${i}.txt`, `beta ${i}\n`.repeat(100));
  ws.write('in/beta/bad-1.txt', 'this one is refused\n');
  for (let i = 0; i < 80; i++) ws.write(`in/gamma/g${String(i).padStart(2, '0')}.txt`, `gamma ${i}\n`);
  ws.pipeline(OCTO, 'octo.yaml');
  const url = suite.redis.url;
  // The workers' own PROVIDER points nowhere: every item of a run is read where the run's vars say.
  for (let i = 0; i < 2; i++)
    workers.push(
      suite.start(['worker', '--cluster', url, 'octo.yaml', '--log-format', 'json'], { PROVIDER: 'none' }),
    );
  const env = clusterEnv({ PROVIDER: 'none', SLUICE_API_TOKEN: TOKEN });
  watch = startSluice(
    ['watch', 'octo.yaml', '--cluster', url, '--metrics-port', '0', '--debounce', '50'],
    ws.dir,
    Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)),
  );
  base = `http://127.0.0.1:${await statusPort(watch)}`;
  await until(
    () => get<{ pipelines: Array<{ name: string; state: string }> }>('/api/pipelines'),
    (b) => b.pipelines.length === 1 && b.pipelines[0].state === 'finished',
    30_000,
    'the first (empty) pass over the cluster',
  );
}, 90_000);

afterAll(async () => {
  if (watch && watch.child.exitCode === null) {
    watch.kill('SIGKILL');
    await watch.exited;
  }
});

describe('control API over the cluster', () => {
  it('a run with vars is listed here, run by the workers with its vars, and followed to 100 % with its failing file', async () => {
    const id = await startRun({ PROVIDER: 'beta' });
    const seen: number[] = [];
    const poll = (async () => {
      for (;;) {
        const r = await get<Run>(`/api/runs/${id}`);
        seen.push(r.percent);
        if (ended(r)) return r;
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    const events = await readEvents(`/api/runs/${id}/events`);
    const run = await poll;

    expect(run, JSON.stringify(run)).toMatchObject({
      state: 'failed',
      total: 9,
      done: 8,
      failed: 1,
      percent: 100,
    });
    expect(run.bytes_out).toBe(8 * 'beta 0\n'.length * 100);
    expect(run.failures).toEqual([
      expect.objectContaining({ path: 'bad-1.txt', reason: expect.stringContaining('refused by the test') }),
    ]);
    expect(run.summary).toMatchObject({ ok: 8, failed: 1 });
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]);
    expect(
      seen.some((p) => p > 0 && p < 100),
      `percent seen: ${seen.join(' ')}`,
    ).toBe(true);

    // Per-file events came from the workers through Redis; the stream ends with the summary.
    const paths = (type: string) => events.filter((e) => e.event === type).map((e) => e.data.path as string);
    expect(paths('started').sort()).toEqual([...listFiles(ws.path('in/beta'))].sort());
    expect(paths('done').sort()).toEqual(listFiles(ws.path('out/beta')).sort());
    expect(paths('failed')).toEqual(['bad-1.txt']);
    expect(events.at(-1)?.event).toBe('summary');
    expect(events.at(-1)?.data).toMatchObject({ state: 'failed', total: 9, done: 8, failed: 1 });

    expect(listFiles(ws.path('out/beta'))).toHaveLength(8);
    expect(listFiles(ws.path('out/none'))).toEqual([]);
    for (const w of workers) expect(w.output()).not.toContain('job failed');
    const runStream = new Redis(suite.redis.url);
    try {
      expect(await runStream.exists(`sluice:{octo}:run:${id}:events`)).toBe(0);
    } finally {
      runStream.disconnect();
    }
  }, 90_000);

  it('cancel stops the run and takes its waiting jobs out of the queue; the running ones finish', async () => {
    const id = await startRun({ PROVIDER: 'gamma' });
    await until(
      () => get<Run>(`/api/runs/${id}`),
      (r) => r.done >= 2,
      30_000,
      'two gamma items done',
    );
    const probe = new Redis(suite.redis.url);
    try {
      expect(await probe.llen('sluice:{octo}:wait')).toBeGreaterThan(20);
      const res = await post(`/api/runs/${id}/cancel`);
      expect(res.status).toBe(202);
      const run = await until(() => get<Run>(`/api/runs/${id}`), ended, 30_000, 'the cancelled run to end');
      expect(run.state).toBe('cancelled');
      expect(await probe.llen('sluice:{octo}:wait')).toBe(0);
      expect(await probe.zcard('sluice:{octo}:prioritized')).toBe(0);
      expect(await probe.zcard('sluice:{octo}:delayed')).toBe(0);
      // What ran finished and was counted; nothing else runs later.
      const written = listFiles(ws.path('out/gamma')).length;
      expect(written).toBe(run.done);
      expect(written).toBeLessThan(80);
      await new Promise((r) => setTimeout(r, 1500));
      expect(listFiles(ws.path('out/gamma'))).toHaveLength(written);
      expect(await probe.llen('sluice:{octo}:active')).toBe(0);
    } finally {
      probe.disconnect();
    }
    expect(watch.stderr()).not.toContain('unexpected error');
  }, 90_000);
});
