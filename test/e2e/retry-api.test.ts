/**
 * Replaying parked files through the control API (issue 17) against the real `sluice watch`:
 * a file that fails for good is parked (held back, listed once in /status with its reason),
 * `POST /api/pipelines/{name}/retry` after the cause is fixed re-opens it and queues a run that
 * delivers it; a path with no parked record is refused (400, named, nothing re-opened); no token
 * → 401; in cluster mode, 409 pointing to `sluice retry --cluster`. And on the status page (Chromium): the parked row, its "Retry" button delivers it
 * (screenshot: test-output/status-page-parked.png).
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterEnv } from '../helpers/cluster.js';
import { clusterSuite } from '../helpers/cluster-suite.js';
import { type SluiceProcess, startSluice, statusPort, until } from '../helpers/sluice-process.js';
import { deliveredFiles, listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';

const TOKEN = 'retry-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };
const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = join(import.meta.dirname, '..', '..', 'test-output');

/** Refuses items whose path contains `fail` while the file `flag` exists: the cause, fixed by deleting it. */
const GATE_PLUGIN = `import { existsSync } from 'node:fs';
export default {
  apiVersion: 1, name: 'gate', kind: 'step', summary: 'test: refuses some items while a flag file exists',
  config: { type: 'object', properties: { flag: { type: 'string' }, fail: { type: 'string' } }, additionalProperties: false },
  create(cfg) {
    return { async process(item) {
      if (item.path.includes(cfg.fail) && existsSync(cfg.flag)) throw new Error('refused while ' + cfg.flag + ' exists');
      return item;
    } };
  },
};
`;
const NIGHTLY = `name: nightly
plugins: [./gate.mjs]
source:
  local: { path: ./in }
steps:
  - gate: { flag: ./broken, fail: bad- }
sink:
  local: { path: ./out }
policy:
  retry: { max_attempts: 1 }
`;

const LIVE = `name: live
source:
  local: { path: ./live-in, watch: true }
sink:
  local: { path: ./live-out }
`;

interface Run {
  id: string;
  state: string;
  done: number;
  failed: number;
  summary: { ok: number; failed: number; parked: number } | null;
}
interface Parked {
  count: number;
  items: Array<{ source: string; path: string; error: string; since: string }>;
}

let ws: Workspace;
let proc: SluiceProcess;
let base: string;

const get = async <T>(path: string): Promise<T> => {
  const res = await fetch(base + path, { headers: auth });
  expect(res.status, `GET ${path}`).toBe(200);
  return (await res.json()) as T;
};
const post = (path: string, body: unknown, headers: Record<string, string> = auth) =>
  fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
const ended = (id: string) =>
  until(
    () => get<Run>(`/api/runs/${id}`),
    (r) => ['succeeded', 'failed', 'cancelled'].includes(r.state),
    20_000,
    `run ${id} to end`,
  );
const parkedNow = async () =>
  (await get<{ pipelines: Array<{ name: string; parked: Parked }> }>('/status')).pipelines.find(
    (p) => p.name === 'nightly',
  )?.parked;

beforeAll(async () => {
  ws = makeWorkspace('sluice-retry-api-');
  ws.write('gate.mjs', GATE_PLUGIN);
  ws.write('broken', 'the cause');
  ws.write('in/good.txt', 'good\n');
  ws.write('in/bad-1.txt', 'bad one\n');
  ws.write('in/bad-2.txt', 'bad two\n');
  ws.pipeline(NIGHTLY, 'nightly.yaml');
  ws.pipeline(LIVE, 'live.yaml');
  mkdirSync(ws.path('live-in'), { recursive: true });
  proc = startSluice(['watch', 'nightly.yaml', 'live.yaml', '--metrics-port', '0'], ws.dir, {
    SLUICE_API_TOKEN: TOKEN,
  });
  base = `http://127.0.0.1:${await statusPort(proc)}`;
  await until(
    () =>
      get<{ pipelines: Array<{ name: string; state: string; last_pass: { failed: number } | null }> }>(
        '/api/pipelines',
      ),
    (b) => b.pipelines.some((p) => p.name === 'nightly' && p.state === 'finished' && p.last_pass !== null),
    20_000,
    'the first pass',
  );
  // The second pass holds both bad files back: parked, each listed once.
  const res = await post('/api/pipelines/nightly/runs', {});
  expect(res.status).toBe(202);
  const second = await ended(((await res.json()) as { run_id: string }).run_id);
  expect(second.summary).toMatchObject({ ok: 0, failed: 0, parked: 2 });
}, 60_000);

afterAll(async () => {
  if (proc && proc.child.exitCode === null) {
    proc.kill('SIGKILL');
    await proc.exited;
  }
  ws?.cleanup();
});

describe('POST /api/pipelines/{name}/retry', () => {
  it('lists each parked file once in /status with its reason and since when', async () => {
    const parked = await parkedNow();
    expect(parked?.count).toBe(2);
    expect(parked?.items.map((i) => `${i.source}:${i.path}`).sort()).toEqual([
      'local:bad-1.txt',
      'local:bad-2.txt',
    ]);
    expect(parked?.items[0]?.error).toMatch(/refused while \.\/broken exists/);
    expect(Date.parse(parked?.items[0]?.since ?? '')).toBeLessThanOrEqual(Date.now());
  });

  it('refuses without a token (401), a bad body or path (400), an unknown pipeline (404), a watching one (409)', async () => {
    expect((await post('/api/pipelines/nightly/retry', { paths: ['bad-1.txt'] }, {})).status).toBe(401);
    const unknown = await post('/api/pipelines/nightly/retry', { paths: ['bad-1.txt', 'nope.txt'] });
    expect(unknown.status).toBe(400);
    const body = (await unknown.json()) as { error: string; details: string[] };
    expect(body.error).toBe('no parked (failed) record of "nope.txt" in pipeline "nightly"');
    expect(body.details).toEqual(['nope.txt']);
    expect((await post('/api/pipelines/nightly/retry', {})).status).toBe(400);
    expect((await post('/api/pipelines/nightly/retry', { all: true, paths: ['x'] })).status).toBe(400);
    expect((await post('/api/pipelines/nightly/retry', { paths: [3] })).status).toBe(400);
    expect((await post('/api/pipelines/nope/retry', { all: true })).status).toBe(404);
    const live = await post('/api/pipelines/live/retry', { all: true });
    expect(live.status).toBe(409);
    expect(((await live.json()) as { error: string }).error).toMatch(
      /watches its source.*nothing was re-opened/,
    );
    // Nothing was re-opened (bad-1.txt was named next to the unknown path): still two parked, no run.
    expect((await parkedNow())?.count).toBe(2);
    expect((await get<{ runs: Run[] }>('/api/runs')).runs).toHaveLength(1);
  });

  it('replays a parked file once its cause is fixed: the run succeeds and the file is at the sink', async () => {
    rmSync(ws.path('broken'));
    const res = await post('/api/pipelines/nightly/retry', { paths: ['bad-1.txt'] });
    const accepted = (await res.json()) as { run_id: string; href: string; reopened: string[] };
    expect(res.status, JSON.stringify(accepted)).toBe(202);
    expect(accepted.reopened).toEqual(['local:bad-1.txt']);
    expect(accepted.href).toBe(`/api/runs/${accepted.run_id}`);
    const run = await ended(accepted.run_id);
    expect(run.state).toBe('succeeded');
    expect(run.summary).toMatchObject({ ok: 1, failed: 0, parked: 1 });
    expect(listFiles(ws.path('out')).sort()).toEqual(['bad-1.txt', 'good.txt']);
    expect(ws.read('out/bad-1.txt')).toBe('bad one\n');
    expect((await parkedNow())?.items.map((i) => i.path)).toEqual(['bad-2.txt']);
  });
});

describe('status page', () => {
  let browser: Browser | undefined;
  afterAll(async () => browser?.close());

  it('shows the parked row with its reason, and its Retry button (token asked once) delivers it', async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `${CHROMIUM} is missing: this test needs Debian's chromium (sudo apt-get install -y chromium)`,
      );
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    const page = await browser.newPage();
    const prompts: string[] = [];
    page.on('dialog', (dialog) => {
      prompts.push(dialog.message());
      void dialog.accept(TOKEN);
    });
    await page.goto(base);
    const row = page.locator('[data-pipeline="nightly"] table.parked tr[data-path="local:bad-2.txt"]');
    await row.waitFor({ timeout: 10_000 });
    expect(await row.locator('td.reason').textContent()).toMatch(/refused while \.\/broken exists/);
    expect(await row.textContent()).toMatch(/since \d+[smh] ago/);
    expect(await page.locator('[data-pipeline="nightly"] h3.parked-head').textContent()).toMatch(
      /Parked \(1\)/,
    );
    expect(
      await page.locator('[data-pipeline="nightly"] button.retry', { hasText: 'Retry all' }).isVisible(),
    ).toBe(true);
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, 'status-page-parked.png'), fullPage: true });
    await row.locator('button.retry').click();
    await until(
      () => deliveredFiles(ws.path('out')).length,
      (n) => n === 3,
      20_000,
      'bad-2.txt delivered',
    );
    expect(ws.read('out/bad-2.txt')).toBe('bad two\n');
    expect(prompts).toHaveLength(1);
    await page
      .locator('[data-pipeline="nightly"] .notice', { hasText: /1 parked item\(s\) re-opened; run/ })
      .waitFor();
    // Once the run's pass has ended, nothing is parked any more: the section is gone.
    await page
      .locator('[data-pipeline="nightly"] table.parked')
      .waitFor({ state: 'detached', timeout: 10_000 });
  });
});

describe('in cluster mode', () => {
  const suite = clusterSuite('sluice-retry-api-cluster-');
  let watch: SluiceProcess | undefined;
  afterAll(async () => {
    if (watch && watch.child.exitCode === null) {
      watch.kill('SIGKILL');
      await watch.exited;
    }
  });

  it('answers 409: the parked records are in Redis, replayed with `sluice retry --cluster`', async () => {
    suite.ws.pipeline(
      'name: nightly\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n',
      'nightly.yaml',
    );
    mkdirSync(suite.ws.path('in'), { recursive: true });
    const env = clusterEnv({ SLUICE_API_TOKEN: TOKEN });
    watch = startSluice(
      ['watch', 'nightly.yaml', '--cluster', suite.redis.url, '--metrics-port', '0'],
      suite.ws.dir,
      Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)),
    );
    const api = `http://127.0.0.1:${await statusPort(watch)}/api/pipelines`;
    await until(
      async () => ((await (await fetch(api)).json()) as { pipelines: Array<{ state: string }> }).pipelines,
      (p) => p.length === 1 && p[0]?.state !== 'starting',
      30_000,
      'the pipeline to start over the cluster',
    );
    const url = `${api}/nightly/retry`;
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ all: true }),
    });
    const body = (await res.json()) as { error: string };
    expect(res.status, JSON.stringify(body)).toBe(409);
    expect(body.error).toMatch(/cluster workers.*sluice retry <file> --cluster <url>/);
  }, 60_000);
});
