/**
 * The runtime's side of issue 14 on real servers: the destination pre-check reads from SFTP
 * only what an S3 bucket does not hold yet (SFTP reads counted), and verify fails a copy whose
 * mtime the SFTP server could not keep.
 */
import { existsSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSummary } from '../../core/observe/summary.js';
import { runPipelineFile } from '../../core/sdk.js';
import { sftpSource } from '../../plugins/sftp/source.js';
import { countingSource } from '../helpers/counting-source.js';
import { REMOTE_CONNECTORS, type RemoteServer } from '../helpers/remote-fs-connectors.js';
import { testRegistry } from '../helpers/test-plugins.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-runtime-precheck';

let sftp: RemoteServer;
let s3: S3rverHandle;
let ws: Workspace;
const reads: string[] = [];

const countingSftp = countingSource(sftpSource, 'counting_sftp', reads);
const run = (file: string) =>
  runPipelineFile(file, { registry: testRegistry().extend([{ plugin: countingSftp, origin: 'test' }]) });

beforeAll(async () => {
  [sftp, s3] = await Promise.all([
    REMOTE_CONNECTORS.find((c) => c.protocol === 'sftp')!.start('sluice-rtconn'),
    startS3rver(),
  ]);
  await s3.createBucket(BUCKET);
  ws = makeWorkspace();
});

afterAll(async () => {
  ws?.cleanup();
  await Promise.all([sftp?.stop(), s3?.stop()]);
});

const s3Sink = (extra: string) =>
  [
    'sink:',
    '  s3:',
    `    bucket: ${BUCKET}`,
    `    endpoint: ${s3.endpoint}`,
    '    access_key_id: S3RVER',
    '    secret_access_key: S3RVER',
    extra,
  ].join('\n');

describe('destination pre-check: sftp → s3', () => {
  it('a migration into a bucket holding half the files reads only the other half from SFTP', async () => {
    // Six drops on the SFTP server (whole seconds: SFTP keeps no more).
    const when = (i: number) => new Date(Date.UTC(2024, 0, 1 + i, 12, 0, 0));
    for (let i = 0; i < 6; i++) {
      sftp.put(`drop/f${i}.csv`, `id,value\n${i},${'x'.repeat(i * 10)}\n`, when(i));
      // What the old tool (rclone, keeping mtimes in metadata) already uploaded: the first three.
      if (i < 3) {
        ws.write(`old/f${i}.csv`, `id,value\n${i},${'x'.repeat(i * 10)}\n`);
        utimesSync(ws.path(`old/f${i}.csv`), when(i), when(i));
      }
    }
    const old = ws.pipeline(
      `name: old-tool\nsource:\n  local: { path: ./old }\n${s3Sink('    prefix: mig/')}\n`,
      'old.yaml',
    );
    expect(await run(old)).toMatchObject({ ok: 3, failed: 0 });

    reads.length = 0;
    const migration = ws.pipeline(
      [
        'name: migration',
        'source:',
        '  counting_sftp:',
        ...sftp.yaml(),
        `    path: ${sftp.path('drop')}`,
        s3Sink('    prefix: mig/\n    if_exists: skip'),
      ].join('\n'),
      'migration.yaml',
    );
    const summary = await run(migration);
    expect(summary).toMatchObject({ ok: 6, failed: 0, alreadyAtDestination: 3, filesWritten: 3 });
    expect(reads.sort()).toEqual(['f3.csv', 'f4.csv', 'f5.csv']);
    expect(formatSummary(summary)).toContain('6 ok (3 already at destination, not read)');
  });

  it('with if_exists: fail, an object of another size fails the item before SFTP is read', async () => {
    sftp.put('clash/report.csv', 'the new report\n', new Date(Date.UTC(2024, 5, 1)));
    ws.write('clash-old/report.csv', 'an older, longer report already in the bucket\n');
    const old = ws.pipeline(
      `name: clash-old\nsource:\n  local: { path: ./clash-old }\n${s3Sink('    prefix: clash/')}\n`,
      'clash-old.yaml',
    );
    expect(await run(old)).toMatchObject({ ok: 1 });
    reads.length = 0;
    const file = ws.pipeline(
      [
        'name: clash',
        'source:',
        '  counting_sftp:',
        ...sftp.yaml(),
        `    path: ${sftp.path('clash')}`,
        s3Sink('    prefix: clash/\n    if_exists: fail'),
      ].join('\n'),
      'clash.yaml',
    );
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 0, failed: 1 });
    expect(summary.failures[0]).toMatchObject({ code: 'SLUICE_E_EXISTS', path: 'report.csv' });
    expect(reads).toEqual([]);
  });
});

describe('mtime verified: local → sftp', () => {
  it('fails a copy whose mtime the server could not keep (year 2200, SFTP v3 has 32-bit seconds)', async () => {
    ws.write('far/far.txt', 'from the future\n');
    const far = new Date('2200-01-01T00:00:00.000Z');
    utimesSync(ws.path('far/far.txt'), far, far);
    const yaml = (verify: string) =>
      [
        `name: far-${verify}`,
        'source:',
        '  local: { path: ./far }',
        'sink:',
        '  sftp:',
        ...sftp.yaml(),
        `    path: ${sftp.path(`far-${verify}`)}`,
        `    verify: ${verify}`,
      ].join('\n');
    const summary = await run(ws.pipeline(yaml('size'), 'far-size.yaml'));
    expect(summary).toMatchObject({ ok: 0, failed: 1 });
    expect(summary.failures[0].code).toBe('SLUICE_E_VERIFY');
    expect(summary.failures[0].error).toContain("differs from the source's 2200-01-01T00:00:00.000Z");
    expect(existsSync(join(sftp.rootDir, 'far-size', 'far.txt'))).toBe(false);
    expect(ws.files('far')).toEqual(['far.txt']);
    // verify: none accepts what the server kept.
    expect(await run(ws.pipeline(yaml('none'), 'far-none.yaml'))).toMatchObject({ ok: 1, failed: 0 });
  });
});
