/**
 * Shared by the seed-workflow tests (test/e2e/workflows): they run the runnable pipeline files
 * in pipelines/ as they are, pointed at test servers and temp folders through ${VAR}s.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { RunSummary } from '../../core/runtime/runner.js';
import { runPipelineFile } from '../../core/sdk.js';
import { type S3rverHandle, s3Client } from '../servers/s3rver.js';
import { readAll } from './object-store.js';
import { SLUICE_BIN } from './sluice-process.js';

export const PIPELINES_DIR = join(import.meta.dirname, '..', '..', 'pipelines');

export const pipelineFile = (name: string) => join(PIPELINES_DIR, `${name}.yaml`);

/**
 * One pass of `pipelines/<name>.yaml` in-process. `env` replaces the process environment for
 * interpolation (so a test cannot pass by accident on a variable set elsewhere).
 */
export function runWorkflow(
  name: string,
  env: Record<string, string>,
  options: { stateDir: string; dryRun?: boolean; force?: boolean },
): Promise<RunSummary> {
  return runPipelineFile(pipelineFile(name), { env, ...options });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `node bin/sluice.js <args>` with only PATH/HOME and `env` in its environment. Asynchronous:
 * a test server living in the test process (the REST API) must keep serving meanwhile.
 */
export function runCli(
  args: string[],
  cwd: string,
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SLUICE_BIN, ...args], {
      cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `sluice ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr:\n${stderr.slice(-3000)}`,
        ),
      );
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The env block that points a pipeline's s3 plugins at s3rver. */
export function s3rverEnv(server: S3rverHandle): Record<string, string> {
  return {
    S3_ENDPOINT: server.endpoint,
    S3_ACCESS_KEY_ID: server.credentials.accessKeyId,
    S3_SECRET_ACCESS_KEY: server.credentials.secretAccessKey,
    AWS_REGION: 'us-east-1',
  };
}

/** The suite's one s3rver SDK client (servers/s3rver.ts). */
export function s3rverClient(server: S3rverHandle): S3Client {
  return s3Client(server);
}

/** Every key of the bucket (under `prefix`), sorted. */
export async function listKeys(client: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of paginateListObjectsV2({ client }, { Bucket: bucket, Prefix: prefix })) {
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
  }
  return keys.sort();
}

export async function getObject(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return readAll(res.Body as Readable);
}

export async function headMetadata(
  client: S3Client,
  bucket: string,
  key: string,
): Promise<Record<string, string>> {
  const res = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  return res.Metadata ?? {};
}

/** Runs `fn` over `items` with at most `limit` in flight (seeding servers quickly). */
export async function inParallel<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
