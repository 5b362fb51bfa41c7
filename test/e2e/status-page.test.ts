/**
 * The status page in a real browser (Debian's chromium driven by playwright-core): what a user
 * sees at a glance — pipeline names, states, counts, a failure with its reason, the last
 * reload — and it refreshes by itself. A screenshot is saved to test-output/status-page.png.
 * And the control API from the page: "Run now" asks for the token once, the run's bar goes to
 * 100 % and the run is listed with its outcome (screenshot: test-output/status-page-run.png; with
 * SLUICE_DOCS_SCREENSHOTS=1 it refreshes docs/status-page-run.png).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SluiceProcess, sleep, startSluice, statusPort, until } from '../helpers/sluice-process.js';
import { deliveredFiles, listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = join(import.meta.dirname, '..', '..', 'test-output');
// The docs' copy is refreshed only when asked (SLUICE_DOCS_SCREENSHOTS=1): a test run leaves the tree as it was.
const DOCS =
  process.env.SLUICE_DOCS_SCREENSHOTS === '1' ? join(import.meta.dirname, '..', '..', 'docs') : OUTPUT;

let ws: Workspace;
let proc: SluiceProcess;
let browser: Browser;
let port: number;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the status page test needs Debian's chromium (sudo apt-get install -y chromium)`,
    );
  }
  ws = makeWorkspace('sluice-status-');
  for (let i = 0; i < 12; i++)
    ws.write(`orders-in/order-${i}.csv.gz`, gzipSync(`id,amount\n${i},${i * 10}\n`));
  ws.write('orders-in/truncated.csv.gz', gzipSync('id,amount\n1,2\n').subarray(0, 12));
  ws.write('reports-in/r1.txt', 'report one');
  ws.write('reports-in/r2.txt', 'report two');
  ws.pipeline(
    'name: orders\nsource:\n  local: { path: ./orders-in, watch: true, min_age: 100ms }\nsteps:\n  - decompress: {}\nsink:\n  local: { path: ./orders-out }\npolicy:\n  retry: { max_attempts: 1 }\n',
    'orders.yaml',
  );
  ws.pipeline(
    'name: reports\nsource:\n  local: { path: ./reports-in, watch: true, min_age: 100ms }\nsink:\n  local: { path: ./reports-out }\n',
    'reports.yaml',
  );
  proc = startSluice(['watch', '.', '--metrics-port', '0', '--debounce', '50'], ws.dir);
  port = await statusPort(proc);
  await until(
    () => deliveredFiles(ws.path('orders-out')).length + deliveredFiles(ws.path('reports-out')).length,
    (n) => n === 14,
    20_000,
    'both pipelines to copy their files',
  );
  // An invalid edit: the page must show it was rejected and the old version kept.
  writeFileSync(
    ws.path('reports.yaml'),
    'name: reports\nsource:\n  local: { path: ./reports-in, watch: yes please }\nsink:\n  local: { path: ./reports-out }\n',
  );
  await proc.waitForLog(
    (l) => String(l.msg).startsWith('reload rejected'),
    10_000,
    'the invalid edit to be rejected',
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

describe('status page', () => {
  it('shows each pipeline, its counts, a failure with its reason and the last reload', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`http://127.0.0.1:${port}/`);
    const orders = page.locator('section[data-pipeline="orders"]');
    const reports = page.locator('section[data-pipeline="reports"]');
    await orders.waitFor({ timeout: 10_000 });

    await expect.poll(() => orders.locator('h2').textContent()).toBe('orders');
    expect(await reports.locator('h2').textContent()).toBe('reports');
    expect(await orders.locator('.state').textContent()).toBe('running');
    const figure = (card: typeof orders, label: string) =>
      card.locator('.fig', { hasText: label }).locator('b').textContent();
    expect(await figure(orders, 'ok')).toBe('12');
    expect(await figure(orders, 'failed')).toBe('1');
    expect(await figure(reports, 'ok')).toBe('2');

    const failure = orders.locator('table.failures tr').first();
    expect(await failure.textContent()).toContain('local:truncated.csv.gz');
    expect(await failure.locator('.reason').textContent()).toMatch(
      /^\[SLUICE_E_[A-Z_]+\] .*(unexpected end|truncated|corrupt)/i,
    );

    const reload = await reports.locator('.reload').textContent();
    expect(reload).toMatch(/^rejected, previous version kept: reports\.yaml:3:\d+: .*watch: must be boolean/);
    expect(await page.locator('#meta').textContent()).toMatch(/^v\d+\.\d+\.\d+ · watch · pid \d+/);

    // It refreshes by itself: a new file shows up without reloading the page.
    ws.write('reports-in/r3.txt', 'report three');
    await expect.poll(() => figure(reports, 'ok'), { timeout: 10_000 }).toBe('3');

    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, 'status-page.png'), fullPage: true });
    expect(existsSync(join(OUTPUT, 'status-page.png'))).toBe(true);
  }, 40_000);
});

describe('status page: Run now', () => {
  it('starts a run with the token asked once, shows its bar reach 100 % and the run with its outcome', async () => {
    const token = 'page-token-0123456789abcdef';
    const run = makeWorkspace('sluice-status-run-');
    let p: SluiceProcess | undefined;
    try {
      // A step that takes its time per file, so the bar is seen moving (a third-party plugin).
      run.write(
        'slow.mjs',
        "export default { apiVersion: 1, name: 'slow', kind: 'step', summary: 'test: waits', config: { type: 'object' }, create() { return { async process(item) { await new Promise((r) => setTimeout(r, 150)); return item; } }; } };\n",
      );
      mkdirSync(run.path('in'), { recursive: true });
      // Every day at 03:00 (its first pass runs at start): the page's run comes between passes.
      run.pipeline(
        "name: invoices\nplugins: [./slow.mjs]\ntrigger: { cron: '0 3 * * *' }\nsource:\n  local: { path: ./in }\nsteps:\n  - slow: {}\nsink:\n  local: { path: ./out }\npolicy:\n  concurrency: 2\n",
        'invoices.yaml',
      );
      p = startSluice(['watch', '.', '--metrics-port', '0'], run.dir, { SLUICE_API_TOKEN: token });
      const runPort = await statusPort(p);
      const page = await browser.newPage({ viewport: { width: 900, height: 720 } });
      const prompts: string[] = [];
      page.on('dialog', (dialog) => {
        prompts.push(dialog.message());
        void dialog.accept(token);
      });
      await page.goto(`http://127.0.0.1:${runPort}/`);
      const card = page.locator('section[data-pipeline="invoices"]');
      await expect.poll(() => card.locator('.state').textContent(), { timeout: 10_000 }).toBe('waiting');
      // Files that arrive after the scheduled pass: the next one is hours away, "Run now" takes them.
      for (let i = 0; i < 16; i++) run.write(`in/invoice-${i}.csv`, `id,total\n${i},${i * 3}\n`);

      await card.locator('button.run-now').click();
      // The bar of the pass in progress moves, then the run's bar stands at 100 %.
      const seen: number[] = [];
      await until(
        async () => {
          const value = await card
            .locator('.pass')
            .getAttribute('data-percent')
            .catch(() => null);
          if (value !== null) seen.push(Number(value));
          return card
            .locator('table.runs .outcome')
            .first()
            .textContent()
            .catch(() => null);
        },
        (outcome) => outcome === 'succeeded',
        20_000,
        'the run to succeed on the page',
      );
      await expect.poll(() => card.locator('.pass').getAttribute('data-percent')).toBe('100');
      expect(seen.some((v) => v > 0 && v < 100)).toBe(true);
      expect(await card.locator('.pass .label').textContent()).toMatch(
        /^100 % · succeeded · 16 ok, 0 failed/,
      );
      expect(listFiles(run.path('out'))).toHaveLength(16);
      expect(prompts).toHaveLength(1);
      expect(prompts[0]).toMatch(/token/i);

      await page.screenshot({ path: join(DOCS, 'status-page-run.png') });
      expect(existsSync(join(DOCS, 'status-page-run.png'))).toBe(true);

      // The token is kept for the tab: a second run asks nothing.
      await card.locator('button.run-now').click();
      await expect.poll(() => card.locator('table.runs tr').count(), { timeout: 10_000 }).toBe(2);
      await sleep(200);
      expect(prompts).toHaveLength(1);
      await expect
        .poll(() => card.locator('table.runs .outcome').first().textContent(), { timeout: 10_000 })
        .toBe('succeeded');
    } finally {
      if (p && p.child.exitCode === null) {
        p.kill('SIGTERM');
        await p.exited;
      }
      run.cleanup();
    }
  }, 60_000);
});
