/**
 * Alerts (issue 17, item 4) against a local HTTP receiver (node:http) and a local SMTP server
 * (smtp-server, in process): a pass with a failing file sends one alert to every target, a
 * second failure within min_interval is held back, a clean pass after it sends one `recovered`,
 * no registered secret appears in any body, a rejected reload and a missed deadline send one
 * alert each, and a target that fails never fails the pipeline.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinRegistry } from '../../core/builtins.js';
import type { Logger } from '../../core/observe/logger.js';
import type { RunSummary } from '../../core/observe/run-summary.js';
import { PipelineSupervisor } from '../../core/runtime/supervisor.js';
import { makeWorkspace, sha256 } from '../helpers/workspace.js';

const SECRET = 'Alert-Secret-8c1f2e';
process.env.ALERT_TEST_TOKEN = SECRET;

interface Received {
  path: string;
  body: string;
}

let http: Server;
let httpPort: number;
const posts: Received[] = [];
let smtp: SMTPServer;
let smtpPort: number;
const mails: string[] = [];

const ws = makeWorkspace('sluice-alerts-');

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

beforeAll(async () => {
  http = createServer(async (req, res) => {
    const body = await readBody(req);
    if (req.url === '/broken') {
      res.writeHead(500).end();
      return;
    }
    posts.push({ path: req.url ?? '', body });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  httpPort = (http.address() as AddressInfo).port;

  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push(Buffer.concat(chunks).toString('utf8'));
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  smtpPort = (smtp.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => http.close(resolve));
  await new Promise((resolve) => smtp.close(() => resolve(undefined)));
  ws.cleanup();
});

/** A logger that keeps warnings (a failing target is reported there). */
function recordingLogger(warnings: string[]): Logger {
  const log: Logger = {
    trace: () => undefined,
    debug: () => undefined,
    info: () => undefined,
    warn: (...args: unknown[]) => {
      warnings.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
    },
    error: () => undefined,
    fatal: () => undefined,
    child: () => log,
  } as unknown as Logger;
  return log;
}

const targets = () => [
  'alerts:',
  '  min_interval: 1h',
  '  targets:',
  `    - webhook: { url: "http://127.0.0.1:${httpPort}/hook", headers: { Authorization: "Bearer \${ALERT_TEST_TOKEN}" } }`,
  `    - slack: { url: "http://127.0.0.1:${httpPort}/slack" }`,
  `    - webhook: { url: "http://127.0.0.1:${httpPort}/broken" }`,
  `    - email: { smtp: { host: 127.0.0.1, port: ${smtpPort} }, from: "sluice@example.test", to: ops@example.test }`,
];

async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}

const of = (kind: string, path: string) =>
  posts.filter((p) => p.path === path && p.body.includes(kind === 'slack' ? '' : `"kind":"${kind}"`));

describe('alerts', () => {
  it('one alert per target for a failing pass, rate-limited; one when it recovers; no secret anywhere', async () => {
    ws.write('flow/in/good.csv', 'ok\n');
    ws.write('flow/in/good.csv.sha256', `${sha256('ok\n')}  good.csv\n`);
    // The name carries the secret: every registered secret is masked wherever it appears.
    ws.write(`flow/in/bad-${SECRET}.csv`, 'no companion\n');
    const file = ws.pipeline(
      [
        'name: nightly',
        'trigger: { every: 300ms }',
        'source:',
        '  local: { path: ./in, exclude: ["*.sha256"], after_success: delete }',
        'steps:',
        '  - checksum: { expect: companion }',
        'sink:',
        '  local: { path: ./out }',
        ...targets(),
        '',
      ].join('\n'),
      'flow/pipeline.yaml',
    );
    const warnings: string[] = [];
    const summaries: RunSummary[] = [];
    const supervisor = new PipelineSupervisor(file, {
      log: recordingLogger(warnings),
      registry: builtinRegistry(),
      onSummary: (s) => summaries.push(s),
    });
    try {
      await supervisor.start();
      await until(() => summaries.length >= 2, 'two passes');
      await until(() => mails.length >= 1 && of('failures', '/hook').length >= 1, 'the failure alerts');
      // A second file fails within min_interval: held back.
      ws.write('flow/in/worse.csv', 'no companion either\n');
      const before = summaries.length;
      await until(
        () => summaries.slice(before).some((s) => s.failures.some((f) => f.path === 'worse.csv')),
        'worse.csv failing',
      );
      // The failing files go away: the next clean pass is a recovery.
      const { rmSync } = await import('node:fs');
      rmSync(ws.path(`flow/in/bad-${SECRET}.csv`));
      rmSync(ws.path('flow/in/worse.csv'));
      await until(() => of('recovered', '/hook').length >= 1, 'the recovered alert');
      const settled = summaries.length;
      await until(() => summaries.length >= settled + 3, 'three more passes');
    } finally {
      await supervisor.stop();
    }

    expect(of('failures', '/hook')).toHaveLength(1);
    expect(of('recovered', '/hook')).toHaveLength(1);
    const hook = JSON.parse(of('failures', '/hook')[0].body);
    expect(hook).toMatchObject({ pipeline: 'nightly', kind: 'failures' });
    expect(hook.text).toContain('bad-***.csv');
    const slack = posts.filter((p) => p.path === '/slack').map((p) => JSON.parse(p.body));
    expect(slack).toHaveLength(2);
    expect(slack[0].text).toMatch(/^\*\[sluice\] nightly: 1 file\(s\) failed\*/);
    expect(slack[1].text).toContain('recovered');
    expect(mails).toHaveLength(2);
    expect(mails[0]).toMatch(/Subject: \[sluice\] nightly: 1 file\(s\) failed/);
    expect(mails[1]).toMatch(/Subject: \[sluice\] nightly: recovered/);
    for (const body of [...posts.map((p) => p.body), ...mails]) expect(body).not.toContain(SECRET);
    // The broken target was tried and logged; the pipeline went on.
    expect(warnings.some((w) => w.includes('alert not sent') && w.includes('HTTP 500'))).toBe(true);
    expect(summaries.at(-1)).toMatchObject({ failed: 0 });
  }, 60_000);

  it('a missed arrival fires one alert; a rejected reload fires one', async () => {
    posts.length = 0;
    mails.length = 0;
    const by = new Date(Date.now() + 3_000);
    const hhmmss = by.toISOString().slice(11, 19);
    const yaml = (name: string) =>
      [
        `name: ${name}`,
        'trigger: { every: 1h }',
        'source:',
        '  local: { path: ./in }',
        'sink:',
        '  local: { path: ./out }',
        `expect: { files: 1, by: "${hhmmss}", timezone: UTC }`,
        ...targets(),
        '',
      ].join('\n');
    ws.write('late/in/.keep-folder.tmp', '');
    const file = ws.pipeline(yaml('late'), 'late/pipeline.yaml');
    const supervisor = new PipelineSupervisor(file, {
      log: recordingLogger([]),
      registry: builtinRegistry(),
    });
    try {
      await supervisor.start();
      await until(() => of('missed_arrival', '/hook').length >= 1, 'the missed-arrival alert');
      ws.pipeline(`${yaml('late')}bogus_key: 1\n`, 'late/pipeline.yaml');
      expect((await supervisor.reload()).result).toBe('invalid');
      await until(() => of('reload_rejected', '/hook').length >= 1, 'the reload alert');
      await delay(1_500);
    } finally {
      await supervisor.stop();
    }
    expect(of('missed_arrival', '/hook')).toHaveLength(1);
    const missed = JSON.parse(of('missed_arrival', '/hook')[0].body);
    expect(missed.title).toBe(`[sluice] late: 0 of 1 expected file(s) by ${hhmmss} (UTC)`);
    expect(of('reload_rejected', '/hook')).toHaveLength(1);
    expect(JSON.parse(of('reload_rejected', '/hook')[0].body).text).toContain('bogus_key');
    expect(mails.filter((m) => m.includes('expected file(s)'))).toHaveLength(1);
  }, 60_000);

  it('a one-shot run whose pass fails as a whole sends an alert', async () => {
    posts.length = 0;
    ws.write('broken/in/a.csv', 'a\n');
    const file = ws.pipeline(
      [
        'name: broken',
        'source:',
        '  local: { path: ./in }',
        'sink:',
        '  local: { path: ./out }',
        ...targets(),
        '',
      ].join('\n'),
      'broken/pipeline.yaml',
    );
    const { rmSync } = await import('node:fs');
    const supervisor = new PipelineSupervisor(file, {
      log: recordingLogger([]),
      registry: builtinRegistry(),
      preflight: false, // the start check would catch the missing folder (next test)
    });
    const def = await supervisor.loadWith({});
    // The folder goes away after validation: the listing fails, and the pass with it.
    rmSync(ws.path('broken/in'), { recursive: true });
    await supervisor.start(def);
    await expect(supervisor.done).rejects.toThrow();
    // stop() rejects with what stopped a one-shot pipeline; the alert goes out all the same.
    await supervisor.stop().catch(() => undefined);
    await until(() => of('failures', '/hook').length >= 1, 'the failure alert');
    const failed = of('failures', '/hook').map((p) => JSON.parse(p.body));
    expect(failed).toHaveLength(1);
    expect(failed[0].title).toBe('[sluice] broken: a pass failed');
  }, 30_000);

  it('a one-shot run whose connection fails its start check sends an alert before it exits', async () => {
    posts.length = 0;
    ws.write('unchecked/README', 'the pipeline folder; its source folder ./nowhere is missing\n');
    const file = ws.pipeline(
      [
        'name: unchecked',
        'source:',
        '  local: { path: ./nowhere }',
        'sink:',
        '  local: { path: ./out }',
        ...targets(),
        '',
      ].join('\n'),
      'unchecked/pipeline.yaml',
    );
    const supervisor = new PipelineSupervisor(file, {
      log: recordingLogger([]),
      registry: builtinRegistry(),
    });
    await expect(supervisor.start()).rejects.toThrow(/pre-flight check failed: .*nowhere does not exist/);
    // start() waited for the alert: it is there already, not sent after the process would exit.
    const failed = of('failures', '/hook').map((p) => JSON.parse(p.body));
    expect(failed).toHaveLength(1);
    expect(failed[0].title).toBe('[sluice] unchecked: a pass failed');
    expect(failed[0].text ?? JSON.stringify(failed[0])).toMatch(/nowhere does not exist/);
  }, 30_000);
});
