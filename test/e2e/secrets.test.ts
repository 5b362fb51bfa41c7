/**
 * Secrets never leave Sluice: pipelines whose items fail next to distinctive passwords,
 * passphrases, tokens, keys and connection strings (from env vars and inline in the YAML) run
 * through the CLI with JSON and pretty logs, --log-file, --error-log, --summary-json and a
 * dead-letter sink; then every byte of output, every log, summary, dead-letter reason and the
 * ledger is searched for the secret values. Failures are provoked without servers: a wrong
 * passphrase, closed local ports, an unparsable key, invalid configs.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listFiles, makeWorkspace } from '../helpers/workspace.js';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'sluice.js');
const ws = makeWorkspace('sluice-secrets-');
const home = ws.path('gnupg');

const SECRETS = {
  KEY_PASSPHRASE: 'Right-Key-Passphrase-Qx81',
  WRONG_PASSPHRASE: 'Wrong-Passphrase-XyZ-9981',
  API_TOKEN: 'tok-SECRET-api-7f3a9c0e',
  QUERY_TOKEN: 'qtok-SECRET-55aa17',
  S3_SECRET: 's3-SECRET-wJalrXUtnFEMI-K7MDENG',
  AZURE_ACCOUNT_KEY: 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=',
  SFTP_PASSWORD: 'Sftp-Password-SECRET-42x',
  PRIVATE_KEY_BODY: 'PrivKey-SECRET-garbage-0099',
  HTTP_SINK_KEY: 'Header-ApiKey-SECRET-77q',
  INLINE_CONN_KEY: 'Inline-AccountKey-SECRET-000',
  REDIS_PASSWORD: 'Redis-Pass-SECRET-931',
  INVALID_CFG_PASSWORD: 'Invalid-Config-Password-SECRET-5',
} as const;

let closedPort: number;
const outputs: Array<{ label: string; code: number | null; text: string }> = [];

function gpg(args: string[]): Buffer {
  return execFileSync('gpg', ['--homedir', home, '--batch', '--yes', '--trust-model', 'always', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** A port nothing listens on: bound once, then released. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Runs the CLI; SIGKILLs it after `killAfterMs` (a run that cannot end on its own). */
function sluice(label: string, args: string[], killAfterMs = 90_000): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: ws.dir,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        API_TOKEN: SECRETS.API_TOKEN,
        QUERY_TOKEN: SECRETS.QUERY_TOKEN,
        S3_SECRET: SECRETS.S3_SECRET,
        AZURE_CONN: `DefaultEndpointsProtocol=http;AccountName=devacct;AccountKey=${SECRETS.AZURE_ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:${closedPort}/devacct;`,
        SFTP_PASSWORD: SECRETS.SFTP_PASSWORD,
      },
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      text += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      outputs.push({ label, code, text });
      resolve(code);
    });
  });
}

const policy = 'policy:\n  retry: { max_attempts: 1 }\n';
const deadLetter = 'on_error:\n  local: { path: ./dead }\n';

beforeAll(async () => {
  closedPort = await freePort();
  execFileSync('mkdir', ['-m', '700', home]);
  ws.write(
    'key.params',
    `Key-Type: eddsa\nKey-Curve: ed25519\nSubkey-Type: ecdh\nSubkey-Curve: cv25519\nName-Real: K\nName-Email: k@example.com\nExpire-Date: 0\nPassphrase: ${SECRETS.KEY_PASSPHRASE}\n%commit\n`,
  );
  // The passphrase on the command line as well: loopback answers the agent's every ask with it
  // (from the parameters alone, gpg failed once under load: "we are in batchmode - can't get input").
  gpg([
    '--pinentry-mode',
    'loopback',
    '--passphrase',
    SECRETS.KEY_PASSPHRASE,
    '--gen-key',
    ws.path('key.params'),
  ]);
  ws.write(
    'keys/k.asc',
    gpg([
      '--pinentry-mode',
      'loopback',
      '--passphrase',
      SECRETS.KEY_PASSPHRASE,
      '--armor',
      '--export-secret-keys',
      'k@example.com',
    ]),
  );
  ws.write('plain.csv', 'id,value\n1,2\n');
  ws.write('in/report.csv', 'id,value\n1,2\n');
  gpg(['-r', 'k@example.com', '-o', ws.path('in', 'report.csv.gpg'), '-e', ws.path('plain.csv')]);

  const p = (name: string, body: string) => ws.pipeline(`name: ${name}\n${body}`, `${name}.yaml`);
  for (const engine of ['gpg', 'openpgp']) {
    p(
      `pgp-${engine}`,
      `source:\n  local: { path: ./in, include: ["*.gpg"] }\nsteps:\n  - pgp_decrypt: { private_key_file: ./keys/k.asc, passphrase: "${SECRETS.WRONG_PASSPHRASE}", engine: ${engine} }\nsink:\n  local: { path: ./out-${engine} }\n${deadLetter.replace('./dead', `./dead-${engine}`)}${policy}`,
    );
  }
  p(
    'http-source',
    `source:\n  http:\n    list:\n      url: "http://127.0.0.1:${closedPort}/api/files?token=\${QUERY_TOKEN}"\n      headers: { Authorization: "Bearer \${API_TOKEN}" }\n      items: files\n      fields: { path: name }\n    download:\n      url: "http://127.0.0.1:${closedPort}/api/files/{path}?token=\${QUERY_TOKEN}"\nsink:\n  local: { path: ./out-http }\n${policy}`,
  );
  p(
    's3-sink',
    `source:\n  local: { path: ./in }\nsink:\n  s3:\n    bucket: bucket-x\n    endpoint: http://127.0.0.1:${closedPort}\n    access_key_id: AKIAEXAMPLEKEYID0001\n    secret_access_key: \${S3_SECRET}\n${deadLetter.replace('./dead', './dead-s3')}${policy}`,
  );
  p(
    'azure-sink',
    `source:\n  local: { path: ./in }\nsink:\n  azure_blob:\n    connection_string: \${AZURE_CONN}\n    container: container-x\n${policy}`,
  );
  p(
    'azure-bad-conn',
    `source:\n  local: { path: ./in }\nsink:\n  azure_blob:\n    connection_string: "AccountName=devacct;AccountKey=${SECRETS.INLINE_CONN_KEY};Garbage"\n    container: container-x\n`,
  );
  p(
    'sftp-source',
    `source:\n  sftp:\n    host: 127.0.0.1\n    port: ${closedPort}\n    username: u\n    password: \${SFTP_PASSWORD}\n    private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\\n${SECRETS.PRIVATE_KEY_BODY}\\n-----END OPENSSH PRIVATE KEY-----"\n    insecure_accept_any_host_key: true\nsink:\n  local: { path: ./out-sftp }\n`,
  );
  p(
    'http-sink',
    `source:\n  local: { path: ./in }\nsink:\n  http:\n    url: "http://127.0.0.1:${closedPort}/up/{path}?sig=\${QUERY_TOKEN}"\n    headers: { X-Api-Key: "${SECRETS.HTTP_SINK_KEY}", Authorization: "Bearer \${API_TOKEN}" }\n${deadLetter.replace('./dead', './dead-http')}${policy}`,
  );
  // Regression: the password was quoted by the error about `port` (secrets were registered only
  // once a plugin config had passed validation).
  p(
    'invalid-config',
    `source:\n  sftp:\n    host: 127.0.0.1\n    username: u\n    password: "${SECRETS.INVALID_CFG_PASSWORD}"\n    pasword: "${SECRETS.INVALID_CFG_PASSWORD}"\n    port: "${SECRETS.INVALID_CFG_PASSWORD}"\nsink:\n  local: { path: ./out }\n`,
  );

  const runs: Array<[string, string[]]> = [];
  for (const format of ['json', 'pretty']) {
    const files = (label: string) => [
      '--log-file',
      `logs/${label}-${format}.log`,
      '--error-log',
      `logs/${label}-${format}.errors.log`,
      '--summary-json',
      `logs/${label}-${format}.summary.json`,
    ];
    for (const name of [
      'pgp-gpg',
      'pgp-openpgp',
      'http-source',
      's3-sink',
      'azure-sink',
      'azure-bad-conn',
      'sftp-source',
      'http-sink',
      'invalid-config',
    ]) {
      // --no-check: the items fail one by one, so secrets are near each item's error message.
      runs.push([
        `${name} (${format})`,
        ['run', `${name}.yaml`, '--log-format', format, '--force', '--no-check', ...files(name)],
      ]);
    }
  }
  // The same wrong credentials refused by the pre-flight check at start: one error, exit 2.
  for (const name of ['s3-sink', 'azure-sink', 'sftp-source'])
    runs.push([
      `${name} pre-flight`,
      ['run', `${name}.yaml`, '--log-format', 'json', '--log-file', `logs/${name}-pre-flight.log`],
    ]);
  runs.push(['validate', ['validate', 'invalid-config.yaml', 'azure-bad-conn.yaml']]);
  runs.push(['plan', ['plan', 'http-sink.yaml', '--log-format', 'json']]);
  ws.write('logs/.keep', '');
  // A cluster URL with a password, Redis unreachable (gives up after 10 s), while the rest run.
  const cluster = sluice(
    'cluster url with a password',
    [
      'run',
      's3-sink.yaml',
      '--cluster',
      `redis://:${SECRETS.REDIS_PASSWORD}@127.0.0.1:${closedPort}`,
      '--log-format',
      'json',
    ],
    20_000,
  );
  // Two at a time: the machine is shared, and a few of these wait on SDK retries.
  for (let i = 0; i < runs.length; i += 2)
    await Promise.all(runs.slice(i, i + 2).map(([label, args]) => sluice(label, args)));
  await cluster;
}, 240_000);

afterAll(() => {
  execFileSync('gpgconf', ['--homedir', home, '--kill', 'all']);
  ws.cleanup();
});

describe('secrets stay out of every output', () => {
  it('the runs failed the way they should (so the secrets were near error messages)', () => {
    const code = (label: string) => outputs.find((o) => o.label === label)?.code;
    for (const format of ['json', 'pretty']) {
      for (const name of ['s3-sink', 'azure-sink', 'sftp-source', 'http-sink', 'http-source']) {
        expect(
          code(`${name} (${format})`),
          outputs.find((o) => o.label === `${name} (${format})`)?.text,
        ).toBe(1);
      }
      // A wrong passphrase is found when the step starts (the key is unlocked once): exit 2.
      for (const engine of ['gpg', 'openpgp']) {
        const run = outputs.find((o) => o.label === `pgp-${engine} (${format})`);
        expect(run?.code).toBe(2);
        expect(run?.text).toMatch(
          new RegExp(
            `\\[pgp-${engine} steps\\[0\\]\\.pgp_decrypt\\] (the passphrase does not unlock the private key|cannot unlock the private key: .*Incorrect key passphrase)`,
          ),
        );
      }
      expect(code(`invalid-config (${format})`)).toBe(2);
      expect(code(`azure-bad-conn (${format})`)).toBe(2);
    }
    for (const name of ['s3-sink', 'azure-sink', 'sftp-source']) {
      const run = outputs.find((o) => o.label === `${name} pre-flight`);
      expect(run?.code, run?.text).toBe(2);
      expect(run?.text).toContain('pre-flight check failed');
    }
    expect(code('validate')).toBe(2);
    const cluster = outputs.find((o) => o.label === 'cluster url with a password');
    expect(cluster?.text).toMatch(/^cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ within 10s/);
    expect(cluster?.code).not.toBe(0);
    const invalid = outputs.find((o) => o.label === 'invalid-config (pretty)')?.text ?? '';
    expect(invalid).toMatch(/invalid-config\.yaml:\d+:\d+: .*unknown key "pasword"/);
    expect(invalid).toMatch(/\/source\/sftp\/port: must be integer, got string "\*\*\*"/);
    // Dead letters were written, with their reasons.
    expect(listFiles(ws.path('dead-s3'))).toEqual([
      'local/report.csv',
      'local/report.csv.error.json',
      'local/report.csv.gpg',
      'local/report.csv.gpg.error.json',
    ]);
    expect(listFiles(ws.path('dead-http'))).toContain('local/report.csv.error.json');
    // Passes that ran wrote a summary (a source that cannot list, or an invalid config, ends the run before one).
    const summaries = listFiles(ws.path('logs')).filter((f) => f.endsWith('.summary.json'));
    expect(summaries).toEqual(
      ['azure-sink', 'http-sink', 's3-sink'].flatMap((n) => [
        `${n}-json.summary.json`,
        `${n}-pretty.summary.json`,
      ]),
    );
    expect(listFiles(ws.path('logs')).filter((f) => f.endsWith('.errors.log')).length).toBeGreaterThanOrEqual(
      10,
    );
  });

  it('no secret value appears in stdout/stderr, log files, error logs, summaries, dead-letter reasons or the ledger', () => {
    const leaks: string[] = [];
    const check = (where: string, text: string) => {
      for (const [name, value] of Object.entries(SECRETS)) {
        if (name === 'KEY_PASSPHRASE') continue; // never given to Sluice
        if (text.includes(value)) leaks.push(`${name} in ${where}`);
      }
    };
    for (const o of outputs) check(`output of ${o.label}`, o.text);
    const written = listFiles(ws.dir).filter(
      (f) =>
        !f.endsWith('.yaml') &&
        !f.startsWith('gnupg/') &&
        !f.startsWith('keys/') &&
        !f.startsWith('in/') &&
        f !== 'key.params',
    );
    expect(written.some((f) => f.startsWith('.sluice/'))).toBe(true); // the ledger is searched too
    expect(written.some((f) => f.endsWith('.error.json'))).toBe(true);
    for (const f of written) check(f, readFileSync(ws.path(f)).toString('latin1'));
    expect(leaks).toEqual([]);
  });
});
