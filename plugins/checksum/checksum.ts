import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { deriveItem, itemName } from '../../core/item.js';
import { definePlugin, type Item, type StepContext } from '../../core/plugin-api.js';
import { pipeThrough, STREAM_CHUNK } from '../../core/streams.js';
import {
  ALGORITHMS,
  type ChecksumAlgorithm,
  companionCandidates,
  findChecksum,
  HEX_LENGTH,
  isChecksumCompanion,
} from './checksum-files.js';
import { Crc32c } from './crc32c.js';
import { readSmallFile } from './read-small.js';

/** Companion files are a few lines; anything bigger is not a checksum file. */
const MAX_COMPANION_BYTES = 1024 * 1024;

const config = Type.Object(
  {
    algorithm: Type.Union(
      ALGORITHMS.map((a) => Type.Literal(a)),
      { description: 'Hash computed while the bytes stream through.', default: 'sha256' },
    ),
    expect: Type.Optional(
      Type.Union(
        [
          Type.Literal('companion', {
            description:
              'Read the expected value from `<file>.<algorithm>` beside the file, else from `SHA256SUMS` / `SHA1SUMS` / `MD5SUMS` / `CRC32CSUMS` in the same folder.',
          }),
          Type.Literal('metadata', {
            description: 'Compare with the checksum the source reported for the file.',
          }),
          Type.String({ pattern: '^[0-9a-fA-F]{8,128}$', description: 'The expected digest as hex.' }),
        ],
        {
          description:
            'Where the expected value comes from: `companion`, `metadata`, or a literal hex digest. Without it the checksum is only computed.',
        },
      ),
    ),
    required: Type.Boolean({
      description:
        'When `expect` finds no value for a file: fail the item (true) or pass it on with the checksum only computed (false).',
      default: true,
    }),
  },
  { additionalProperties: false },
);

type Hasher = { update(data: Uint8Array): unknown; digest(encoding: 'hex'): string };

function createHasher(algorithm: ChecksumAlgorithm): Hasher {
  if (algorithm === 'crc32c') {
    const crc = new Crc32c();
    return { update: (d) => crc.update(d), digest: () => crc.digest() };
  }
  return createHash(algorithm);
}

/** Passes bytes through unchanged; fails the stream before it ends when the digest differs. */
class ChecksumVerifier extends Transform {
  private readonly hasher: Hasher;

  constructor(
    private readonly algorithm: ChecksumAlgorithm,
    private readonly expected: string | undefined,
    private readonly onDigest: (digest: string) => void,
  ) {
    super({ highWaterMark: STREAM_CHUNK });
    this.hasher = createHasher(algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const actual = this.hasher.digest('hex');
    this.onDigest(actual);
    if (this.expected !== undefined && actual !== this.expected) {
      cb(
        new SluiceError(
          'SLUICE_E_BAD_DATA',
          `${this.algorithm} mismatch: expected ${this.expected}, computed ${actual}`,
          { retryable: false },
        ),
      );
      return;
    }
    cb();
  }
}

export const checksumPlugin = definePlugin({
  name: 'checksum',
  kind: 'transform',
  summary: 'Compute a checksum while streaming and fail the item when it differs from the expected one.',
  description: [
    'The bytes pass through unchanged. The digest (sha256, sha1, md5 or crc32c) is computed as they stream;',
    'a mismatch errors the stream before it ends, so the sink commits nothing.',
    'With `expect: companion`, `x.sha256` / `x.md5` / `x.sha1` / `x.crc32c` and `SHA256SUMS`-style files are',
    'consumed as companions and not processed as files of their own; a per-file companion is deleted or moved with',
    'its file by the source’s `after_success`, while a `SHA256SUMS`-style listing (shared by the folder) stays.',
    'When the expected value is known before',
    'streaming it is recorded in the item’s `checksums` (so sinks can store it as metadata).',
    'crc32c is a built-in slicing-by-8 implementation (no dependency).',
  ].join(' '),
  config,
  examples: [
    { title: 'Verify against sha256 companions', yaml: 'algorithm: sha256\nexpect: companion' },
    {
      title: 'Verify the source’s md5 if it has one',
      yaml: 'algorithm: md5\nexpect: metadata\nrequired: false',
    },
  ],
  create(cfg) {
    const algorithm = cfg.algorithm as ChecksumAlgorithm;
    const expect = cfg.expect;
    const literal =
      expect !== undefined && expect !== 'companion' && expect !== 'metadata' ? expect : undefined;
    if (literal !== undefined && literal.length !== HEX_LENGTH[algorithm]) {
      throw new SluiceError(
        'SLUICE_E_CONFIG',
        `expect: a ${algorithm} digest has ${HEX_LENGTH[algorithm]} hex digits, got ${literal.length}`,
        { context: { jsonPath: '/expect' } },
      );
    }

    async function fromCompanion(item: Item, ctx: StepContext): Promise<string | undefined> {
      const name = itemName(item);
      const [perFile, listing] = companionCandidates(name, algorithm);
      for (const candidate of [perFile, listing]) {
        const stream = await ctx.openSibling(item, candidate);
        if (!stream) continue;
        // `x.csv.sha256` belongs to x.csv and is finalized with it; a SUMS listing serves the
        // whole folder and stays at the source.
        if (candidate === perFile) ctx.reportCompanion?.(item, candidate);
        const text = (await readSmallFile(stream, candidate, MAX_COMPANION_BYTES)).toString('utf8');
        const found = findChecksum(text, name, algorithm, candidate === perFile);
        if (found !== undefined) return found;
      }
      return undefined;
    }

    async function expectedFor(item: Item, ctx: StepContext): Promise<string | undefined> {
      if (literal !== undefined) return literal.toLowerCase();
      if (expect === 'metadata') return item.checksums[algorithm]?.toLowerCase();
      if (expect === 'companion') return fromCompanion(item, ctx);
      return undefined;
    }

    return {
      async process(item, ctx) {
        const expected = await expectedFor(item, ctx);
        if (expected === undefined && expect !== undefined && cfg.required) {
          const where =
            expect === 'companion'
              ? 'no companion checksum file lists it'
              : `the source reported no ${algorithm}`;
          throw new SluiceError(
            'SLUICE_E_BAD_DATA',
            `no expected ${algorithm} for "${item.path}": ${where}`,
            {
              retryable: false,
            },
          );
        }
        const log = ctx.log;
        return deriveItem(item, {
          size: item.size,
          checksums: expected === undefined ? item.checksums : { ...item.checksums, [algorithm]: expected },
          open: async (signal) =>
            pipeThrough(
              await item.open(signal),
              new ChecksumVerifier(algorithm, expected, (digest) =>
                log.debug({ item: item.path, algorithm, digest }, 'checksum computed'),
              ),
            ),
        });
      },
      isCompanion: expect === 'companion' ? isChecksumCompanion : undefined,
    };
  },
});
