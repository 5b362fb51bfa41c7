/**
 * The "done means" (15.4 + 15.6) against real servers: connections live in one
 * sluice.config.yaml shared by three pipelines (an SFTP drop on OpenSSH sshd, an S3 store and
 * an S3 archive on s3rver); the archive's bucket is missing. `sluice check .` names that one
 * connection (exit 2) and proves the others; `sluice run` of the pipeline using it stops at
 * start with one error, before any file is touched; the other pipelines run.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listTree, writeTree } from '../helpers/remote-fs-fixtures.js';
import { runCli } from '../helpers/workflows.js';
import { makeWorkspace } from '../helpers/workspace.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';
import { type SshdHandle, startSshd } from '../servers/sshd.js';

const ws = makeWorkspace('sluice-check-servers-');
let s3: S3rverHandle;
let sshd: SshdHandle;
const env = () => ({ ACME_PASSWORD: sshd.password });
const outgoing = () => join(sshd.rootDir, 'outgoing');

beforeAll(async () => {
  [s3, sshd] = await Promise.all([startS3rver(), startSshd()]);
  await s3.createBucket('cdr-store');
  const uid = Number(execFileSync('id', ['-u', sshd.username]).toString());
  const gid = Number(execFileSync('id', ['-g', sshd.username]).toString());
  writeTree(
    join(sshd.rootDir, 'outgoing'),
    { 'a.csv': Buffer.from('a\n'), 'b.csv': Buffer.from('b\n') },
    uid,
    gid,
  );
  const store = (bucket: string) =>
    `    s3:\n      bucket: ${bucket}\n      endpoint: ${s3.endpoint}\n      region: us-east-1\n      access_key_id: S3RVER\n      secret_access_key: S3RVER\n`;
  ws.write(
    'sluice.config.yaml',
    `connections:\n  acme:\n    sftp:\n      host: ${sshd.host}\n      port: ${sshd.port}\n      username: ${sshd.username}\n      password: \${ACME_PASSWORD}\n      host_key_sha256: "${sshd.hostKeySha256}"\n  cdr_store:\n${store('cdr-store')}  archive:\n${store('cdr-archive')}`,
  );
  ws.pipeline(
    `name: pull\nsource:\n  sftp: { connection: acme, path: ${outgoing()} }\nsink:\n  s3: { connection: cdr_store, prefix: incoming/ }\n`,
    'pull.yaml',
  );
  ws.pipeline(
    'name: segregate\nsource:\n  s3: { connection: cdr_store, prefix: incoming/ }\nsink:\n  s3: { connection: cdr_store, prefix: segregated/ }\n',
    'segregate.yaml',
  );
  ws.pipeline(
    `name: archive\nsource:\n  sftp: { connection: acme, path: ${outgoing()} }\nsink:\n  s3: { connection: archive }\n`,
    'archive.yaml',
  );
}, 60_000);

afterAll(async () => {
  await Promise.all([s3?.stop(), sshd?.stop()]);
  ws.cleanup();
});

describe('three pipelines sharing one connections file', () => {
  it('sluice check names the one broken connection', async () => {
    const r = await runCli(['check', '.'], ws.dir, env());
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stdout.split('\n').filter(Boolean);
    const failed = lines.filter((l) => l.trimStart().startsWith('✗'));
    expect(failed).toEqual([
      expect.stringMatching(/^ {2}✗ sink s3 archive@cdr-archive — .*cdr-archive.* does not exist/),
    ]);
    expect(lines.filter((l) => l.trimStart().startsWith('✓'))).toHaveLength(5);
    expect(lines.find((l) => l.includes('✓ source sftp'))).toContain(
      `acme@${sshd.host}:${sshd.port}${outgoing()} — logged in as ${sshd.username}`,
    );
    expect(r.stdout + r.stderr).not.toContain(sshd.password);
    expect(listTree(outgoing())).toEqual(['a.csv', 'b.csv']);
  });

  it('run stops at start on the broken connection, touching nothing; the others run', async () => {
    const broken = await runCli(['run', 'archive.yaml', '--log-format', 'json'], ws.dir, env());
    expect(broken.code).toBe(2);
    const errors = broken.stderr.split('\n').filter((l) => l.includes('pre-flight check failed'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /^\[archive sink\.s3\] pre-flight check failed: sink s3 archive@cdr-archive — /,
    );
    expect(listTree(outgoing())).toEqual(['a.csv', 'b.csv']);

    const pulled = await runCli(['run', 'pull.yaml', '--log-format', 'json'], ws.dir, env());
    expect(pulled.code, pulled.stderr).toBe(0);
    const copied = await runCli(['run', 'segregate.yaml', '--log-format', 'json'], ws.dir, env());
    expect(copied.code, copied.stderr).toBe(0);
    expect(copied.stderr).toContain('"ok":2');
  });
});
