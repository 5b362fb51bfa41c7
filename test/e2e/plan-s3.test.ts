/**
 * A dry run reads no bytes the real run would copy server-side (issue 15 item 7): S3 → S3 on
 * one endpoint, `plan` and `run --dry-run` against a real s3rver, GetObject requests counted in
 * its request log. An item whose bytes a step changes is read, as the real run reads it.
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/workflows.js';
import { makeWorkspace } from '../helpers/workspace.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'plan-s3';
const ws = makeWorkspace('sluice-plan-s3-');
let server: S3rverHandle;

beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket(BUCKET);
  const client = new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: server.credentials,
  });
  for (const name of ['a.csv', 'b.csv', 'c.csv'])
    await client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: `incoming/${name}`, Body: `rows of ${name}\n` }),
    );
  client.destroy();
});

afterAll(async () => {
  await server?.stop();
  ws.cleanup();
});

function pipeline(name: string, steps = ''): string {
  const conn = `    bucket: ${BUCKET}\n    endpoint: ${server.endpoint}\n    access_key_id: S3RVER\n    secret_access_key: S3RVER\n`;
  return ws.pipeline(
    `name: ${name}\nsource:\n  s3:\n${conn}    prefix: incoming/\n    after_success: delete\n${steps}sink:\n  s3:\n${conn}    prefix: archive/\n`,
    `${name}.yaml`,
  );
}

/** GetObject requests (a listing is a GET of the bucket with list-type=2). */
async function objectGets(): Promise<string[]> {
  return (await server.requests())
    .filter((r) => r.method === 'GET' && !r.url.includes('list-type=2'))
    .map((r) => r.url);
}

describe('dry run of an S3 → S3 copy on one endpoint', () => {
  it('plan counts each object from its listed size without a GetObject', async () => {
    pipeline('copy');
    await server.clearRequests();
    const r = await runCli(['plan', 'copy.yaml'], ws.dir, {});
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `s3:a.csv → a.csv\n  to: sink.s3 ${BUCKET}/archive/a.csv\n  then: source deleted`,
    );
    expect(r.stdout).toContain('3 item(s) to process (3 file(s) would be written, 42 B)');
    expect(await objectGets()).toEqual([]);
  });

  it('run --dry-run reads none either, and writes and deletes nothing', async () => {
    await server.clearRequests();
    const r = await runCli(['run', 'copy.yaml', '--dry-run', '--log-format', 'pretty'], ws.dir, {});
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/copy \(dry run\): 3 ok, .* 3 files would be written, 42 B in/);
    expect(await objectGets()).toEqual([]);
    const changes = (await server.requests()).filter((r) => r.method !== 'GET' && r.method !== 'HEAD');
    expect(changes).toEqual([]);
  });

  it('reads the objects whose bytes a step changes, as the real run does', async () => {
    pipeline('gzip', 'steps:\n  - compress: { format: gzip }\n');
    await server.clearRequests();
    const r = await runCli(['plan', 'gzip.yaml'], ws.dir, {});
    expect(r.code, r.stderr).toBe(0);
    expect((await objectGets()).length).toBe(3);
  });
});
