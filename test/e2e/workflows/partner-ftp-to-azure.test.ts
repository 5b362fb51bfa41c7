/**
 * Seed workflow "partner-ingest" (pipelines/partner-ftp-to-azure.yaml): zip exports with
 * unicode and awkward names on two partner servers — vsftpd with explicit FTPS and sshd — are
 * unzipped into Azurite's `ingest` container under partners/<source>/YYYY/MM/DD/<entry path>,
 * every entry's bytes and stored modification time (its zip's) checked.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../helpers/object-store.js';
import { runWorkflow } from '../../helpers/workflows.js';
import { listFiles, makeWorkspace, type Workspace } from '../../helpers/workspace.js';
import { type AzuriteHandle, startAzurite } from '../../servers/azurite.js';
import { type SshdHandle, startSshd } from '../../servers/sshd.js';
import { startVsftpd, type VsftpdHandle } from '../../servers/vsftpd.js';

let azurite: AzuriteHandle;
let ftps: VsftpdHandle;
let sshd: SshdHandle;
let container: ContainerClient;
let ws: Workspace;
let env: Record<string, string>;
let exportsDir: string;
let outDir: string;
/** Blob name → sha256 of the entry's bytes. */
const expected = new Map<string, string>();
/** Blob name → the modification time of the zip it came from. */
const zipMtimes = new Map<string, Date>();

interface ZipSpec {
  server: 'a' | 'b';
  name: string;
  mtime: string;
  entries: string[];
  /** Directory entries stored in the zip (nothing to land for them). */
  dirs?: string[];
}

const ZIPS: ZipSpec[] = [
  {
    server: 'a',
    name: 'export 2024-03-15 #1.zip',
    mtime: '2024-03-15T10:00:00Z',
    entries: [
      'données/été 2024.csv',
      'report "final".txt',
      '#1 summary 100%.csv',
      'nested/deep/dir/file.bin',
    ],
  },
  {
    server: 'a',
    name: 'ünïcode_%20_export.zip',
    mtime: '2024-03-16T01:00:00Z',
    entries: ['日本語/データ.json', "it's a file.txt", 'a & b/c+d=e.csv'],
    dirs: ['日本語/', 'empty folder/'],
  },
  {
    server: 'b',
    name: 'out_2024-03-15.zip',
    mtime: '2024-03-15T23:30:00Z',
    entries: ['space name/a b.txt', 'Ωmega/ß.csv', `quotes 'single' "double".txt`, '#hash%percent.dat'],
  },
  {
    server: 'b',
    name: 'Übersicht März.zip',
    mtime: '2024-03-31T12:00:00Z',
    entries: ['summary.csv', 'détail/ligne 1.csv'],
  },
];

/** Builds a zip with python3's zipfile (UTF-8 names flagged) from {arcname: file}. */
function makeZip(target: string, files: Record<string, string>, dirs: string[]): void {
  const script = [
    'import json, sys, zipfile',
    'spec = json.load(sys.stdin)',
    'with zipfile.ZipFile(spec["target"], "w", zipfile.ZIP_DEFLATED) as z:',
    '    for d in spec["dirs"]: z.writestr(zipfile.ZipInfo(d), b"")',
    '    for arc, path in spec["files"].items(): z.write(path, arc)',
  ].join('\n');
  execFileSync('python3', ['-c', script], { input: JSON.stringify({ target, files, dirs }) });
}

function entryBytes(i: number): Buffer {
  // Half text, half random: realistic exports, compressible but not a bomb.
  const text = Buffer.from(
    `row;value\n${Array.from({ length: 200 + i * 50 }, (_, r) => `${r};${(r * 31 + i) % 1000}`).join('\n')}\n`,
  );
  return Buffer.concat([text, randomBytes(10_000 + i * 3_000)]);
}

function place(
  dir: string,
  name: string,
  data: Buffer,
  mtime: Date,
  owner: { uid: number; gid: number },
): void {
  const file = join(dir, name);
  writeFileSync(file, data);
  chownSync(file, owner.uid, owner.gid);
  utimesSync(file, mtime, mtime);
}

beforeAll(async () => {
  [azurite, ftps, sshd] = await Promise.all([
    startAzurite(),
    startVsftpd({ tls: 'explicit', username: 'sluice-wf-partner-a' }),
    startSshd('sluice-wf-partner-b'),
  ]);
  container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('ingest');
  await container.create();
  ws = makeWorkspace('sluice-wf-partner-');
  exportsDir = join(ftps.rootDir, 'exports');
  outDir = join(sshd.rootDir, 'out');
  const owners = { a: statSync(ftps.rootDir), b: statSync(sshd.rootDir) };
  for (const [dir, owner] of [
    [exportsDir, owners.a],
    [outDir, owners.b],
  ] as const) {
    mkdirSync(dir);
    chownSync(dir, owner.uid, owner.gid);
  }

  let n = 0;
  for (const zip of ZIPS) {
    const files: Record<string, string> = {};
    for (const entry of zip.entries) {
      const data = entryBytes(n++);
      files[entry] = ws.write(`entries/${n}.bin`, data);
      const source = zip.server === 'a' ? 'partner_a' : 'partner_b';
      const day = zip.mtime.slice(0, 10).replaceAll('-', '/');
      expected.set(`partners/${source}/${day}/${entry}`, sha256(data));
      zipMtimes.set(`partners/${source}/${day}/${entry}`, new Date(zip.mtime));
    }
    const zipFile = ws.path(`zips/${n}.zip`);
    mkdirSync(ws.path('zips'), { recursive: true });
    makeZip(zipFile, files, zip.dirs ?? []);
    const dir = zip.server === 'a' ? exportsDir : outDir;
    place(
      dir,
      zip.name,
      readFileSync(zipFile),
      new Date(zip.mtime),
      zip.server === 'a' ? owners.a : owners.b,
    );
  }
  // Not zips: never taken.
  place(exportsDir, 'README.txt', Buffer.from('exports are hourly\n'), new Date(), owners.a);
  place(outDir, 'out_2024-03-15.zip.md5', Buffer.from('0123\n'), new Date(), owners.b);

  env = {
    PARTNER_A_HOST: ftps.host,
    PARTNER_A_PORT: String(ftps.port),
    PARTNER_A_USER: ftps.username,
    PARTNER_A_PASSWORD: ftps.password,
    PARTNER_A_CA_FILE: ftps.caFile!,
    PARTNER_A_PATH: exportsDir,
    PARTNER_B_HOST: sshd.host,
    PARTNER_B_PORT: String(sshd.port),
    PARTNER_B_USER: sshd.username,
    PARTNER_B_PASSWORD: sshd.password,
    PARTNER_B_HOST_KEY: sshd.hostKeySha256,
    PARTNER_B_PATH: outDir,
    AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString,
  };
}, 60_000);

afterAll(async () => {
  await Promise.all([azurite?.stop(), ftps?.stop(), sshd?.stop()]);
  ws?.cleanup();
});

async function blobNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const blob of container.listBlobsFlat()) names.push(blob.name);
  return names.sort();
}

describe('partner-ingest workflow', () => {
  it('unzips every export of both partners into partners/<source>/YYYY/MM/DD/<entry path>', async () => {
    const summary = await runWorkflow('partner-ftp-to-azure', env, { stateDir: ws.path('state') });
    expect(summary.failures).toEqual([]);
    expect(summary).toMatchObject({ ok: ZIPS.length, failed: 0, filesWritten: expected.size });
    expect(await blobNames()).toEqual([...expected.keys()].sort());
  });

  it('stored every entry byte for byte, with the modification time of its zip (checked at the upload)', async () => {
    for (const [name, sha] of expected) {
      expect(sha256(await container.getBlobClient(name).downloadToBuffer()), name).toBe(sha);
      // preserve_mtime: metadata `mtime` in rclone's spelling, read back and compared at the upload.
      const { metadata } = await container.getBlobClient(name).getProperties();
      expect(metadata?.mtime, name).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      expect(new Date(metadata!.mtime).getTime(), name).toBe(zipMtimes.get(name)!.getTime());
    }
  });

  it('leaves the partners’ files where they are, and a rerun does nothing', async () => {
    expect(listFiles(exportsDir)).toEqual(
      ['README.txt', ...ZIPS.filter((z) => z.server === 'a').map((z) => z.name)].sort(),
    );
    expect(listFiles(outDir)).toEqual(
      ['out_2024-03-15.zip.md5', ...ZIPS.filter((z) => z.server === 'b').map((z) => z.name)].sort(),
    );
    const again = await runWorkflow('partner-ftp-to-azure', env, { stateDir: ws.path('state') });
    expect(again).toMatchObject({ ok: 0, failed: 0, skipped: ZIPS.length, filesWritten: 0 });
  });
});
