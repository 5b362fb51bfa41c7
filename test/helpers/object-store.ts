/** Helpers shared by the S3 and Azure Blob end-to-end tests. */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Static, TSchema } from '@sinclair/typebox';
import { validateAgainst } from '../../core/config/validate.js';
import type { Item, Plugin, SinkCommit, SinkInstance } from '../../core/plugin-api.js';

/** Validates `raw` against the plugin's schema as the loader does (defaults filled in). */
export function configure<S extends TSchema>(plugin: Plugin<S>, raw: Record<string, unknown>): Static<S> {
  const value = structuredClone(raw);
  const problems = validateAgainst(plugin.config, value);
  if (problems.length > 0) {
    throw new Error(
      `invalid ${plugin.name} config: ${problems.map((p) => `${p.path} ${p.message}`).join('; ')}`,
    );
  }
  return value as Static<S>;
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Deterministic pseudo-random bytes (incompressible enough, reproducible). */
export function patternBytes(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A body that sends `before` bytes in 1 MiB chunks and then fails with `error`. */
export function failingBody(before: number, error: Error): Readable {
  return Readable.from(
    (async function* () {
      const chunk = 1024 * 1024;
      for (let sent = 0; sent < before; sent += chunk) {
        yield patternBytes(Math.min(chunk, before - sent), sent + 7);
        await new Promise((r) => setImmediate(r));
      }
      throw error;
    })(),
  );
}

/** Calls `sink.write` as the runtime would, for a bare item at `destination`. */
export function writeTo(
  sink: SinkInstance,
  destination: string,
  body: Buffer | Readable,
  extra: { sha256?: string; size?: number } = {},
): Promise<SinkCommit> {
  const item = {
    source: 'test',
    path: destination,
    checksums: {},
    meta: {},
    open: async () => Readable.from([]),
  } as Item;
  return sink.write({
    item,
    destination,
    body: Buffer.isBuffer(body) ? Readable.from([body]) : body,
    signal: new AbortController().signal,
    ...extra,
  });
}

export function* chunksOf(data: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

/** Names that break naive URL or key handling: spaces, quotes, `%`, `+`, `#`, `&`, `;`, non-ASCII. */
export const ODD_NAMES = [
  'a file.txt',
  `quote'"s.txt`,
  '100%.txt',
  'a+b.txt',
  'hash#1.txt',
  'ünïcödé-日本.txt',
  'semi;colon&amp.txt',
];
