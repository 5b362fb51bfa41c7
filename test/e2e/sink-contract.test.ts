/**
 * The delivery rules as a contract every sink the runtime drives must keep: the same cases, run
 * with a local source against local, SFTP (sshd), FTP (vsftpd), S3 (s3rver) and Azure Blob
 * (Azurite). Each case reads back what the sink holds afterwards, and what the source holds:
 * a skip is delivered only over the same bytes, rename picks the next free name, a redo after a
 * crash reuses the name an earlier run reserved (no numbered twin), one destination holds one
 * item per pass, and a source truncated while it is read commits nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createItem, itemIdentity } from '../../core/item.js';
import { SqliteLedger } from '../../core/ledger/sqlite.js';
import { runPipelineFile } from '../../core/sdk.js';
import { patternBytes, readAll } from '../helpers/object-store.js';
import { writeTree } from '../helpers/remote-fs-fixtures.js';
import { testRegistry } from '../helpers/test-plugins.js';
import { listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { startAzurite } from '../servers/azurite.js';
import { s3Client, startS3rver } from '../servers/s3rver.js';
import { startSshd } from '../servers/sshd.js';
import { startVsftpd } from '../servers/vsftpd.js';

/** One sink under test: its server, its YAML, and direct access to what it stores. */
interface SinkUnderTest {
  name: 'local' | 'sftp' | 'ftp' | 's3' | 'azure_blob';
  /** How the tests name it, when not by `name` (a second configuration of the same sink). */
  label?: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The sink's YAML lines (under `sink:`), writing into folder `dir`, plus `extra` keys. */
  yaml(dir: string, extra: Record<string, string>): string[];
  /** Stores `body` at `dir/name` directly on the backend (a file that was already there). */
  put(dir: string, name: string, body: string): Promise<void>;
  /** The bytes at `dir/name`, or null when there is nothing. */
  get(dir: string, name: string): Promise<string | null>;
  /** Every file or object under `dir` (temp names included), relative and sorted. */
  list(dir: string): Promise<string[]>;
}

const keys = (indent: string, values: Record<string, string | number | boolean>) =>
  Object.entries(values).map(([k, v]) => `${indent}${k}: ${JSON.stringify(v)}`);

function readOrNull(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

/** A sink writing into a folder on this machine (local), or one a server exports (SFTP, FTP). */
function fileSink(
  name: 'local' | 'sftp' | 'ftp',
  server: () => Promise<{ root: string; owner?: string; connection: Record<string, string | number> }>,
  configuredPath: (root: string, dir: string) => string,
  stopServer: () => Promise<void>,
): SinkUnderTest {
  let root = '';
  let uid = 0;
  let gid = 0;
  let connection: Record<string, string | number> = {};
  return {
    name,
    async start() {
      const started = await server();
      root = started.root;
      connection = started.connection;
      if (started.owner) {
        uid = Number(execFileSync('id', ['-u', started.owner]).toString());
        gid = Number(execFileSync('id', ['-g', started.owner]).toString());
      }
    },
    stop: stopServer,
    yaml: (dir, extra) => [
      `  ${name}:`,
      ...keys('    ', connection),
      ...keys('    ', { path: configuredPath(root, dir), ...extra }),
    ],
    async put(dir, file, body) {
      // Owned by the server's user, as its own uploads are: the sink may remove or rename beside it.
      writeTree(join(root, dir), { [file]: Buffer.from(body) }, uid, gid);
    },
    get: async (dir, file) => readOrNull(join(root, dir, file)),
    list: async (dir) => listFiles(join(root, dir)),
  };
}

let localRoot = '';
const localSinkUnderTest = fileSink(
  'local',
  async () => {
    localRoot = mkdtempSync(join(tmpdir(), 'sluice-contract-local-'));
    return { root: localRoot, connection: {} };
  },
  (root, dir) => join(root, dir),
  async () => rmSync(localRoot, { recursive: true, force: true }),
);

let stopSshd: () => Promise<void> = async () => undefined;
const sftpSinkUnderTest = fileSink(
  'sftp',
  async () => {
    const sshd = await startSshd('sluice-contract');
    stopSshd = () => sshd.stop();
    return {
      root: sshd.rootDir,
      owner: sshd.username,
      connection: {
        host: sshd.host,
        port: sshd.port,
        username: sshd.username,
        private_key_file: sshd.privateKeyFile,
        host_key_sha256: sshd.hostKeySha256,
      },
    };
  },
  (root, dir) => join(root, dir),
  () => stopSshd(),
);

let stopVsftpd: () => Promise<void> = async () => undefined;
const ftpSinkUnderTest = fileSink(
  'ftp',
  async () => {
    const vsftpd = await startVsftpd({ username: 'sluice-ftp-contract' });
    stopVsftpd = () => vsftpd.stop();
    return {
      root: vsftpd.rootDir,
      owner: vsftpd.username,
      connection: {
        host: vsftpd.host,
        port: vsftpd.port,
        username: vsftpd.username,
        password: vsftpd.password,
      },
    };
  },
  // Relative to the login folder, which is the server's root.
  (_root, dir) => dir,
  () => stopVsftpd(),
);

const BUCKET = 'sluice-contract';

/** `lean: false`: every request through the SDK (`lean_requests: false`). */
function s3SinkUnderTest(lean = true): SinkUnderTest {
  let server: Awaited<ReturnType<typeof startS3rver>>;
  let client: S3Client;
  return {
    name: 's3',
    label: lean ? 's3' : 's3 (lean_requests: false)',
    async start() {
      server = await startS3rver({ logRequests: false });
      await server.createBucket(BUCKET);
      client = s3Client(server);
    },
    async stop() {
      client?.destroy();
      await server?.stop();
    },
    yaml: (dir, extra) => [
      '  s3:',
      ...keys('    ', {
        bucket: BUCKET,
        endpoint: server.endpoint,
        access_key_id: server.credentials.accessKeyId,
        secret_access_key: server.credentials.secretAccessKey,
        prefix: `${dir}/`,
        ...(lean ? {} : { lean_requests: false }),
        ...extra,
      }),
    ],
    async put(dir, name, body) {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${dir}/${name}`, Body: body }));
    },
    async get(dir, name) {
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${dir}/${name}` }));
        return (await readAll(res.Body as Readable)).toString();
      } catch (err) {
        if ((err as { name?: string }).name === 'NoSuchKey') return null;
        throw err;
      }
    },
    async list(dir) {
      const names: string[] = [];
      let token: string | undefined;
      do {
        const page: ListObjectsV2CommandOutput = await client.send(
          new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${dir}/`, ContinuationToken: token }),
        );
        for (const object of page.Contents ?? []) names.push(object.Key!.slice(dir.length + 1));
        token = page.NextContinuationToken;
      } while (token);
      return names.sort();
    },
  };
}

function azureSinkUnderTest(): SinkUnderTest {
  let server: Awaited<ReturnType<typeof startAzurite>>;
  let container: ContainerClient;
  return {
    name: 'azure_blob',
    async start() {
      server = await startAzurite();
      container = BlobServiceClient.fromConnectionString(server.connectionString).getContainerClient(BUCKET);
      await container.create();
    },
    stop: async () => server?.stop(),
    yaml: (dir, extra) => [
      '  azure_blob:',
      ...keys('    ', {
        connection_string: server.connectionString,
        container: BUCKET,
        prefix: `${dir}/`,
        ...extra,
      }),
    ],
    async put(dir, name, body) {
      await container.getBlockBlobClient(`${dir}/${name}`).upload(body, Buffer.byteLength(body));
    },
    async get(dir, name) {
      const blob = container.getBlobClient(`${dir}/${name}`);
      if (!(await blob.exists())) return null;
      return (await blob.downloadToBuffer()).toString();
    },
    async list(dir) {
      const names: string[] = [];
      for await (const blob of container.listBlobsFlat({ prefix: `${dir}/` }))
        names.push(blob.name.slice(dir.length + 1));
      return names.sort();
    },
  };
}

const sinks: SinkUnderTest[] = [
  localSinkUnderTest,
  sftpSinkUnderTest,
  ftpSinkUnderTest,
  s3SinkUnderTest(),
  s3SinkUnderTest(false),
  azureSinkUnderTest(),
];

const registry = testRegistry();

describe.each(sinks.map((sink) => ({ ...sink, label: sink.label ?? sink.name })))(
  '$label sink: the delivery contract',
  (sink) => {
    const workspaces: Workspace[] = [];

    beforeAll(async () => {
      await sink.start();
    }, 60_000);

    afterAll(async () => {
      for (const ws of workspaces) ws.cleanup();
      await sink.stop();
    });

    /** A workspace holding `files` under ./in, the local source's folder. */
    const workspace = (files: Record<string, string | Buffer>) => {
      const ws = makeWorkspace('sluice-contract-');
      workspaces.push(ws);
      for (const [rel, body] of Object.entries(files)) ws.write(`in/${rel}`, body);
      return ws;
    };

    /** A pipeline from ./in (with `source` keys) through `steps` to the sink's folder `dir`. */
    const pipeline = (
      ws: Workspace,
      o: {
        name: string;
        dir: string;
        sink?: Record<string, string>;
        source?: string;
        steps?: string[];
        policy?: string[];
      },
    ) =>
      ws.pipeline(
        [
          `name: ${o.name}`,
          'source:',
          `  local: { path: ./in${o.source ? `, ${o.source}` : ''} }`,
          ...(o.steps ? ['steps:', ...o.steps.map((s) => `  - ${s}`)] : []),
          'sink:',
          ...sink.yaml(o.dir, o.sink ?? {}),
          'policy:',
          '  retry: { max_attempts: 1 }',
          ...(o.policy ?? []).map((l) => `  ${l}`),
          '',
        ].join('\n'),
      );

    const run = (file: string) => runPipelineFile(file, { registry });

    it('if_exists: skip + delete: other bytes fail SLUICE_E_EXISTS and keep both; the same bytes are delivered', async () => {
      const dir = 'skip';
      // Same length, other bytes: only the content can tell them apart.
      await sink.put(dir, 'report.csv', 'old figures\n');
      await sink.put(dir, 'longer.csv', 'last month, longer\n');
      await sink.put(dir, 'same.csv', 'same bytes\n');
      const ws = workspace({
        'report.csv': 'new figures\n',
        'longer.csv': 'this month\n',
        'same.csv': 'same bytes\n',
      });
      const summary = await run(
        pipeline(ws, { name: 'skip', dir, sink: { if_exists: 'skip' }, source: 'after_success: delete' }),
      );
      expect(summary).toMatchObject({ ok: 1, failed: 2 });
      expect(summary.failures.map((f) => [f.path, f.code]).sort()).toEqual([
        ['longer.csv', 'SLUICE_E_EXISTS'],
        ['report.csv', 'SLUICE_E_EXISTS'],
      ]);
      expect(summary.failures[0].error).toMatch(/already holds other bytes.*source is kept/);
      expect(listFiles(ws.path('in'))).toEqual(['longer.csv', 'report.csv']);
      expect(ws.read('in/report.csv')).toBe('new figures\n');
      expect(ws.read('in/longer.csv')).toBe('this month\n');
      expect(await sink.list(dir)).toEqual(['longer.csv', 'report.csv', 'same.csv']);
      expect(await sink.get(dir, 'report.csv')).toBe('old figures\n');
      expect(await sink.get(dir, 'longer.csv')).toBe('last month, longer\n');
      expect(await sink.get(dir, 'same.csv')).toBe('same bytes\n');
    });

    it('if_exists: rename writes report (1).csv beside report.csv, and report (2).csv for a new version', async () => {
      const dir = 'rename';
      await sink.put(dir, 'report.csv', 'yesterday\n');
      const ws = workspace({ 'report.csv': 'today\n' });
      const file = pipeline(ws, { name: 'rename', dir, sink: { if_exists: 'rename' } });
      expect(await run(file)).toMatchObject({ ok: 1, failed: 0 });
      expect(await sink.list(dir)).toEqual(['report (1).csv', 'report.csv']);
      expect(await sink.get(dir, 'report.csv')).toBe('yesterday\n');
      expect(await sink.get(dir, 'report (1).csv')).toBe('today\n');

      ws.write('in/report.csv', 'today, second version\n');
      expect(await run(file)).toMatchObject({ ok: 1, failed: 0 });
      expect(await sink.list(dir)).toEqual(['report (1).csv', 'report (2).csv', 'report.csv']);
      expect(await sink.get(dir, 'report.csv')).toBe('yesterday\n');
      expect(await sink.get(dir, 'report (1).csv')).toBe('today\n');
      expect(await sink.get(dir, 'report (2).csv')).toBe('today, second version\n');
      // Delivered and finalized: a third run writes nothing.
      expect(await run(file)).toMatchObject({ ok: 0, failed: 0, skipped: 1 });
      expect(await sink.list(dir)).toHaveLength(3);
    });

    it('a redo after a crash finds the copy under the name it reserved and leaves no numbered twin', async () => {
      const dir = 'redo';
      // x.csv: an earlier run reserved the name, committed, and died before recording it.
      // x (1).csv: a redo then wrote its twin and was killed before removing it.
      // y.csv: the same bytes are there, but no run reserved the name: not this item's copy.
      await sink.put(dir, 'x.csv', 'the bytes of x\n');
      await sink.put(dir, 'x (1).csv', 'the bytes of x\n');
      await sink.put(dir, 'y.csv', 'the bytes of y\n');
      const ws = workspace({ 'x.csv': 'the bytes of x\n', 'y.csv': 'the bytes of y\n' });
      const file = pipeline(ws, { name: 'redo', dir, sink: { if_exists: 'rename' } });
      const stat = statSync(ws.path('in/x.csv'));
      const id = itemIdentity(
        createItem({
          source: 'local',
          path: 'x.csv',
          size: stat.size,
          mtime: stat.mtime,
          open: async () => Readable.from([]),
        }),
      );
      const ledger = await SqliteLedger.open(ws.path('.sluice'));
      ledger.record('redo', id, {
        state: 'seen',
        attempts: 1,
        destinations: ['reserved:0:x.csv', 'reserved:0:x (1).csv'],
      });
      await ledger.flush();
      await ledger.close();

      expect(await run(file)).toMatchObject({ ok: 2, failed: 0 });
      expect(await sink.list(dir)).toEqual(['x.csv', 'y (1).csv', 'y.csv']);
      expect(await sink.get(dir, 'x.csv')).toBe('the bytes of x\n');
      expect(await sink.get(dir, 'y (1).csv')).toBe('the bytes of y\n');

      const after = await SqliteLedger.open(ws.path('.sluice'));
      try {
        expect((await after.get('redo', id))?.state).toBe('finalized');
      } finally {
        await after.close();
      }
    });

    it('one destination per pass: the second item aiming at x.csv fails SLUICE_E_COLLISION and keeps its source', async () => {
      const dir = 'collision';
      const ws = workspace({ 'a/x.csv': 'from a\n', 'b/x.csv': 'from b\n' });
      const summary = await run(
        pipeline(ws, {
          name: 'flatten',
          dir,
          source: 'after_success: delete',
          steps: ['rename: { to: "{name}" }'],
          policy: ['concurrency: 1'],
        }),
      );
      expect(summary).toMatchObject({ ok: 1, failed: 1 });
      expect(summary.failures[0].code).toBe('SLUICE_E_COLLISION');
      const kept = listFiles(ws.path('in'));
      expect(kept).toHaveLength(1);
      expect(['a/x.csv', 'b/x.csv']).toContain(kept[0]);
      expect(await sink.list(dir)).toEqual(['x.csv']);
      expect(await sink.get(dir, 'x.csv')).toBe(kept[0] === 'a/x.csv' ? 'from b\n' : 'from a\n');
    });

    // The size check can fail the bytes before the sink reads them (SFTP/FTP connect and make
    // folders first, a rename first looks for a free name): the failure must reach the sink's
    // pending write. It once went unheard (an uncaught exception) and the upload waited forever.
    it.each(['overwrite', 'rename'])(
      'a source truncated while it streams through compress fails SLUICE_E_CHANGED and commits nothing (if_exists: %s)',
      async (ifExists) => {
        const dir = `truncated-${ifExists}`;
        const ws = workspace({ 'big.bin': patternBytes(3 * 1024 * 1024, 11) });
        const summary = await run(
          pipeline(ws, {
            name: `truncated-${ifExists}`,
            dir,
            sink: { if_exists: ifExists },
            source: 'after_success: delete',
            steps: ['truncate_source: { root: ./in, to_bytes: 100000 }', 'compress: { format: gzip }'],
          }),
        );
        expect(summary).toMatchObject({ ok: 0, failed: 1 });
        expect(summary.failures[0].code).toBe('SLUICE_E_CHANGED');
        // Caught as the stream ends (the bytes read) or, for a local source, as it opens (its descriptor).
        expect(summary.failures[0].error).toMatch(
          /read 100000 bytes but the source listed 3145728|100000 bytes now, 3145728 listed/,
        );
        expect(await sink.list(dir)).toEqual([]);
        expect(statSync(ws.path('in/big.bin')).size).toBe(100_000);
      },
    );
  },
);
