/**
 * Seed workflow "cdr-segregation" (pipelines/cdr-s3-segregation.yaml) against s3rver: CDR
 * objects under incoming/ are moved server-side into hourly folders parsed from their names,
 * the rest into errors/, and incoming/ is emptied — without a single byte downloaded.
 */
import { randomBytes } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../helpers/object-store.js';
import {
  getObject,
  inParallel,
  listKeys,
  runWorkflow,
  s3rverClient,
  s3rverEnv,
} from '../../helpers/workflows.js';
import { makeWorkspace, type Workspace } from '../../helpers/workspace.js';
import { type S3rverHandle, startS3rver } from '../../servers/s3rver.js';

const BUCKET = 'cdr-e2e';
let server: S3rverHandle;
let client: S3Client;
let ws: Workspace;
let env: Record<string, string>;

/** name → expected destination key and sha256 of its bytes. */
const expected = new Map<string, { key: string; sha: string }>();
/** Objects below incoming/ in a sub-folder: `recursive: false` must leave them alone. */
const NESTED = ['incoming/2024/CHARGINGCDR_nested-20240101-00_0001.ccn', 'incoming/late/readme.txt'];

function cdrBody(i: number): Buffer {
  // A few hundred records of ;-separated text plus some binary tail, like a real CCN dump.
  const lines = Array.from(
    { length: 20 + (i % 40) },
    (_, r) => `${i};${r};4670${(i * 7919 + r) % 1_000_000};${(r * 13) % 3600};OK`,
  );
  return Buffer.concat([Buffer.from(`${lines.join('\n')}\n`), randomBytes(64 + (i % 512))]);
}

/** 300 realistic CDR names (with and without the `-` before the hour) and some that do not match. */
function cdrNames(): Array<{ name: string; key: string | null }> {
  const out: Array<{ name: string; key: string | null }> = [];
  const nodes = ['CCN01', 'ccn-node-02', 'OCS7'];
  for (let i = 0; i < 300; i++) {
    const day = new Date(Date.UTC(2024, 0, 1) + i * 37 * 3_600_000); // walks hours and days across months
    const ymd = `${day.getUTCFullYear()}${String(day.getUTCMonth() + 1).padStart(2, '0')}${String(day.getUTCDate()).padStart(2, '0')}`;
    const hh = String(day.getUTCHours()).padStart(2, '0');
    const seq = String(i).padStart(5, '0');
    const node = nodes[i % nodes.length];
    const name =
      i % 2 === 0
        ? `CHARGINGCDR_${node}-${ymd}-${hh}${seq}.ccn`
        : `CHARGINGCDR_${node}-${ymd}${hh}_${seq}.ccn`;
    const folder = `${ymd.slice(0, 4)}/${ymd.slice(4, 6)}/${ymd.slice(6, 8)}/${hh}`;
    out.push({ name, key: `segregated/${folder}/${name}` });
  }
  for (const name of [
    'CHARGINGCDR_CCN01_nodate.ccn',
    'CHARGINGCDR_CCN01-20241399-07_00001.ccn', // month 13: not a date
    'chargingcdr_CCN01-20240301-07_00001.ccn', // wrong case
    'SMSCDR_CCN01-20240301-07_00001.ccn',
    'manifest.json',
    'CHARGINGCDR with space #1 %.ccn',
  ]) {
    out.push({ name, key: null });
  }
  return out;
}

beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket(BUCKET);
  client = s3rverClient(server);
  ws = makeWorkspace('sluice-wf-cdr-');
  env = { CDR_BUCKET: BUCKET, ...s3rverEnv(server) };
  const objects = cdrNames().map((o, i) => ({ ...o, body: cdrBody(i) }));
  for (const o of objects) expected.set(o.name, { key: o.key ?? `errors/${o.name}`, sha: sha256(o.body) });
  await inParallel(objects, 16, (o) =>
    client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `incoming/${o.name}`, Body: o.body })),
  );
  for (const key of NESTED) await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
  await server.clearRequests();
});

afterAll(async () => {
  client?.destroy();
  await server?.stop();
  ws?.cleanup();
});

describe('cdr-segregation workflow', () => {
  it('files every CDR into segregated/YYYY/MM/DD/HH, the rest into errors/, by server-side copy', async () => {
    const summary = await runWorkflow('cdr-s3-segregation', env, { stateDir: ws.path('state') });
    expect(summary.failures).toEqual([]);
    expect(summary).toMatchObject({ ok: expected.size, failed: 0, filesWritten: expected.size });

    const keys = await listKeys(client, BUCKET);
    const wanted = [...[...expected.values()].map((e) => e.key), ...NESTED].sort();
    expect(keys).toEqual(wanted);
    expect(keys.filter((k) => k.startsWith('segregated/'))).toHaveLength(300);
    expect(keys.filter((k) => k.startsWith('errors/'))).toHaveLength(6);

    // Both name shapes land in the same kind of hour folder.
    expect(keys).toContain('segregated/2024/01/01/00/CHARGINGCDR_CCN01-20240101-0000000.ccn');
    expect(keys).toContain('segregated/2024/01/02/13/CHARGINGCDR_ccn-node-02-2024010213_00001.ccn');

    // Server-side copy: the only GETs were listings (bucket URL with a query), never an object.
    const log = await server.requests();
    const objectGets = log.filter((r) => r.method === 'GET' && !/^\/[^/]+\/?$/.test(r.url.split('?')[0]));
    expect(objectGets).toEqual([]);
    expect(log.filter((r) => r.copy).length).toBeGreaterThanOrEqual(expected.size);
  });

  it('keeps every byte: sha256 of each moved object equals the original', async () => {
    await inParallel([...expected.values()], 16, async ({ key, sha }) => {
      expect(sha256(await getObject(client, BUCKET, key)), key).toBe(sha);
    });
  });

  it('leaves nothing in incoming/ but the sub-folders it must not descend into, and a rerun does nothing', async () => {
    expect(await listKeys(client, BUCKET, 'incoming/')).toEqual([...NESTED].sort());
    await server.clearRequests();
    const again = await runWorkflow('cdr-s3-segregation', env, { stateDir: ws.path('state') });
    expect(again).toMatchObject({ ok: 0, failed: 0, filesWritten: 0 });
    const log = await server.requests();
    expect(log.filter((r) => r.method !== 'GET')).toEqual([]);
  });
});
