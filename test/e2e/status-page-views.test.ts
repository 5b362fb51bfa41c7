/**
 * The status page as issue 15 item 8 asks (Debian's chromium through playwright-core, a real
 * `sluice watch`): readable at 1280 px and on a phone (390 px: nothing wider than the screen,
 * times such as "11s ago" on one line), a file failing pass after pass listed once with its
 * count, the last pass ("nothing new") told apart from the last delivery, and the last reload
 * state true (a rejected edit reverted no longer shows the rejection). Screenshots go to
 * test-output/ (docs/ with SLUICE_DOCS_SCREENSHOTS=1).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SluiceProcess, startSluice, statusPort, until } from '../helpers/sluice-process.js';
import { listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = join(import.meta.dirname, '..', '..', 'test-output');
const SHOTS =
  process.env.SLUICE_DOCS_SCREENSHOTS === '1' ? join(import.meta.dirname, '..', '..', 'docs') : OUTPUT;

let ws: Workspace;
let proc: SluiceProcess;
let browser: Browser;
let port: number;

const QUIET = `name: quiet
description: a pipeline with nothing new after its first pass
trigger: { every: 600ms }
source:
  local: { path: ./quiet-in }
sink:
  local: { path: ./quiet-out }
`;

interface Status {
  pipelines: Array<{
    name: string;
    totals: { passes: number };
    lastReload: { result: string } | null;
    recentFailures: Array<{ path: string; count: number }>;
  }>;
}

async function status(): Promise<Status> {
  return (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as Status;
}

const pipeline = async (name: string) => (await status()).pipelines.find((p) => p.name === name)!;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (sudo apt-get install -y chromium)`);
  ws = makeWorkspace('sluice-status-views-');
  ws.write('orders-in/order-1.csv.gz', gzipSync('id,amount\n1,10\n'));
  ws.write(
    'orders-in/truncated-order-with-a-long-name-2026-12-01.csv.gz',
    gzipSync('id\n1\n').subarray(0, 12),
  );
  ws.write('quiet-in/q.txt', 'quiet');
  // Tried again every pass: without grouping it would be a row per pass.
  ws.pipeline(
    'name: orders\ntrigger: { every: 600ms }\nsource:\n  local: { path: ./orders-in }\nsteps:\n  - decompress: {}\nsink:\n  local: { path: ./orders-out }\npolicy:\n  retry: { max_attempts: 1 }\n  failed: retry_every_pass\n',
    'orders.yaml',
  );
  ws.pipeline(QUIET, 'quiet.yaml');
  proc = startSluice(['watch', '.', '--metrics-port', '0', '--debounce', '50'], ws.dir);
  port = await statusPort(proc);
  await until(
    async () => (await pipeline('orders'))?.recentFailures[0]?.count ?? 0,
    (n) => n >= 3,
    20_000,
    'the truncated file to fail three passes',
  );
  await until(
    async () => (await pipeline('quiet'))?.totals.passes ?? 0,
    (n) => n >= 2,
    10_000,
    'a quiet pass with nothing new',
  );
  // A rejected edit, then the file as it was: the reload state must say so.
  writeFileSync(
    ws.path('quiet.yaml'),
    QUIET.replace('{ path: ./quiet-in }', '{ path: ./quiet-in, watch: maybe }'),
  );
  await proc.waitForLog((l) => String(l.msg).startsWith('reload rejected'), 10_000, 'the bad edit');
  writeFileSync(ws.path('quiet.yaml'), QUIET);
  await until(
    async () => (await pipeline('quiet')).lastReload?.result,
    (r) => r === 'unchanged',
    10_000,
    'the reverted file to be re-read',
  );
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (proc && proc.child.exitCode === null) {
    proc.kill('SIGTERM');
    await proc.exited;
  }
  ws?.cleanup();
});

async function open(width: number, height: number): Promise<Page> {
  const page = await browser.newPage({ viewport: { width, height } });
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.locator('section[data-pipeline="orders"] table.failures').waitFor({ timeout: 10_000 });
  return page;
}

/**
 * What would make the page hard to read at this width: a page wider than the screen, a time,
 * state, figure or count over several lines, a path squeezed into a sliver. Runs in the page
 * (a string: the test files are compiled without the DOM's types).
 */
const LAYOUT_PROBLEMS = `(() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) problems.push('page ' + doc.scrollWidth + 'px wide');
  const lines = (e) => {
    const range = document.createRange();
    range.selectNodeContents(e);
    return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
  };
  for (const e of document.querySelectorAll('td.when, .state, .fig b, .count'))
    if (lines(e) > 1) problems.push('"' + e.textContent + '" wraps over ' + lines(e) + ' lines');
  for (const e of document.querySelectorAll('td:first-child')) {
    const width = e.getBoundingClientRect().width;
    if (width < 90) problems.push('"' + e.textContent + '" squeezed to ' + width + 'px');
  }
  return problems;
})()`;

async function layoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(LAYOUT_PROBLEMS) as Promise<string[]>;
}

describe('status page views', () => {
  for (const [width, height, name] of [
    [1280, 900, 'status-page-desktop.png'],
    [390, 844, 'status-page-phone.png'],
  ] as const) {
    it(`is readable at ${width} px: nothing wider than the screen, times on one line`, async () => {
      const page = await open(width, height);
      expect(await layoutProblems(page)).toEqual([]);
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, name), fullPage: true });
      await page.close();
    });
  }

  it('lists a file failing pass after pass once, with its count', async () => {
    const page = await open(1280, 900);
    const rows = page.locator('section[data-pipeline="orders"] table.failures tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain(
      'local:truncated-order-with-a-long-name-2026-12-01.csv.gz',
    );
    expect(
      Number((await rows.first().locator('.count').textContent())?.replace('×', '')),
    ).toBeGreaterThanOrEqual(3);
    await page.close();
  });

  it('tells "nothing new" in the last pass apart from the last delivery', async () => {
    const page = await open(1280, 900);
    const quiet = page.locator('section[data-pipeline="quiet"] .lastpass');
    expect(await quiet.textContent()).toMatch(
      /^last pass: nothing new \(1 done before\), \d+s ago · last delivered: \d+s ago$/,
    );
    const orders = page.locator('section[data-pipeline="orders"] .lastpass');
    expect(await orders.textContent()).toMatch(
      /^last pass: 0 delivered, 1 failed, \d+s ago · last delivered: \d+s ago$/,
    );
    expect(listFiles(ws.path('quiet-out'))).toEqual(['q.txt']);
    await page.close();
  });

  it('shows the last reload as it is: a rejected edit reverted is no longer a rejection', async () => {
    const page = await open(1280, 900);
    const reload = await page.locator('section[data-pipeline="quiet"] .reload').textContent();
    expect(reload).toMatch(/^file re-read: same as the running version [0-9a-f]+ \(\d+s ago\)$/);
    expect(reload).not.toMatch(/rejected/);
    await page.close();
  });
});
