/**
 * s3 source and sink through the real runtime while a TCP proxy in front of s3rver resets,
 * stalls and slows connections: every file must arrive once, whole, with nothing partial left.
 */
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import {
  describeFaults,
  expectExactlyTheCorpus,
  expectSurvivedFaults,
  FAULT_POLICY_YAML,
  faultProfile,
  makeCorpus,
  sha256Of,
  writeCorpus,
} from '../helpers/fault-suite.js';
import { listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { type FaultProxy, startFaultProxy } from '../servers/fault-proxy.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

const BUCKET = 'sluice-faults';
let server: S3rverHandle;
let client: S3Client;
let ws: Workspace;

beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket(BUCKET);
  client = new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: server.credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    // The checking client talks to s3rver directly; a kept-alive socket it closed while the
    // faulted run was going on fails one request with "socket hang up": retry it, as apps do.
    maxAttempts: 6,
  });
  ws = makeWorkspace('sluice-faults-s3-');
});

afterAll(async () => {
  client?.destroy();
  await server?.stop();
  ws?.cleanup();
});

async function proxyToS3rver(): Promise<FaultProxy> {
  return startFaultProxy({
    target: { host: '127.0.0.1', port: Number(new URL(server.endpoint).port) },
    faults: faultProfile(),
  });
}

function s3Yaml(proxy: FaultProxy, prefix: string): string[] {
  return [
    `    bucket: ${BUCKET}`,
    `    endpoint: http://127.0.0.1:${proxy.port}`,
    '    access_key_id: S3RVER',
    '    secret_access_key: S3RVER',
    `    prefix: ${prefix}`,
  ];
}

async function keysUnder(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }),
    );
    keys.push(...(page.Contents ?? []).map((o) => o.Key!));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

async function objectSha256(key: string): Promise<string> {
  const res = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  const chunks: Buffer[] = [];
  for await (const chunk of res.Body as Readable) chunks.push(chunk as Buffer);
  return sha256Of(Buffer.concat(chunks));
}

describe('s3 under network faults', () => {
  it('sink: local → s3 uploads every file exactly once', async () => {
    // The SDK retries a buffered PutObject itself (3 attempts), which hides every reset from the
    // runtime. With one SDK attempt, the plugin's error classification and the runtime's retry
    // (re-reading the source) are what must recover.
    process.env.AWS_MAX_ATTEMPTS = '1';
    const files = makeCorpus();
    writeCorpus(ws.path('up'), files);
    const proxy = await proxyToS3rver();
    try {
      const file = ws.pipeline(
        [
          'name: faults-s3-sink',
          'source:',
          '  local: { path: ./up }',
          'sink:',
          '  s3:',
          ...s3Yaml(proxy, 'landed/'),
          FAULT_POLICY_YAML,
        ].join('\n'),
        's3-sink.yaml',
      );
      const summary = await runPipelineFile(file, { stateDir: ws.path('state-sink') });
      console.info(describeFaults('s3 sink', summary, [proxy]));
      expectSurvivedFaults(summary, files, [proxy]);
      const keys = await keysUnder('landed/');
      const arrived = await Promise.all(
        keys.map(async (key) => ({ path: key.slice('landed/'.length), sha256: await objectSha256(key) })),
      );
      expectExactlyTheCorpus(arrived, files);
    } finally {
      delete process.env.AWS_MAX_ATTEMPTS;
      await proxy.stop();
    }
  });

  it('source: s3 → local downloads every object exactly once', async () => {
    const files = makeCorpus();
    for (const f of files)
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `outgoing/${f.path}`, Body: f.data }));
    const proxy = await proxyToS3rver();
    try {
      const file = ws.pipeline(
        [
          'name: faults-s3-source',
          'source:',
          '  s3:',
          ...s3Yaml(proxy, 'outgoing/'),
          'sink:',
          '  local: { path: ./down }',
          FAULT_POLICY_YAML,
        ].join('\n'),
        's3-source.yaml',
      );
      const summary = await runPipelineFile(file, { stateDir: ws.path('state-source') });
      console.info(describeFaults('s3 source', summary, [proxy]));
      expectSurvivedFaults(summary, files, [proxy]);
      const arrived = listFiles(ws.path('down')).map((path) => ({
        path,
        sha256: sha256Of(readFileSync(ws.path('down', path))),
      }));
      expectExactlyTheCorpus(arrived, files);
      expect(await keysUnder('outgoing/')).toHaveLength(files.length);
    } finally {
      await proxy.stop();
    }
  });
});
