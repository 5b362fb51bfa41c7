/**
 * Workflow "octo-mixed" (pipelines/octo-mixed-drops.yaml), the end-to-end test of issue 14: a
 * mixed SFTP drop — `*.csv.gz.gpg`, armored `*.pgp`, plain `*.csv`, `*.csv.gz`, `*.pdf`, odd
 * names — through one pipeline with `when` on `pgp_decrypt` (and `decompress`), filed by the
 * named groups of the route's regex into `data/<kind>/<provider>/…` in s3rver, each object
 * keeping the dropped file's mtime (metadata `mtime`, as rclone stores it); then a migration run
 * against a bucket that already holds half the files, counting what sshd served: a file that
 * reaches the bucket unchanged and is already there is not read.
 *
 * sshd logs the SFTP subsystem at VERBOSE (`open "…" flags READ`), so the reads counted are the
 * server's own, whatever the client does.
 */
import { chownSync, mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GpgKey, makeGpgKey } from '../../helpers/gpg-key.js';
import { sha256 } from '../../helpers/object-store.js';
import { getObject, listKeys, runWorkflow, s3rverClient, s3rverEnv } from '../../helpers/workflows.js';
import { makeWorkspace, type Workspace } from '../../helpers/workspace.js';
import { type S3rverHandle, startS3rver } from '../../servers/s3rver.js';
import { type SshdHandle, startSshd } from '../../servers/sshd.js';

const BUCKET = 'octo-mixed-e2e';
const PASSPHRASE = 'octo-mixed-passphrase';
/** Each dropped file gets its own whole-second mtime (SFTP keeps seconds), a minute apart. */
const DROPPED_AT = Date.parse('2026-12-01T06:15:00Z');

let s3: S3rverHandle;
let sshd: SshdHandle;
let client: S3Client;
let ws: Workspace;
let key: GpgKey;
let env: Record<string, string>;

interface Dropped {
  /** Name in the drop folder. */
  name: string;
  /** Bytes as dropped (encrypted, gzip'd or plain). */
  bytes: Buffer;
  /** Plaintext: what the object must hold. */
  plain: Buffer;
  /** Key in the bucket. */
  key: string;
  mtime: Date;
}

function csv(rows: number, seed: number): Buffer {
  return Buffer.from(
    `id;sku;qty\n${Array.from({ length: rows }, (_, i) => `${i};SKU-${(i * seed) % 9973};${i % 17}`).join('\n')}\n`,
  );
}

const pdf = (text: string) =>
  Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(4000, `${text} `), Buffer.from('\n%%EOF\n')]);

/** Writes the files into `folder` on the SFTP server, owned by its user, each with its mtime. */
function drop(folder: string, files: Dropped[]): string {
  const dir = join(sshd.rootDir, folder);
  const owner = statSync(sshd.rootDir);
  mkdirSync(dir, { recursive: true });
  chownSync(dir, owner.uid, owner.gid);
  for (const f of files) {
    const file = join(dir, f.name);
    writeFileSync(file, f.bytes);
    chownSync(file, owner.uid, owner.gid);
    utimesSync(file, f.mtime, f.mtime);
  }
  return dir;
}

let n = 0;
/** A dropped file: `bytes` made from `plain` (encrypted, gzip'd, or as is). */
function file(name: string, plain: Buffer, key: string, make: (plain: Buffer) => Buffer = (p) => p): Dropped {
  return { name, bytes: make(plain), plain, key, mtime: new Date(DROPPED_AT + n++ * 60_000) };
}

/** S3 metadata `mtime` as rclone (and the s3 sink) writes it: decimal seconds. */
const s3Mtime = (d: Date) => String(d.getTime() / 1000);

async function storedMtime(k: string): Promise<string | undefined> {
  const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: k }));
  return head.Metadata?.mtime;
}

beforeAll(async () => {
  [s3, sshd] = await Promise.all([startS3rver(), startSshd('sluice-wf-octomix', { logReads: true })]);
  await s3.createBucket(BUCKET);
  client = s3rverClient(s3);
  ws = makeWorkspace('sluice-wf-octomix-');
  key = makeGpgKey(ws.dir, { name: 'Octo Data', email: 'data@octo.example', passphrase: PASSPHRASE });
  env = {
    ACME_SFTP_HOST: sshd.host,
    ACME_SFTP_PORT: String(sshd.port),
    ACME_SFTP_USER: sshd.username,
    ACME_SFTP_KEY_FILE: sshd.privateKeyFile,
    ACME_SFTP_HOST_KEY: sshd.hostKeySha256,
    ACME_PGP_KEY_FILE: key.secretKeyFile,
    ACME_PGP_PASSPHRASE: PASSPHRASE,
    OCTO_BUCKET: BUCKET,
    OCTO_FAILED_DIR: ws.path('failed'),
    ...s3rverEnv(s3),
  };
}, 60_000);

afterAll(async () => {
  client?.destroy();
  await Promise.all([s3?.stop(), sshd?.stop()]);
  ws?.cleanup();
});

describe('octo-mixed workflow', () => {
  it('decrypts only what is encrypted, files by provider and kind from the name, keeps every mtime', async () => {
    const encrypt = (p: Buffer) => key.encrypt(p);
    const files = [
      file(
        'acme_invoices_20261130.csv.gz.gpg',
        csv(3000, 7),
        'data/invoices/acme/2026/11/acme_invoices_20261130.csv',
        (p) => encrypt(gzipSync(p)),
      ),
      file(
        'beta_orders_20261201.csv.pgp',
        csv(400, 3),
        'data/orders/beta/2026/12/beta_orders_20261201.csv',
        (p) => key.encrypt(p, ['--armor']),
      ),
      file(
        'acme_statements_20261115.pdf.gpg',
        pdf('acme statement'),
        'data/statements/acme/2026/11/acme_statements_20261115.pdf',
        encrypt,
      ),
      file(
        'acme_payments_20261130.csv',
        csv(500, 11),
        'data/payments/acme/2026/11/acme_payments_20261130.csv',
      ),
      file(
        'beta_statements_20261115.pdf',
        pdf('beta statement'),
        'data/statements/beta/2026/11/beta_statements_20261115.pdf',
      ),
      file(
        'acme_usage_20261130.csv.gz',
        csv(800, 5),
        'data/usage/acme/2026/11/acme_usage_20261130.csv',
        gzipSync,
      ),
      file(
        'acme_notes_draft.txt',
        Buffer.from('no date in this name\n'),
        'data/undated/acme_notes_draft.txt',
      ),
      file('README.pdf', pdf('read me'), 'data/other/README.pdf'),
    ];
    const outgoing = drop('outgoing', files);
    // A detached signature is not a file of its own; one still being uploaded is too fresh.
    const sig = key.gpg([
      '--local-user',
      key.email,
      '--detach-sign',
      '--output',
      '-',
      join(outgoing, files[0].name),
    ]);
    const fresh = file('beta_orders_20261202.csv', csv(10, 1), 'never');
    fresh.mtime = new Date();
    drop('outgoing', [{ ...file(`${files[0].name}.sig`, sig, 'never'), mtime: new Date(DROPPED_AT) }, fresh]);

    const summary = await runWorkflow(
      'octo-mixed-drops',
      { ...env, ACME_SFTP_PATH: outgoing },
      {
        stateDir: ws.path('state'),
      },
    );
    expect(summary.failures).toEqual([]);
    expect(summary).toMatchObject({ ok: files.length, failed: 0, filtered: 1, filesWritten: files.length });

    expect(await listKeys(client, BUCKET)).toEqual(files.map((f) => f.key).sort());
    for (const f of files) {
      expect(sha256(await getObject(client, BUCKET, f.key)), f.key).toBe(sha256(f.plain));
      // The dropped file's mtime, decrypted, unpacked or not.
      expect(await storedMtime(f.key), f.key).toBe(s3Mtime(f.mtime));
    }

    const again = await runWorkflow(
      'octo-mixed-drops',
      { ...env, ACME_SFTP_PATH: outgoing },
      {
        stateDir: ws.path('state'),
      },
    );
    expect(again).toMatchObject({ ok: 0, failed: 0, skipped: files.length, filesWritten: 0 });
  });

  it('a migration run against a bucket that holds half the files reads only the other half from SFTP', async () => {
    const plain = [
      file(
        'acme_invoices_20261101.csv',
        csv(1000, 13),
        'data/invoices/acme/2026/11/acme_invoices_20261101.csv',
      ),
      file(
        'acme_invoices_20261102.csv',
        csv(1100, 17),
        'data/invoices/acme/2026/11/acme_invoices_20261102.csv',
      ),
      file('beta_orders_20261103.csv', csv(1200, 19), 'data/orders/beta/2026/11/beta_orders_20261103.csv'),
      file('beta_orders_20261104.csv', csv(1300, 23), 'data/orders/beta/2026/11/beta_orders_20261104.csv'),
      file(
        'acme_statements_20261105.pdf',
        pdf('statement 5'),
        'data/statements/acme/2026/11/acme_statements_20261105.pdf',
      ),
      file(
        'beta_statements_20261106.pdf',
        pdf('statement 6'),
        'data/statements/beta/2026/11/beta_statements_20261106.pdf',
      ),
    ];
    const encrypted = [
      file(
        'acme_invoices_20261107.csv.gz.gpg',
        csv(900, 29),
        'data/invoices/acme/2026/11/acme_invoices_20261107.csv',
        (p) => key.encrypt(gzipSync(p)),
      ),
      file(
        'beta_orders_20261108.csv.gz.gpg',
        csv(950, 31),
        'data/orders/beta/2026/11/beta_orders_20261108.csv',
        (p) => key.encrypt(gzipSync(p)),
      ),
    ];
    const migration = drop('migration', [...plain, ...encrypted]);
    // What the old tool left in the bucket: every other file, with the dropped file's mtime as
    // rclone stores it.
    const already = [plain[0], plain[2], plain[4], encrypted[0]];
    for (const f of already) {
      await client.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: f.key,
          Body: f.plain,
          Metadata: { mtime: s3Mtime(f.mtime) },
        }),
      );
    }
    await s3.clearRequests();
    const readsBefore = sshd.reads().length;

    // A fresh state folder: Sluice's ledger knows nothing of what the old tool did.
    const summary = await runWorkflow(
      'octo-mixed-drops',
      { ...env, ACME_SFTP_PATH: migration },
      {
        stateDir: ws.path('state-migration'),
      },
    );
    expect(summary.failures).toEqual([]);
    expect(summary).toMatchObject({ ok: plain.length + encrypted.length, failed: 0 });

    const dropped = new Set([...plain, ...encrypted].map((f) => f.name));
    const reads = sshd
      .reads()
      .slice(readsBefore)
      .map((p) => basename(p))
      .filter((name) => dropped.has(name));
    // Only the plain files the bucket did not hold were read, each once; the plain files it held
    // were recognised by size and mtime without a read.
    const plainReads = reads.filter((name) => plain.some((f) => f.name === name)).sort();
    expect(plainReads).toEqual([plain[1], plain[3], plain[5]].map((f) => f.name).sort());
    expect(summary).toMatchObject({ alreadyAtDestination: 3 });
    // An encrypted file's object is named and sized by its plaintext: it is read and decrypted
    // to know them (its object, already there, is then left as it is).
    expect(reads.filter((name) => encrypted.some((f) => f.name === name)).sort()).toEqual(
      encrypted.map((f) => f.name).sort(),
    );

    // Nothing the old tool uploaded was rewritten; the other half is there, mtimes kept.
    const writes = (await s3.requests()).filter((q) => q.method === 'PUT' || q.method === 'POST');
    for (const f of already)
      expect(
        writes.filter((q) => decodeURIComponent(q.url).includes(f.key)),
        f.key,
      ).toEqual([]);
    expect(writes.length).toBeGreaterThan(0);
    for (const f of [...plain, ...encrypted]) {
      expect(sha256(await getObject(client, BUCKET, f.key)), f.key).toBe(sha256(f.plain));
      expect(await storedMtime(f.key), f.key).toBe(s3Mtime(f.mtime));
    }
  });
});
