/**
 * The control API against the real `sluice watch` (a child process, no mocks): two pipelines;
 * runs started with variables through POST, followed over Server-Sent Events and GET to the
 * end; a second run queued behind the first; a failing file reported; tokens enforced (nothing
 * runs without one); validation errors as `sluice validate` prints them; cancel drains; runs
 * survive a restart; and every route served is in the OpenAPI document.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../core/api/server.js';
import { SLOW_PLUGIN } from '../helpers/slow-plugin.js';
import { SLUICE_BIN, type SluiceProcess, startSluice, statusPort, until } from '../helpers/sluice-process.js';
import { listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';

const TOKEN = 'test-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };

// The Octo shape: one pipeline file, run per provider through the API.
const OCTO = `name: octo
plugins: [./slow.mjs]
source:
  local: { path: "./in/\${PROVIDER}" }
steps:
  - slow: { ms: 120, fail: bad- }
sink:
  local: { path: "./out/\${PROVIDER}" }
policy:
  concurrency: \${CONC}
  retry: { max_attempts: 1 }
`;
const OTHER = `name: other
source:
  local: { path: ./other-in }
sink:
  local: { path: ./other-out }
`;

let ws: Workspace;
let proc: SluiceProcess;
let base: string;

interface Run {
  id: string;
  pipeline: string;
  state: string;
  total: number | null;
  done: number;
  failed: number;
  percent: number;
  started_at: string | null;
  ended_at: string | null;
  failures: Array<{ source: string; path: string; code: string; reason: string }>;
  summary: { ok: number; failed: number } | null;
  eta_seconds: number | null;
  queue_position: number | null;
  cancel_requested: boolean;
}

const get = async <T>(path: string, headers: Record<string, string> = {}): Promise<T> => {
  const res = await fetch(base + path, { headers });
  expect(res.status, `GET ${path}`).toBe(200);
  return (await res.json()) as T;
};
const post = (path: string, body?: unknown, headers: Record<string, string> = auth) =>
  fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const startRun = async (vars: Record<string, string>, extra: Record<string, unknown> = {}) => {
  const res = await post('/api/pipelines/octo/runs', { vars, ...extra });
  const body = (await res.json()) as { run_id: string; state: string; queue_position: number | null };
  expect(res.status, JSON.stringify(body)).toBe(202);
  return body;
};
const runOf = (id: string) => get<Run>(`/api/runs/${id}`);
const ended = (r: Run) => ['succeeded', 'failed', 'cancelled'].includes(r.state);

/** Reads a Server-Sent Events stream to its end. */
async function readEvents(path: string): Promise<Array<{ event: string; data: Record<string, unknown> }>> {
  const res = await fetch(base + path);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const text = await res.text(); // the server ends the stream after `summary`
  return text
    .split('\n\n')
    .filter((block) => block.includes('event: '))
    .map((block) => {
      const event = /^event: (.+)$/m.exec(block)?.[1] ?? '';
      const data = JSON.parse(/^data: (.+)$/m.exec(block)?.[1] ?? 'null') as Record<string, unknown>;
      return { event, data };
    });
}

function startWatch(env: Record<string, string>): SluiceProcess {
  return startSluice(
    ['watch', 'octo.yaml', 'other.yaml', '--metrics-port', '0', '--debounce', '50'],
    ws.dir,
    {
      PROVIDER: 'none',
      CONC: '2',
      ...env,
    },
  );
}

beforeAll(async () => {
  ws = makeWorkspace('sluice-api-');
  ws.write('slow.mjs', SLOW_PLUGIN);
  mkdirSync(ws.path('in/none'), { recursive: true });
  for (let i = 0; i < 24; i++) ws.write(`in/alpha/a${String(i).padStart(2, '0')}.txt`, `alpha ${i}\n`);
  for (let i = 0; i < 6; i++) ws.write(`in/beta/b${i}.txt`, `beta ${i}\n`);
  ws.write('in/beta/bad-1.txt', 'this one is refused\n');
  for (let i = 0; i < 30; i++) ws.write(`in/gamma/g${String(i).padStart(2, '0')}.txt`, `gamma ${i}\n`);
  ws.write('other-in/o1.txt', 'other');
  ws.pipeline(OCTO, 'octo.yaml');
  ws.pipeline(OTHER, 'other.yaml');
  proc = startWatch({ SLUICE_API_TOKEN: TOKEN });
  base = `http://127.0.0.1:${await statusPort(proc)}`;
  await until(
    () => get<{ pipelines: Array<{ name: string; state: string }> }>('/api/pipelines'),
    (b) => b.pipelines.length === 2 && b.pipelines.every((p) => p.state === 'finished'),
    20_000,
    'both pipelines to finish their first pass',
  );
}, 60_000);

afterAll(async () => {
  if (proc && proc.child.exitCode === null) {
    proc.kill('SIGKILL');
    await proc.exited;
  }
  ws?.cleanup();
});

describe('control API', () => {
  it('lists every loaded pipeline with its file, version, trigger, state and last pass', async () => {
    const { pipelines } = await get<{ pipelines: Array<Record<string, unknown>> }>('/api/pipelines');
    const octo = pipelines.find((p) => p.name === 'octo');
    expect(octo).toMatchObject({ file: ws.path('octo.yaml'), trigger: 'once', state: 'finished' });
    expect(octo?.version).toMatch(/^[0-9a-f]{16}$/);
    expect(octo?.last_pass).toMatchObject({ ok: 0, failed: 0 });
    expect(pipelines.find((p) => p.name === 'other')?.last_pass).toMatchObject({ ok: 1 });
  });

  it('refuses a missing or wrong token with 401, and nothing runs', async () => {
    const missing = await post('/api/pipelines/octo/runs', { vars: { PROVIDER: 'alpha' } }, {});
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await post(
      '/api/pipelines/octo/runs',
      { vars: { PROVIDER: 'alpha' } },
      { authorization: `Bearer ${TOKEN}x` },
    );
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: string }).error).toBe('wrong API token');
    expect((await post('/api/runs/whatever/cancel', undefined, {})).status).toBe(401);
    expect((await get<{ runs: Run[] }>('/api/runs')).runs).toEqual([]);
    expect(existsSync(ws.path('out/alpha'))).toBe(false);
    // The token is a secret: never in a log line.
    expect(proc.stderr()).not.toContain(TOKEN);
  });

  it('answers 400 with the lines `sluice validate` prints when the vars make the pipeline invalid', async () => {
    const res = await post('/api/pipelines/octo/runs', { vars: { PROVIDER: 'alpha', CONC: 'many' } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; details: string[] };
    expect(body.details[0]).toMatch(/^octo\.yaml:\d+:\d+: .*concurrency.*must be integer/);
    const validate = spawnSync(
      process.execPath,
      [SLUICE_BIN, 'validate', 'octo.yaml', '--var', 'PROVIDER=alpha', '--var', 'CONC=many'],
      { cwd: ws.dir, encoding: 'utf8' },
    );
    expect(validate.status).toBe(2);
    expect(body.details).toEqual(validate.stderr.trim().split('\n'));
    // A bad body is refused before anything loads.
    expect((await post('/api/pipelines/octo/runs', { vars: { PROVIDER: 1 } })).status).toBe(400);
    expect((await post('/api/pipelines/octo/runs', { speed: 'fast' })).status).toBe(400);
    expect((await post('/api/pipelines/nope/runs', {})).status).toBe(404);
  });

  it('runs with vars, follows it to the summary, queues a second run behind it, reports a failing file', async () => {
    const alpha = await startRun({ PROVIDER: 'alpha' });
    const beta = await startRun({ PROVIDER: 'beta' });
    expect(beta.state).toBe('queued');
    expect(beta.queue_position).toBe(1);

    // Percent as GET sees it, while the events stream is followed to its end.
    const percents: number[] = [];
    const betaStates = new Set<string>();
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const r = await runOf(alpha.run_id);
        percents.push(r.percent);
        if (!ended(r)) betaStates.add((await runOf(beta.run_id)).state);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const events = await readEvents(`/api/runs/${alpha.run_id}/events`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    polling = false;
    await poller;

    const types = events.map((e) => e.event);
    expect(types.filter((t) => t === 'started')).toHaveLength(24);
    expect(types.filter((t) => t === 'done')).toHaveLength(24);
    expect(types).toContain('progress');
    expect(types.at(-1)).toBe('summary');
    const summary = events.at(-1)?.data as unknown as Run;
    expect(summary).toMatchObject({ state: 'succeeded', total: 24, done: 24, failed: 0, percent: 100 });
    expect(summary.summary).toMatchObject({ ok: 24, failed: 0 });

    expect(percents[0]).toBe(0);
    expect(percents.at(-1)).toBe(100);
    expect(percents.some((p) => p > 0 && p < 100)).toBe(true);
    for (let i = 1; i < percents.length; i++) expect(percents[i]).toBeGreaterThanOrEqual(percents[i - 1]);
    // While alpha ran, beta waited in the queue and said so.
    expect([...betaStates][0]).toBe('queued');
    expect(listFiles(ws.path('out/alpha'))).toHaveLength(24);

    const b = await until(() => runOf(beta.run_id), ended, 20_000, 'the queued run to end');
    expect(Date.parse(b.started_at ?? '')).toBeGreaterThanOrEqual(Date.parse(summary.ended_at ?? ''));
    expect(b).toMatchObject({ state: 'failed', total: 7, done: 6, failed: 1, percent: 100 });
    expect(b.failures).toEqual([
      {
        source: 'local',
        path: 'bad-1.txt',
        code: 'SLUICE_E_PLUGIN',
        reason: expect.stringContaining('refused by the test: bad-1.txt'),
      },
    ]);
    const listed = await get<{ runs: Run[] }>('/api/runs?pipeline=octo');
    expect(listed.runs.map((r) => r.id)).toEqual([beta.run_id, alpha.run_id]);
  }, 40_000);

  it('cancel drains: in-flight items finish, no new ones start, the run ends cancelled', async () => {
    const gamma = await startRun({ PROVIDER: 'gamma' });
    await until(
      () => runOf(gamma.run_id),
      (r) => r.done >= 4,
      15_000,
      'a few items done',
    );
    const res = await post(`/api/runs/${gamma.run_id}/cancel`);
    expect(res.status).toBe(202);
    const r = await until(() => runOf(gamma.run_id), ended, 15_000, 'the cancelled run to end');
    expect(r).toMatchObject({ state: 'cancelled', cancel_requested: true, failed: 0 });
    expect(r.done).toBeLessThan(30);
    // Drained, not aborted: exactly the items reported done are at the sink, whole.
    const landed = listFiles(ws.path('out/gamma'));
    expect(landed).toHaveLength(r.done);
    for (const f of landed) expect(ws.read(`out/gamma/${f}`)).toMatch(/^gamma \d+\n$/);
    expect((await post(`/api/runs/${gamma.run_id}/cancel`)).status).toBe(409);
  }, 30_000);

  it('describes every route it serves in /api/openapi.json', async () => {
    const doc = await get<{ openapi: string; paths: Record<string, Record<string, unknown>> }>(
      '/api/openapi.json',
    );
    expect(doc.openapi).toBe('3.1.0');
    for (const route of ROUTES)
      expect(
        doc.paths[route.path]?.[route.method.toLowerCase()],
        `${route.method} ${route.path}`,
      ).toBeDefined();
    for (const path of ['/', '/status', '/metrics', '/healthz']) {
      expect(doc.paths[path]?.get, path).toBeDefined();
      expect((await fetch(base + path)).status, path).toBe(200);
    }
    // Nothing under /api/ answers that the document does not describe.
    expect((await fetch(`${base}/api/other`)).status).toBe(404);
    expect((await fetch(`${base}/api/pipelines`, { method: 'DELETE' })).status).toBe(401);
    expect((await fetch(`${base}/api/pipelines`, { method: 'DELETE', headers: auth })).status).toBe(405);
  });

  it('keeps the runs across a restart; without a token the control endpoints answer 403', async () => {
    const before = (await get<{ runs: Run[] }>('/api/runs?pipeline=octo')).runs;
    expect(before).toHaveLength(3);
    proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);

    proc = startWatch({}); // no token this time
    base = `http://127.0.0.1:${await statusPort(proc)}`;
    await until(
      () => get<{ runs: Run[] }>('/api/runs?pipeline=octo'),
      (b) => b.runs.length === 3,
      15_000,
      'the stored runs',
    );
    const after = (await get<{ runs: Run[] }>('/api/runs?pipeline=octo')).runs;
    expect(after.map((r) => [r.id, r.state, r.done, r.failed])).toEqual(
      before.map((r) => [r.id, r.state, r.done, r.failed]),
    );
    expect((await get<Run>(`/api/runs/${before[1].id}`)).failures[0].path).toBe('bad-1.txt');
    expect((await get<{ runs: Run[] }>('/api/runs?pipeline=other')).runs).toEqual([]);

    const refused = await post('/api/pipelines/octo/runs', { vars: { PROVIDER: 'alpha' } });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: string }).error).toMatch(
      /--api-token-file .*SLUICE_API_TOKEN/,
    );
    expect((await get<{ runs: Run[] }>('/api/runs')).runs).toHaveLength(3);
  }, 40_000);
});
