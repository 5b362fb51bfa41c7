/**
 * Pass reports (`report:`, issue 14 item 8) through the real CLI: the pass summary written once
 * per pass through a sink — local and S3 (s3rver) — at a destination template, only after every
 * item of the pass has ended (the ledger's finalize times are earlier than the report), with
 * the content of `--summary-json`; never in a dry run; an earlier report never replaced; a
 * drained pass reports what it did; a report that cannot be written fails nothing delivered but
 * shows in the summary, the exit code and an alert; and `validate` refuses a bad report block.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SLOW_PLUGIN } from '../helpers/slow-plugin.js';
import { startSluice, statusPort, until } from '../helpers/sluice-process.js';
import { getObject, listKeys, runCli, s3rverClient, s3rverEnv } from '../helpers/workflows.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'reports';
let s3: S3rverHandle;
let client: S3Client;
let hook: Server;
let hookPort: number;
const alerts: string[] = [];

beforeAll(async () => {
  s3 = await startS3rver();
  await s3.createBucket(BUCKET);
  client = s3rverClient(s3);
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      alerts.push(body);
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  hookPort = (hook.address() as AddressInfo).port;
});

afterAll(async () => {
  await s3?.stop();
  await new Promise((resolve) => hook.close(resolve));
});

/** A workspace with `n` input files and the slow step plugin beside its pipelines. */
function workspace(n: number): Workspace {
  const ws = makeWorkspace('sluice-report-');
  for (let i = 0; i < n; i++) ws.write(`in/f${i}.csv`, `id\n${i}\n`.repeat(i + 1));
  ws.write('slow.mjs', SLOW_PLUGIN);
  return ws;
}

function pipeline(name: string, report: string, slowMs = 150): string {
  return `name: ${name}
plugins: [./slow.mjs]
source:
  local: { path: ./in }
steps:
  - slow: { ms: ${slowMs} }
sink:
  local: { path: ./out }
policy: { concurrency: 2 }
${report}`;
}

/** A `report:` block through the local sink (`sink`: its config) at `to`. */
const localReport = (to: string, sink = 'path: ./stats') =>
  `report:\n  sink:\n    local: { ${sink} }\n  to: "${to}"\n`;

/** A `report:` block through the s3 sink (s3rver, from the environment) under `prefix`. */
const s3Report = (prefix: string, to: string) =>
  [
    'report:',
    '  sink:',
    '    s3:',
    `      bucket: ${BUCKET}`,
    `      prefix: ${prefix}`,
    '      region: us-east-1',
    '      endpoint: ${S3_ENDPOINT}',
    '      access_key_id: ${S3_ACCESS_KEY_ID}',
    '      secret_access_key: ${S3_SECRET_ACCESS_KEY}',
    `  to: "${to}"`,
    '',
  ].join('\n');

/** The finalize times the ledger recorded for the pass's items (ms). */
function finalizedAt(ws: Workspace, name: string): number[] {
  const db = new Database(ws.path('.sluice', 'ledger.sqlite'), { readonly: true });
  try {
    const rows = db
      .prepare(`SELECT updated_at FROM items WHERE pipeline = ? AND state = 'finalized'`)
      .all(name) as Array<{ updated_at: number }>;
    return rows.map((r) => r.updated_at);
  } finally {
    db.close();
  }
}

/** What `--summary-json` wrote, without the line saying where the report went. */
function summaryOf(file: string): Record<string, unknown> {
  const { report: _where, ...summary } = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  return summary;
}

describe('pass report through the local sink', () => {
  it('writes the summary once per pass, after the last item is finalized, never over an earlier one', async () => {
    const ws = workspace(5);
    ws.pipeline(
      pipeline(
        'rep-local',
        `report:
  sink:
    local: { path: ./stats }
  to: "{now:%Y/%m}/{pipeline}-{now:%Y%m%d}.json"
`,
      ),
    );
    const first = await runCli(['run', 'pipeline.yaml', '--summary-json', 'summary1.json'], ws.dir, {});
    expect(first.code, first.stderr).toBe(0);
    const month = new Date().toISOString().slice(0, 7).replace('-', '/');
    const day = new Date().toISOString().slice(0, 10).replace(/-/g, '');
    const name = `${month}/rep-local-${day}.json`;
    expect(ws.files('stats')).toEqual([name]);
    const report = JSON.parse(ws.read(`stats/${name}`)) as Record<string, unknown>;
    expect(report).toEqual(summaryOf(ws.path('summary1.json')));
    expect(report).toMatchObject({ pipeline: 'rep-local', ok: 5, failed: 0, filesWritten: 5 });
    // The report is written after every item of the pass was finalized.
    const finals = finalizedAt(ws, 'rep-local');
    expect(finals).toHaveLength(5);
    // File times come from the kernel's coarse clock (a tick behind Date.now()): 20 ms of slack.
    expect(statSync(ws.path('stats', name)).mtimeMs).toBeGreaterThanOrEqual(Math.max(...finals) - 20);
    // The run's own summary says where its report went.
    expect(JSON.parse(ws.read('summary1.json')).report).toEqual({
      destination: name,
      location: ws.path('stats', ...name.split('/')),
    });

    // The next pass (same day, so the same name) gets a numbered twin; the first stays as it was.
    ws.write('in/late.csv', 'id\nlate\n');
    const second = await runCli(['run', 'pipeline.yaml', '--summary-json', 'summary2.json'], ws.dir, {});
    expect(second.code, second.stderr).toBe(0);
    const twin = name.replace('.json', ' (1).json');
    expect(ws.files('stats').sort()).toEqual([twin, name].sort());
    expect(JSON.parse(ws.read(`stats/${name}`))).toEqual(report);
    expect(JSON.parse(ws.read(`stats/${twin}`))).toEqual(summaryOf(ws.path('summary2.json')));
    expect(JSON.parse(ws.read(`stats/${twin}`))).toMatchObject({ ok: 1, skipped: 5 });
    ws.cleanup();
  });

  it('writes no report in a dry run', async () => {
    const ws = workspace(2);
    ws.pipeline(pipeline('rep-dry', localReport('{pipeline}.json'), 10));
    const plan = await runCli(['run', 'pipeline.yaml', '--dry-run'], ws.dir, {});
    expect(plan.code, plan.stderr).toBe(0);
    expect(ws.files('stats')).toEqual([]);
    expect(ws.files('out')).toEqual([]);
    ws.cleanup();
  });

  it('a drained pass (SIGTERM) reports what it did, marked interrupted', async () => {
    const ws = workspace(8);
    ws.pipeline(
      pipeline('rep-drain', localReport('{pipeline}.json'), 700).replace('concurrency: 2', 'concurrency: 1'),
    );
    const run = startSluice(['run', 'pipeline.yaml', '--summary-json', 'summary.json'], ws.dir);
    await run.waitForLog(
      (l) => typeof l.msg === 'string' && l.msg.startsWith('done '),
      20_000,
      'a first file',
    );
    run.kill('SIGTERM');
    await run.exited;
    const report = JSON.parse(ws.read('stats/rep-drain.json')) as Record<string, unknown>;
    expect(report).toEqual(summaryOf(ws.path('summary.json')));
    expect(report.interrupted).toBe(true);
    expect(report.ok).toBeGreaterThanOrEqual(1);
    expect(report.ok).toBeLessThan(8);
    expect(ws.files('out')).toHaveLength(report.ok as number);
    ws.cleanup();
  });

  it('a pass that fails as a whole (its listing) reports the counts it reached and why', async () => {
    const ws = workspace(0);
    ws.pipeline(
      pipeline('rep-failed', localReport('{pipeline}.json'), 10).replace('path: ./in }', 'path: ./gone }'),
    );
    // --no-check: the start check would refuse the missing folder before any pass.
    const run = await runCli(['run', 'pipeline.yaml', '--no-check'], ws.dir, {});
    expect(run.code).not.toBe(0);
    const report = JSON.parse(ws.read('stats/rep-failed.json')) as Record<string, unknown>;
    expect(report).toMatchObject({ pipeline: 'rep-failed', ok: 0, failed: 0, interrupted: false });
    expect(report.error).toContain('ENOENT');
    ws.cleanup();
  });

  it('a report that cannot be written fails no file: exit 1, the summary and an alert say so', async () => {
    const ws = workspace(3);
    writeFileSync(ws.path('blocker'), 'a file where the report folder should be\n');
    ws.pipeline(
      pipeline(
        'rep-broken',
        `report:
  sink:
    local: { path: ./blocker/stats }
  to: "{pipeline}.json"
alerts:
  targets:
    - webhook: { url: "http://127.0.0.1:${hookPort}/hook" }
`,
        10,
      ),
    );
    const before = alerts.length;
    const run = await runCli(
      ['run', 'pipeline.yaml', '--summary-json', 'summary.json', '--log-format', 'pretty'],
      ws.dir,
      {},
    );
    expect(run.code, run.stderr).toBe(1);
    expect(ws.files('out')).toHaveLength(3);
    const summary = JSON.parse(ws.read('summary.json')) as Record<string, unknown>;
    expect(summary).toMatchObject({ ok: 3, failed: 0 });
    expect(summary.report).toMatchObject({ destination: 'rep-broken.json', code: 'SLUICE_E_CONFIG' });
    expect((summary.report as { error: string }).error).toContain('ENOTDIR');
    expect(run.stdout).toContain('REPORT NOT WRITTEN rep-broken.json');
    const sent = alerts.slice(before).join('\n');
    expect(sent).toContain('report was not written to rep-broken.json');
    // The files stay delivered: the next pass has nothing to do.
    expect(finalizedAt(ws, 'rep-broken')).toHaveLength(3);
    ws.cleanup();
  });
});

describe('pass report of passes run by sluice watch', () => {
  it('the first pass and a pass asked for through the control API each write one; a dry one none', async () => {
    const ws = workspace(3);
    ws.write('in-beta/b.csv', 'id\nbeta\n');
    ws.pipeline(
      pipeline('rep-watch', localReport('{pipeline}-{now:%Y%m%d}.json'), 10).replace(
        'path: ./in }',
        'path: "./in${FROM:-}" }',
      ),
    );
    const token = 'report-test-token-0123456789';
    const watch = startSluice(['watch', 'pipeline.yaml', '--metrics-port', '0'], ws.dir, {
      SLUICE_API_TOKEN: token,
    });
    try {
      const base = `http://127.0.0.1:${await statusPort(watch)}`;
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      await until(
        () => ws.files('stats'),
        (f) => f.length === 1,
        20_000,
        'the first pass to report',
      );
      const run = async (body: unknown) => {
        const res = await fetch(`${base}/api/pipelines/rep-watch/runs`, {
          method: 'POST',
          headers,
          body: JSON.stringify(body),
        });
        expect(res.status).toBe(202);
        const { run_id } = (await res.json()) as { run_id: string };
        return until(
          async () =>
            (await (await fetch(`${base}/api/runs/${run_id}`, { headers })).json()) as { state: string },
          (r) => r.state === 'succeeded' || r.state === 'failed',
          20_000,
          'the run to end',
        );
      };
      expect(await run({ vars: { FROM: '-beta' }, dry_run: true })).toMatchObject({ state: 'succeeded' });
      expect(ws.files('stats')).toHaveLength(1);
      expect(await run({ vars: { FROM: '-beta' } })).toMatchObject({ state: 'succeeded' });
      const reports = ws.files('stats').sort();
      expect(reports).toHaveLength(2);
      const contents = reports.map((f) => JSON.parse(ws.read(`stats/${f}`)) as Record<string, unknown>);
      expect(contents.map((c) => c.ok).sort()).toEqual([1, 3]);
    } finally {
      watch.kill('SIGTERM');
      await watch.exited;
      ws.cleanup();
    }
  });
});

describe('pass report validation', () => {
  const validate = async (report: string) => {
    const ws = workspace(0);
    ws.pipeline(pipeline('rep-invalid', report, 10));
    const result = await runCli(['validate', 'pipeline.yaml'], ws.dir, {});
    ws.cleanup();
    return result;
  };

  it('checks the report sink against its plugin schema at /report/sink/…', async () => {
    const r = await validate(localReport('{pipeline}.json', 'pth: ./stats'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('/report/sink/local/pth: unknown key "pth"');
    expect(r.stderr).toContain('did you mean "path"');
  });

  it('refuses if_exists: skip on the report sink', async () => {
    const r = await validate(localReport('{pipeline}.json', 'path: ./stats, if_exists: skip'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('/report/sink/local/if_exists: a report is never skipped');
  });

  it('compiles the template: a placeholder of a file, a path out of the sink root, a bad format', async () => {
    const item = await validate(localReport('{name}.json'));
    expect(item.code).toBe(2);
    expect(item.stderr).toContain('/report/to');
    expect(item.stderr).toContain('{now:…} and {pipeline} only');
    const outside = await validate(localReport('../{pipeline}.json'));
    expect(outside.code).toBe(2);
    expect(outside.stderr).toContain('escapes the sink root');
    const format = await validate(localReport('{pipeline}-{now:YYYY}.json'));
    expect(format.code).toBe(2);
    expect(format.stderr).toContain('write {now:%Y}');
    const unknown = await validate(localReport('{pipelin}.json'));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown placeholder "{pipelin}"');
  });

  it('refuses a report sink writing where the source lists', async () => {
    const r = await validate(localReport('{pipeline}.json', 'path: ./in/stats'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('/report/sink/local/path');
  });
});

describe('pass report through the S3 sink (s3rver)', () => {
  it('puts one object per pass, after the last item, holding the summary', async () => {
    const ws = workspace(4);
    ws.pipeline(pipeline('rep-s3', s3Report('stats', '{now:%Y/%m}/{pipeline}-{now:%Y%m%dT%H%M%S}.json')));
    const env = s3rverEnv(s3);
    const first = await runCli(['run', 'pipeline.yaml', '--summary-json', 'summary1.json'], ws.dir, env);
    expect(first.code, first.stderr).toBe(0);
    const keys = await listKeys(client, BUCKET, 'stats/');
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^stats\/\d{4}\/\d{2}\/rep-s3-\d{8}T\d{6}\.json$/);
    const report = JSON.parse((await getObject(client, BUCKET, keys[0])).toString()) as Record<
      string,
      unknown
    >;
    expect(report).toEqual(summaryOf(ws.path('summary1.json')));
    expect(report).toMatchObject({ ok: 4, failed: 0 });
    // S3 keeps whole seconds: the object is no older than the second of the last finalize.
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: keys[0] }));
    const lastFinal = Math.max(...finalizedAt(ws, 'rep-s3'));
    expect(head.LastModified!.getTime()).toBeGreaterThanOrEqual(Math.floor(lastFinal / 1000) * 1000);

    // A second pass, a second object; the first is untouched.
    ws.write('in/more.csv', 'id\nmore\n');
    const second = await runCli(['run', 'pipeline.yaml', '--summary-json', 'summary2.json'], ws.dir, env);
    expect(second.code, second.stderr).toBe(0);
    const after = await listKeys(client, BUCKET, 'stats/');
    expect(after).toHaveLength(2);
    expect(after).toContain(keys[0]);
    const newer = after.find((k) => k !== keys[0])!;
    expect(JSON.parse((await getObject(client, BUCKET, newer)).toString())).toEqual(
      summaryOf(ws.path('summary2.json')),
    );
    expect(JSON.parse((await getObject(client, BUCKET, keys[0])).toString())).toEqual(report);
    ws.cleanup();
  });

  it('writes no object in a dry run', async () => {
    const ws = workspace(2);
    ws.pipeline(pipeline('rep-s3-dry', s3Report('dry', '{pipeline}.json'), 10));
    const plan = await runCli(['run', 'pipeline.yaml', '--dry-run'], ws.dir, s3rverEnv(s3));
    expect(plan.code, plan.stderr).toBe(0);
    expect(await listKeys(client, BUCKET, 'dry/')).toEqual([]);
    ws.cleanup();
  });
});
