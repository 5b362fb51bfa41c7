/** compress: every format and level round-trips through the real decompressors. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { createItem } from '../../core/item.js';
import type { Item } from '../../core/plugin-api.js';
import { type CompressConfig, compressPlugin } from '../../plugins/compress/compress.js';
import { makePluginContext, makeStepContext } from '../helpers/context.js';

let work: string;
let input: string;
let original: Buffer;
let smallInput: string;
let smallOriginal: Buffer;

function csvLike(bytes: number): Buffer {
  const rows: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i++) {
    const row = `${i},customer-${(i * 7919) % 10007},${((i * 31) % 100000) / 100},2024-0${(i % 9) + 1}-1${i % 10}\n`;
    rows.push(row);
    length += row.length;
  }
  return Buffer.from(rows.join('')).subarray(0, bytes);
}

function fileItem(path: string): Item {
  return createItem({
    source: 'test',
    path: 'data/table.csv',
    size: statSync(path).size,
    open: async () => createReadStream(path),
  });
}

async function compress(config: CompressConfig, item = fileItem(input)) {
  const step = await compressPlugin.create(config, makePluginContext());
  const ctx = makeStepContext();
  const out = (await step.process(item, ctx)) as Item;
  const chunks: Buffer[] = [];
  for await (const chunk of await out.open()) chunks.push(chunk as Buffer);
  return { item: out, bytes: Buffer.concat(chunks), figures: ctx.figures };
}

function decompressWithCli(command: string, args: string[], data: Buffer): Buffer {
  return execFileSync(command, args, { input: data, maxBuffer: 64 * 1024 * 1024 });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'sluice-compress-e2e-'));
  input = join(work, 'table.csv');
  original = csvLike(3 * 1024 * 1024 + 123);
  writeFileSync(input, original);
  smallInput = join(work, 'small.csv');
  smallOriginal = csvLike(64 * 1024);
  writeFileSync(smallInput, smallOriginal);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('compress', () => {
  const levels = (min: number, max: number) => Array.from({ length: max - min + 1 }, (_, i) => min + i);
  const decoders = {
    gzip: (b: Buffer) => decompressWithCli('gzip', ['-dc'], b),
    brotli: (b: Buffer) => brotliDecompressSync(b),
    zstd: (b: Buffer) => decompressWithCli('zstd', ['-dc'], b),
  };
  const sweep = [
    ...levels(1, 9).map((level) => ['gzip', level] as const),
    ...levels(0, 11).map((level) => ['brotli', level] as const),
    ...levels(1, 19).map((level) => ['zstd', level] as const),
  ];

  it.each(sweep)('%s level %i round-trips a small file and reports its figures', async (format, level) => {
    const { item, bytes, figures } = await compress({ format, level }, fileItem(smallInput));
    expect(item.path).toBe(`data/table.csv${{ gzip: '.gz', brotli: '.br', zstd: '.zst' }[format]}`);
    expect(sha(decoders[format](bytes))).toBe(sha(smallOriginal));
    expect(figures).toEqual([{ kind: 'compression', bytesIn: smallOriginal.length, bytesOut: bytes.length }]);
  });

  it.each(['gzip', 'brotli', 'zstd'] as const)(
    '%s at its default level round-trips a 3 MiB file',
    async (format) => {
      const { item, bytes, figures } = await compress({ format });
      expect(item.size).toBeUndefined();
      expect(sha(decoders[format](bytes))).toBe(sha(original));
      expect(bytes.length).toBeLessThan(original.length / 2);
      expect(figures).toEqual([{ kind: 'compression', bytesIn: original.length, bytesOut: bytes.length }]);
    },
  );

  it('higher gzip levels make smaller files', async () => {
    const fast = await compress({ format: 'gzip', level: 1 });
    const best = await compress({ format: 'gzip', level: 9 });
    expect(best.bytes.length).toBeLessThan(fast.bytes.length);
  });

  it('defaults to gzip level 6', async () => {
    const byDefault = await compress({});
    expect(byDefault.item.path).toBe('data/table.csv.gz');
    expect(byDefault.bytes.equals((await compress({ format: 'gzip', level: 6 })).bytes)).toBe(true);
    expect(byDefault.bytes.equals((await compress({ format: 'gzip', level: 1 })).bytes)).toBe(false);
  });

  it('passes files under min_size through unchanged; unknown sizes are compressed', async () => {
    const step = await compressPlugin.create({ min_size: '4MiB' }, makePluginContext());
    const small = fileItem(input);
    expect(await step.process(small, makeStepContext())).toBe(small);
    const unknown = createItem({
      source: 'test',
      path: 'data/table.csv',
      open: async () => createReadStream(input),
    });
    expect(((await step.process(unknown, makeStepContext())) as Item).path).toBe('data/table.csv.gz');
    const big = await compress({ min_size: '1MiB' });
    expect(big.item.path).toBe('data/table.csv.gz');
  });

  it('refuses a level outside the format range with a config error at /level', async () => {
    const error = await Promise.resolve()
      .then(() => compressPlugin.create({ format: 'gzip', level: 12 }, makePluginContext()))
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SluiceError);
    expect((error as SluiceError).code).toBe('SLUICE_E_CONFIG');
    expect((error as SluiceError).context.jsonPath).toBe('/level');
  });

  it('surfaces a failing input as a stream error through zstd', async () => {
    const item = createItem({
      source: 'test',
      path: 'broken.csv',
      open: async () => createReadStream(join(work, 'does-not-exist.csv')),
    });
    const step = await compressPlugin.create({ format: 'zstd' }, makePluginContext());
    const out = (await step.process(item, makeStepContext())) as Item;
    const error = await (async () => {
      for await (const _ of await out.open());
    })().catch((err: unknown) => err);
    expect((error as NodeJS.ErrnoException).code).toBe('ENOENT');
  });
});
