/**
 * Starts s3rver in a child process for tests. It must not run inside the vitest process: its
 * ListObjectsV2 continuation tokens use DES, which Node 20 only offers with
 * `--openssl-legacy-provider` (without it every second page is a 500).
 *
 * The child prints one JSON line per HTTP request it receives, so a test can prove which calls
 * a plugin made (e.g. that a server-side copy issued no GetObject).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { S3Client } from '@aws-sdk/client-s3';

export interface S3rverRequest {
  method: string;
  /** Path and query as received, still URL-encoded. */
  url: string;
  /** True when the request carried `x-amz-copy-source` (CopyObject / UploadPartCopy). */
  copy: boolean;
  /** True when the AWS SDK sent it (its user-agent), false for Sluice's lean requests. */
  sdk: boolean;
}

export interface S3rverHandle {
  endpoint: string;
  /** Folder where s3rver keeps buckets (and the parts of unfinished multipart uploads). */
  dir: string;
  /** Client settings for s3rver's fixed credentials. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  createBucket(name: string): Promise<void>;
  /** Every request received so far, in order (waits until the log has caught up). */
  requests(): Promise<S3rverRequest[]>;
  /** Forgets the requests logged so far. */
  clearRequests(): Promise<void>;
  stop(): Promise<void>;
}

const CHILD_SCRIPT = `
const S3rver = require('s3rver');
const server = new S3rver({ address: '127.0.0.1', port: 0, directory: process.argv[1], silent: true });
server.run().then((address) => {
  if (process.argv[2] !== 'quiet') server.httpServer.prependListener('request', (req) => {
    process.stdout.write(JSON.stringify({ log: { method: req.method, url: req.url, copy: 'x-amz-copy-source' in req.headers, sdk: /aws-sdk/.test(req.headers['user-agent'] || '') } }) + '\\n');
  });
  process.stdout.write(JSON.stringify({ port: address.port }) + '\\n');
}, (err) => { console.error(err); process.exit(1); });
process.on('SIGTERM', () => server.close().finally(() => process.exit(0)));
`;

const FLUSH_MARKER = '/sluice-log-flush-';

/**
 * `logRequests: false` (the benchmarks) keeps s3rver from writing a line per request: a parent
 * blocked in execFileSync would not drain them, and the pipe would stall the server.
 */
export async function startS3rver(options: { logRequests?: boolean } = {}): Promise<S3rverHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-s3rver-'));
  const child = spawn(
    process.execPath,
    ['-e', CHILD_SCRIPT, dir, options.logRequests === false ? 'quiet' : 'log'],
    {
      cwd: join(import.meta.dirname, '..', '..'),
      env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  // Should the test process die without afterAll, do not leave the server behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let log: S3rverRequest[] = [];
  const lineWaiters = new Set<() => void>();
  const lines = createInterface({ input: child.stdout! });

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3rver did not start within 10 s: ${stderr}`)), 10_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with ${code}: ${stderr}`));
    });
    lines.on('line', (line) => {
      const message = JSON.parse(line) as { port?: number; log?: S3rverRequest };
      if (message.port) {
        clearTimeout(timer);
        resolve(message.port);
      } else if (message.log) {
        log.push(message.log);
        for (const wake of lineWaiters) wake();
      }
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  let flushCount = 0;

  /** Sends a marker request and waits until it shows in the log: every earlier line is in. */
  const flush = async () => {
    const marker = `${FLUSH_MARKER}${++flushCount}`;
    const seen = new Promise<void>((resolve) => {
      const wake = () => {
        if (log.some((r) => r.url.startsWith(marker))) {
          lineWaiters.delete(wake);
          resolve();
        }
      };
      lineWaiters.add(wake);
    });
    await httpRequest('HEAD', `${endpoint}${marker}`);
    await seen;
  };

  return {
    endpoint,
    dir,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    async createBucket(name: string) {
      const status = await httpRequest('PUT', `${endpoint}/${name}`);
      if (status !== 200) throw new Error(`s3rver: creating bucket ${name} returned HTTP ${status}`);
    },
    async requests() {
      await flush();
      return log.filter((r) => !r.url.startsWith(FLUSH_MARKER));
    },
    async clearRequests() {
      await flush();
      log = [];
    },
    stop: () => stopChild(child, () => rmSync(dir, { recursive: true, force: true })),
  };
}

/** Anonymous request: s3rver accepts unsigned requests, which is all the helpers need. */
function httpRequest(method: string, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

function stopChild(child: ChildProcess, cleanup: () => void): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      cleanup();
      resolve();
    };
    if (child.exitCode !== null || child.signalCode !== null) return done();
    const killTimer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(killTimer);
      done();
    });
    child.kill('SIGTERM');
  });
}

/** An SDK client of the server (path-style, its test credentials, no checksums it cannot check). */
export function s3Client(server: Pick<S3rverHandle, 'endpoint' | 'credentials'>): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: server.credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
}
