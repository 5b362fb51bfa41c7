/**
 * Data-safety issue, items 10 and 11, through the CLI.
 *
 * Secrets by their form: an http source whose (pasted, presigned) download URL carries a userinfo
 * password and X-Amz-Credential/Security-Token/Signature, against a server that fails the
 * download with an S3-style error body quoting other credentials (an sftp URL with a password,
 * an Azure SAS `sig`, a canonical query string). None of them is under a key the schema marks
 * secret, nor in an environment variable: they are found by their form. Every output is
 * searched: stdout/stderr of `run` (JSON and pretty), `plan`, `validate` and `history`, the log
 * files, the summary JSON, the dead-letter `.error.json` and the ledger.
 *
 * Runaway schedules: `every: 30d` is further ahead than one timer can wait (2^31-1 ms); it
 * overflowed to 1 ms and ran pass after pass.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SLUICE_BIN, startSluice } from '../helpers/sluice-process.js';
import { listFiles, makeWorkspace } from '../helpers/workspace.js';

const SECRETS = {
  URL_PASSWORD: 'Url-Pass-SECRET-4411',
  AMZ_CREDENTIAL: 'AKIASECRETCRED0001',
  AMZ_TOKEN: 'IQoJb3JpZ2luSECRETtoken77',
  AMZ_SIGNATURE: 'f00dSECRETsig2e5d1c0ffee',
  BODY_PASSWORD: 'Body-Pass-SECRET-9090',
  BODY_SAS_SIG: 'BodySasSECRETsig%2Bq%3D',
  BODY_AMZ_SIGNATURE: 'BodyAmzSECRETsig5150',
} as const;

const ws = makeWorkspace('sluice-safety-secrets-');
let server: Server;
const outputs: Array<{ label: string; code: number | null; text: string }> = [];

function sluice(label: string, args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SLUICE_BIN, ...args], {
      cwd: ws.dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      text += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      outputs.push({ label, code, text });
      resolve(code);
    });
  });
}

const output = (label: string) => outputs.find((o) => o.label === label)?.text ?? '';

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/api/list') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ files: [{ name: 'report.csv', size: 5 }] }));
      return;
    }
    // What S3 and its mirrors answer a bad presigned request with: the request's own query.
    res.writeHead(404, { 'content-type': 'application/xml' });
    res.end(
      `<Error><Code>NoSuchKey</Code><Message>moved to sftp://mirror:${SECRETS.BODY_PASSWORD}@10.0.0.9/in or https://acct.blob.core.windows.net/c/report.csv?sv=2022-11-02&sig=${SECRETS.BODY_SAS_SIG}</Message><CanonicalQueryString>X-Amz-Credential=${SECRETS.AMZ_CREDENTIAL}&amp;X-Amz-Signature=${SECRETS.BODY_AMZ_SIGNATURE}</CanonicalQueryString></Error>`,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const download =
    `http://dl-user:${SECRETS.URL_PASSWORD}@127.0.0.1:${port}/dl/{path}?X-Amz-Algorithm=AWS4-HMAC-SHA256` +
    `&X-Amz-Credential=${SECRETS.AMZ_CREDENTIAL}%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Security-Token=${SECRETS.AMZ_TOKEN}&X-Amz-Signature=${SECRETS.AMZ_SIGNATURE}`;
  ws.pipeline(
    `name: presigned\nsource:\n  http:\n    list:\n      url: "http://127.0.0.1:${port}/api/list"\n      items: files\n      fields: { path: name, size: size }\n    download:\n      url: "${download}"\nsink:\n  local: { path: ./out }\non_error:\n  local: { path: ./dead }\npolicy:\n  retry: { max_attempts: 1 }\n`,
    'presigned.yaml',
  );
  ws.write('logs/.keep', '');
  await sluice('run json', [
    'run',
    'presigned.yaml',
    '--log-format',
    'json',
    '--log-file',
    'logs/run.log',
    '--error-log',
    'logs/errors.log',
    '--summary-json',
    'logs/summary.json',
  ]);
  await sluice('run pretty', ['run', 'presigned.yaml', '--log-format', 'pretty', '--force']);
  await sluice('plan', ['plan', 'presigned.yaml', '--force']);
  await sluice('validate', ['validate', 'presigned.yaml']);
  await sluice('history', ['history', 'presigned.yaml']);
  await sluice('history json', ['history', 'presigned.yaml', '--log-format', 'json']);
}, 120_000);

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  ws.cleanup();
});

describe('secrets in URLs and signatures are masked in every output (#10)', () => {
  it('the item failed with an error that quoted the URLs (so the secrets were in the messages)', () => {
    expect(outputs.find((o) => o.label === 'run json')?.code).toBe(1);
    expect(outputs.find((o) => o.label === 'run pretty')?.code).toBe(1);
    expect(outputs.find((o) => o.label === 'validate')?.code).toBe(0);
    const pretty = output('run pretty');
    expect(pretty).toMatch(/FAILED http:report\.csv \[SLUICE_E_SOURCE\] .*HTTP 404/);
    // The http plugin's display form masks the user name too; redact() alone keeps it.
    expect(pretty).toMatch(/http:\/\/(dl-user|\*\*\*):\*\*\*@127\.0\.0\.1:/);
    expect(pretty).toContain('X-Amz-Signature=***');
    expect(pretty).toContain('sftp://mirror:***@10.0.0.9/in');
    expect(pretty).toContain('&sig=***');
    expect(output('history')).toMatch(/failed\s+http:report\.csv .*HTTP 404 .*(dl-user|\*\*\*):\*\*\*@/);
    expect(listFiles(ws.path('dead'))).toEqual(['http/report.csv.error.json']);
    const reason = JSON.parse(readFileSync(ws.path('dead', 'http', 'report.csv.error.json'), 'utf8')) as {
      error: string;
    };
    expect(reason.error).toContain('X-Amz-Credential=***');
  });

  it('no secret value appears in stdout/stderr, logs, the summary JSON, the dead letter or the ledger', () => {
    const leaks: string[] = [];
    const check = (where: string, text: string) => {
      for (const [name, value] of Object.entries(SECRETS)) {
        for (const form of new Set([value, decodeURIComponent(value)]))
          if (text.includes(form)) leaks.push(`${name} in ${where}`);
      }
    };
    for (const o of outputs) check(`output of ${o.label}`, o.text);
    const written = listFiles(ws.dir).filter((f) => !f.endsWith('.yaml'));
    expect(written).toEqual(
      expect.arrayContaining([
        'logs/run.log',
        'logs/errors.log',
        'logs/summary.json',
        'dead/http/report.csv.error.json',
      ]),
    );
    expect(written.some((f) => f.startsWith('.sluice/'))).toBe(true);
    for (const f of written) check(f, readFileSync(ws.path(f)).toString('latin1'));
    expect(leaks).toEqual([]);
  });
});

describe('a schedule further ahead than one timer can wait (#11)', () => {
  it('every: 30d runs exactly one pass, then waits', async () => {
    const sched = makeWorkspace('sluice-safety-schedule-');
    try {
      sched.write('in/a.txt', 'a');
      sched.pipeline(
        'name: monthly\ntrigger: { every: 30d }\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n',
        'monthly.yaml',
      );
      const proc = startSluice(['run', 'monthly.yaml', '--log-format', 'json'], sched.dir);
      try {
        await proc.waitForLog((l) => l.msg === 'pass finished', 15_000, 'the first pass');
        // Overflowed to 1 ms, the timer ran thousands of passes in this time.
        await new Promise((resolve) => setTimeout(resolve, 3000));
        expect(proc.logs.filter((l) => l.msg === 'pass finished')).toHaveLength(1);
        expect(proc.stderr()).not.toContain('TimeoutOverflowWarning');
        expect(listFiles(sched.path('out'))).toEqual(['a.txt']);
      } finally {
        proc.kill('SIGTERM');
        expect(await proc.exited).toBe(0);
      }
    } finally {
      sched.cleanup();
    }
  }, 30_000);
});
