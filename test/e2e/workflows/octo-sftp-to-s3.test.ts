/**
 * Seed workflow "octo-acme" (pipelines/octo-sftp-to-s3.yaml): a provider drops PGP-encrypted
 * files (gzip'd CSVs, a tar.gz bundle, PDF, XML, signed ones with `.sig` companions) on sshd;
 * they are decrypted with a key made by gpg at test time, unpacked, filed by type into s3rver,
 * and the originals moved to processed/; a file dropped unencrypted is filed as it is (`when` on
 * pgp_decrypt). Files too fresh (min_age) or tampered stay where they are; the tampered one
 * lands in on_error with its reason.
 */
import { execFileSync } from 'node:child_process';
import {
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GpgKey, makeGpgKey } from '../../helpers/gpg-key.js';
import { sha256 } from '../../helpers/object-store.js';
import { getObject, listKeys, runWorkflow, s3rverClient, s3rverEnv } from '../../helpers/workflows.js';
import { listFiles, makeWorkspace, type Workspace } from '../../helpers/workspace.js';
import { type S3rverHandle, startS3rver } from '../../servers/s3rver.js';
import { type SshdHandle, startSshd } from '../../servers/sshd.js';

const BUCKET = 'octo-e2e';
const PASSPHRASE = 'acme-pgp-passphrase';
const DROPPED_AT = new Date('2024-03-10T06:15:00Z');
let s3: S3rverHandle;
let sshd: SshdHandle;
let client: S3Client;
let ws: Workspace;
let env: Record<string, string>;
let outgoing: string;
/** S3 key → sha256 of the plaintext it must hold. */
const expected = new Map<string, string>();
let brokenSha = '';
const README = 'ask ops before deleting anything\n';
let gpg: GpgKey['gpg'];
let encrypt: GpgKey['encrypt'];
let secretKeyFile: string;

/** Writes a dropped file as the SFTP user owns it, with the given mtime. */
function drop(name: string, content: Buffer, mtime = DROPPED_AT): void {
  const file = join(outgoing, name);
  writeFileSync(file, content);
  const owner = statSync(sshd.rootDir);
  chownSync(file, owner.uid, owner.gid);
  utimesSync(file, mtime, mtime);
}

function csv(rows: number, seed: number): Buffer {
  return Buffer.from(
    `id;sku;qty;price\n${Array.from({ length: rows }, (_, i) => `${i};SKU-${(i * seed) % 9973};${i % 17};${((i * seed) % 10000) / 100}`).join('\n')}\n`,
  );
}

beforeAll(async () => {
  [s3, sshd] = await Promise.all([startS3rver(), startSshd('sluice-wf-octo')]);
  await s3.createBucket(BUCKET);
  client = s3rverClient(s3);
  ws = makeWorkspace('sluice-wf-octo-');
  const key = makeGpgKey(ws.dir, { name: 'Acme Data', email: 'data@acme.example', passphrase: PASSPHRASE });
  gpg = key.gpg;
  encrypt = key.encrypt;
  secretKeyFile = key.secretKeyFile;

  outgoing = join(sshd.rootDir, 'outgoing');
  mkdirSync(outgoing);
  chownSync(outgoing, statSync(sshd.rootDir).uid, statSync(sshd.rootDir).gid);

  const plain = {
    sales: csv(4000, 7),
    inventory: csv(1500, 13),
    orders: csv(300, 3),
    signed: csv(800, 11),
    pdf: Buffer.concat([
      Buffer.from('%PDF-1.4\n'),
      Buffer.alloc(20_000, 'statement '),
      Buffer.from('\n%%EOF\n'),
    ]),
    xml: Buffer.from(`<?xml version="1.0"?>\n<catalog>${'<item sku="1">x</item>'.repeat(500)}</catalog>\n`),
    notes: Buffer.from('delivery notes for March\n'),
    bundleCsv: csv(200, 5),
    bundlePdf: Buffer.from('%PDF-1.4\nbundle doc\n%%EOF\n'),
  };
  drop('sales_20240310.csv.gz.gpg', encrypt(gzipSync(plain.sales)));
  drop('inventory 2024-03 (v2) #1.csv.gz.gpg', encrypt(gzipSync(plain.inventory)));
  drop('orders.csv.pgp', encrypt(plain.orders, ['--armor']));
  drop(
    'signed_20240310.csv.gz.gpg',
    encrypt(gzipSync(plain.signed), ['--local-user', 'data@acme.example', '--sign']),
  );
  drop('statement_march.pdf.gpg', encrypt(plain.pdf));
  drop('catalog.xml.gpg', encrypt(plain.xml));
  drop('notes.txt.gpg', encrypt(plain.notes));
  // A tar.gz bundle: its entries are filed one by one.
  ws.write('bundle/report.csv', plain.bundleCsv);
  ws.write('bundle/docs/manual.pdf', plain.bundlePdf);
  execFileSync('tar', [
    '-czf',
    ws.path('bundle.tar.gz'),
    '-C',
    ws.path('bundle'),
    'report.csv',
    'docs/manual.pdf',
  ]);
  drop('bundle_20240310.tar.gz.gpg', encrypt(readFileSync(ws.path('bundle.tar.gz'))));
  // Detached signatures over two encrypted files: companions, never files of their own.
  for (const name of ['sales_20240310.csv.gz.gpg', 'catalog.xml.gpg']) {
    drop(
      `${name}.sig`,
      gpg(['--local-user', 'data@acme.example', '--detach-sign', '--output', '-', join(outgoing, name)]),
    );
  }
  // Tampered in the middle of its encrypted body: decryption must fail for good.
  const broken = encrypt(gzipSync(csv(3000, 17)));
  broken[Math.floor(broken.length / 2)] ^= 0x20;
  brokenSha = sha256(broken);
  drop('broken_20240311.csv.gz.gpg', broken);
  // Still being uploaded (too fresh for min_age: 1m), and a file that is not encrypted.
  drop('fresh_20240312.csv.gz.gpg', encrypt(gzipSync(csv(10, 1))), new Date());
  drop('readme.txt', Buffer.from(README));

  const digest = (b: Buffer) => sha256(b);
  expected.set('data/csv/acme/2024/03/sales_20240310.csv', digest(plain.sales));
  expected.set('data/csv/acme/2024/03/inventory 2024-03 (v2) #1.csv', digest(plain.inventory));
  expected.set('data/csv/acme/2024/03/orders.csv', digest(plain.orders));
  expected.set('data/csv/acme/2024/03/signed_20240310.csv', digest(plain.signed));
  expected.set('data/pdf/acme/statement_march.pdf', digest(plain.pdf));
  expected.set('data/xml/acme/catalog.xml', digest(plain.xml));
  expected.set('data/other/acme/notes.txt', digest(plain.notes));
  expected.set('data/csv/acme/2024/03/report.csv', digest(plain.bundleCsv));
  expected.set('data/other/acme/readme.txt', digest(Buffer.from(README)));
  expected.set('data/pdf/acme/manual.pdf', digest(plain.bundlePdf));

  env = {
    ACME_SFTP_HOST: sshd.host,
    ACME_SFTP_PORT: String(sshd.port),
    ACME_SFTP_USER: sshd.username,
    ACME_SFTP_KEY_FILE: sshd.privateKeyFile,
    ACME_SFTP_HOST_KEY: sshd.hostKeySha256,
    ACME_SFTP_PATH: outgoing,
    ACME_PGP_KEY_FILE: secretKeyFile,
    ACME_PGP_PASSPHRASE: PASSPHRASE,
    OCTO_BUCKET: BUCKET,
    OCTO_FAILED_DIR: ws.path('failed', 'octo-acme'),
    ...s3rverEnv(s3),
  };
}, 60_000);

afterAll(async () => {
  client?.destroy();
  await Promise.all([s3?.stop(), sshd?.stop()]);
  ws?.cleanup();
});

const MOVED = [
  'bundle_20240310.tar.gz.gpg',
  'catalog.xml.gpg',
  'inventory 2024-03 (v2) #1.csv.gz.gpg',
  'notes.txt.gpg',
  'orders.csv.pgp',
  'readme.txt',
  'sales_20240310.csv.gz.gpg',
  'signed_20240310.csv.gz.gpg',
  'statement_march.pdf.gpg',
];

/** Detached signatures of two moved files: companions, they follow their file. */
const SIGNATURES = ['catalog.xml.gpg.sig', 'sales_20240310.csv.gz.gpg.sig'];

describe('octo-acme workflow', () => {
  it('decrypts, unpacks and files every good drop by type; the tampered one fails for good', async () => {
    const summary = await runWorkflow('octo-sftp-to-s3', env, { stateDir: ws.path('state') });
    expect(
      summary.failures
        .filter((f) => !f.path.startsWith('broken'))
        .map((f) => `${f.path}: ${f.code} ${f.error}`),
    ).toEqual([]);
    expect(summary).toMatchObject({
      ok: MOVED.length,
      failed: 1,
      filesWritten: expected.size,
      filtered: 1,
      retries: 0,
    });
    expect(summary.failures).toEqual([
      expect.objectContaining({
        source: 'sftp',
        path: 'broken_20240311.csv.gz.gpg',
        code: 'SLUICE_E_BAD_DATA',
      }),
    ]);

    expect(await listKeys(client, BUCKET)).toEqual([...expected.keys()].sort());
    for (const [key, sha] of expected) expect(sha256(await getObject(client, BUCKET, key)), key).toBe(sha);
  });

  it('moved the processed originals, with their .sig companions, to processed/ and left the rest in place', () => {
    expect(listFiles(outgoing)).toEqual(
      [
        'broken_20240311.csv.gz.gpg',
        'fresh_20240312.csv.gz.gpg',
        ...[...MOVED, ...SIGNATURES].map((n) => `processed/${n}`),
      ].sort(),
    );
  });

  it('put the tampered file, unchanged, with a reason, in on_error', () => {
    const failed = ws.path('failed', 'octo-acme');
    expect(listFiles(failed)).toEqual([
      'sftp/broken_20240311.csv.gz.gpg',
      'sftp/broken_20240311.csv.gz.gpg.error.json',
    ]);
    expect(sha256(readFileSync(join(failed, 'sftp/broken_20240311.csv.gz.gpg')))).toBe(brokenSha);
    const reason = JSON.parse(
      readFileSync(join(failed, 'sftp/broken_20240311.csv.gz.gpg.error.json'), 'utf8'),
    ) as Record<string, unknown>;
    expect(reason).toMatchObject({
      pipeline: 'octo-acme',
      source: 'sftp',
      path: 'broken_20240311.csv.gz.gpg',
      code: 'SLUICE_E_BAD_DATA',
    });
    expect(JSON.stringify(reason)).not.toContain(PASSPHRASE);
  });

  it('a rerun processes nothing new: not processed/, not the fresh file, and the failed one stays parked', async () => {
    await s3.clearRequests();
    const again = await runWorkflow('octo-sftp-to-s3', env, { stateDir: ws.path('state') });
    // The tampered file is parked until it changes (policy.failed: on_change): counted once, not failed again.
    expect(again).toMatchObject({ ok: 0, failed: 0, parked: 1, filesWritten: 0, filtered: 1 });
    expect((await s3.requests()).filter((q) => q.method === 'PUT' || q.method === 'POST')).toEqual([]);
    expect(readdirSync(join(outgoing, 'processed')).sort()).toEqual([...MOVED, ...SIGNATURES].sort());
  });
});
