/**
 * An error a step's stream emits surfaces where the sink consumes the bytes; it must still be
 * labelled with the step that produced it (`[p steps[0].decompress]`), not the sink, for a
 * local and a remote (s3rver) sink, also when later steps pass it on. A sink's own failure
 * keeps the sink's label.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../core/runtime/runner.js';
import { runPipelineFile } from '../../core/sdk.js';
import { listKeys, s3rverClient } from '../helpers/workflows.js';
import { listFiles, makeWorkspace } from '../helpers/workspace.js';
import { type S3rverHandle, startS3rver } from '../servers/s3rver.js';

const ws = makeWorkspace('sluice-labels-');
let s3: S3rverHandle;

/** ~1.3 MB of CSV in ~300 KB of gzip: the damage sits well past the first chunk the sink reads. */
const plain = Buffer.from(
  Array.from({ length: 60_000 }, (_, i) => `${i};${(i * 7919) % 100_003};row ${i}\n`).join(''),
);
const good = gzipSync(plain);
const corrupt = Buffer.from(good);
corrupt.fill(0xff, Math.floor(corrupt.length / 2), Math.floor(corrupt.length / 2) + 8);

beforeAll(async () => {
  s3 = await startS3rver();
  await s3.createBucket('labels');
}, 60_000);

afterAll(async () => {
  await s3?.stop();
  ws.cleanup();
});

function onlyFailure(summary: RunSummary) {
  expect(summary).toMatchObject({ ok: 1, failed: 1, retries: 0 });
  const [failure] = summary.failures;
  expect(failure).toMatchObject({ source: 'local', path: 'corrupt.csv.gz', code: 'SLUICE_E_BAD_DATA' });
  return failure.error;
}

/** The whole message; only zlib's reason (which depends on where the damage falls) is loose. */
const decompressError = (pipeline: string) =>
  new RegExp(
    `^\\[${pipeline} steps\\[0\\]\\.decompress\\] item "corrupt\\.csv\\.gz": "corrupt\\.csv\\.gz": not a valid gzip file \\(invalid [a-z ]+\\)$`,
  );

/** `<name>/in` through decompress into `bucket` on s3rver, without retries. */
function decompressToS3(name: string, bucket: string): string {
  const { endpoint, credentials } = s3;
  return ws.pipeline(
    `name: ${name}\nsource:\n  local: { path: ./in }\nsteps:\n  - decompress: {}\nsink:\n  s3: { bucket: ${bucket}, region: us-east-1, endpoint: "${endpoint}", access_key_id: ${credentials.accessKeyId}, secret_access_key: ${credentials.secretAccessKey} }\npolicy:\n  retry: { max_attempts: 1 }\n`,
    `${name}/pipeline.yaml`,
  );
}

describe('a stream error is labelled with the step that produced it', () => {
  it('corrupt gzip through decompress into a local sink: steps[0].decompress, not sink.local', async () => {
    ws.write('local/in/corrupt.csv.gz', corrupt);
    ws.write('local/in/good.csv.gz', good);
    const file = ws.pipeline(
      'name: labels-local\nsource:\n  local: { path: ./in, after_success: delete }\nsteps:\n  - decompress: {}\nsink:\n  local: { path: ./out }\n',
      'local/pipeline.yaml',
    );
    expect(onlyFailure(await runPipelineFile(file))).toMatch(decompressError('labels-local'));
    expect(listFiles(ws.path('local', 'out'))).toEqual(['good.csv']);
    expect(listFiles(ws.path('local', 'in'))).toEqual(['corrupt.csv.gz']);
  });

  it('a later byte step passes the error on without claiming it (decompress → compress)', async () => {
    ws.write('chain/in/corrupt.csv.gz', corrupt);
    ws.write('chain/in/good.csv.gz', good);
    const file = ws.pipeline(
      'name: labels-chain\nsource:\n  local: { path: ./in }\nsteps:\n  - decompress: {}\n  - compress: { format: zstd }\nsink:\n  local: { path: ./out }\n',
      'chain/pipeline.yaml',
    );
    expect(onlyFailure(await runPipelineFile(file))).toMatch(decompressError('labels-chain'));
    expect(listFiles(ws.path('chain', 'out'))).toEqual(['good.csv.zst']);
  });

  it('corrupt gzip through decompress into an s3 sink: steps[0].decompress, not sink.s3', async () => {
    ws.write('labels-s3/in/corrupt.csv.gz', corrupt);
    ws.write('labels-s3/in/good.csv.gz', good);
    const file = decompressToS3('labels-s3', 'labels');
    expect(onlyFailure(await runPipelineFile(file))).toMatch(decompressError('labels-s3'));
    const client = s3rverClient(s3);
    try {
      expect(await listKeys(client, 'labels')).toEqual(['good.csv']);
    } finally {
      client.destroy();
    }
  }, 60_000);

  it("the sink's own failure keeps the sink's label (a missing bucket)", async () => {
    ws.write('labels-nobucket/in/good.csv.gz', good);
    const file = decompressToS3('labels-nobucket', 'no-such-bucket');
    const summary = await runPipelineFile(file);
    expect(summary).toMatchObject({ ok: 0, failed: 1 });
    expect(summary.failures[0].error).toMatch(/^\[labels-nobucket sink\.s3\] item "local:good\.csv": /);
  }, 60_000);
});
