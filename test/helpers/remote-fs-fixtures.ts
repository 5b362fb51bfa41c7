/** Shared fixtures for the SFTP and FTP end-to-end tests. */
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { createItem } from '../../core/item.js';
import type { SinkWriteRequest } from '../../core/plugin-api.js';

/** Awkward names a remote connector must survive: spaces, quotes, `#`, `%`, unicode. */
export const ODD_NAMES = [
  'plain.txt',
  'with space.csv',
  `quote's "double".txt`,
  'ünïcødé-日本.txt',
  '100%.dat',
  'hash#1.txt',
  'sub dir/deep/nested file.bin',
];

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes `files` (relative path → bytes) under `root`, owned by uid/gid. */
export function writeTree(root: string, files: Record<string, Buffer>, uid: number, gid: number): void {
  mkdirSync(root, { recursive: true });
  chownSync(root, uid, gid);
  for (const [rel, data] of Object.entries(files)) {
    const path = join(root, rel);
    const parts = relative(root, path).split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = join(root, ...parts.slice(0, i));
      mkdirSync(dir, { recursive: true });
      chownSync(dir, uid, gid);
    }
    writeFileSync(path, data);
    chownSync(path, uid, gid);
  }
}

/** Every file under `root`, as sorted relative paths. */
export function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(root, path));
    }
  };
  walk(root);
  return out.sort();
}

export function randomData(size: number): Buffer {
  return randomBytes(size);
}

export function writeRequest(destination: string, data: Buffer | Readable): SinkWriteRequest {
  const body = Buffer.isBuffer(data) ? Readable.from([data]) : data;
  return {
    item: createItem({ source: 'test', path: destination, open: async () => Readable.from([]) }),
    destination,
    body,
    size: Buffer.isBuffer(data) ? data.length : undefined,
    signal: new AbortController().signal,
  };
}

/** A body that sends `prefix` and then fails, like a tampered PGP message at its end. */
export function failingBody(prefix: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(prefix);
      } else {
        this.destroy(new Error('integrity check failed at end of stream'));
      }
    },
  });
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
