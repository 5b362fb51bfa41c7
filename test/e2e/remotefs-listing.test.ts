/**
 * Listing at scale (issue 16.7), against a real sshd: a big SFTP folder is listed as it
 * arrives (one READDIR reply at a time), not gathered whole first; the listing does not hold a
 * pooled session while the runtime works on what it yielded; it closes the folder on the
 * server when it ends, is stopped, or the session drops — and a drop fails it, never ends it short.
 */
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Static } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Item, SourceInstance } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { sftpSource } from '../../plugins/sftp/source.js';
import { makePluginContext } from '../helpers/context.js';
import { readAll } from '../helpers/remote-fs-fixtures.js';
import { listFiles, makeWorkspace } from '../helpers/workspace.js';
import { type SshdHandle, startSshd } from '../servers/sshd.js';

/** OpenSSH answers READDIR with at most 100 names: this folder takes 50 replies. */
const FILES = 5000;
const name = (i: number) => `f-${String(i).padStart(5, '0')}.dat`;

let sshd: SshdHandle;
let big: string;
const opened: SourceInstance[] = [];
const ws = makeWorkspace('sluice-listing-');

beforeAll(async () => {
  sshd = await startSshd('sluice-listing');
  big = join(sshd.rootDir, 'big');
  mkdirSync(big);
  // Readable by the server's user: listing and reading need nothing more.
  for (let i = 0; i < FILES; i++) closeSync(openSync(join(big, name(i)), 'w'));
  writeFileSync(join(big, name(0)), 'first file\n');
});

afterAll(async () => {
  await Promise.allSettled(opened.map((o) => o.close?.()));
  await sshd?.stop();
  ws.cleanup();
});

async function source(maxConnections: number, path = big): Promise<SourceInstance> {
  const config = { ...sshd.sftpConfig(), path, recursive: true, max_connections: maxConnections };
  const instance = await sftpSource.create(config as Static<typeof sftpSource.config>, makePluginContext());
  opened.push(instance);
  return instance;
}

describe('listing a big SFTP folder', () => {
  it('yields the first items while the server still has the folder open, on a session it does not hold', async () => {
    const src = await source(1);
    const listing = src.list(new AbortController().signal)[Symbol.asyncIterator]();
    const first = await listing.next();
    expect(first.done).toBe(false);
    // Read whole (`readdir(path)`), the folder would be closed on the server by now.
    expect(sshd.openHandles(big)).toBe(1);
    // The only session is free for the item while the folder is half read: a listing that
    // kept it borrowed would leave this read waiting for ever.
    const item = first.value as Item;
    const bytes = await readAll(await item.open());
    expect(bytes.length).toBe(item.size);
    expect(sshd.openHandles(big)).toBe(1);

    const paths = new Set([item.path]);
    for (let next = await listing.next(); !next.done; next = await listing.next()) paths.add(next.value.path);
    expect(paths.size).toBe(FILES);
    expect(paths.has(name(0)) && paths.has(name(FILES - 1))).toBe(true);
    expect(sshd.openHandles(big)).toBe(0);
  });

  it('closes the folder on the server when the consumer stops early', async () => {
    const src = await source(2);
    let seen = 0;
    for await (const _ of src.list(new AbortController().signal)) if (++seen === 10) break;
    expect(seen).toBe(10);
    expect(sshd.openHandles(big)).toBe(0);
  });

  it('fails the listing when the session drops half way, instead of ending it short', async () => {
    const src = await source(1);
    const listing = src.list(new AbortController().signal)[Symbol.asyncIterator]();
    expect((await listing.next()).done).toBe(false);
    sshd.killSessions();
    let err: unknown;
    try {
      for (let next = await listing.next(); !next.done; next = await listing.next());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect(src.isRetryable!(err)).toBe(true);
  });

  it('lists small folders in name order, and counts a big one in `check`', async () => {
    const dir = join(sshd.rootDir, 'small');
    mkdirSync(dir);
    for (const n of ['c.txt', 'a.txt', 'b.txt', 'aa.txt']) writeFileSync(join(dir, n), n);
    const small = await source(1, dir);
    const paths: string[] = [];
    for await (const item of small.list(new AbortController().signal)) paths.push(item.path);
    expect(paths).toEqual(['a.txt', 'aa.txt', 'b.txt', 'c.txt']);

    const src = await source(1);
    const { detail } = await src.check!({ depth: 'full', signal: new AbortController().signal });
    expect(detail).toContain(`listed (${FILES} entries)`);
  });

  it('delivers the whole folder through the runtime with one session and four workers', async () => {
    const file = ws.pipeline(
      [
        'name: big-list',
        'source:',
        '  sftp:',
        ...sshd.sftpYaml(),
        `    path: ${big}`,
        '    max_connections: 1',
        // 100 of the files, spread over the folder: items are processed while it is listed.
        '    include: ["f-010*.dat"]',
        'sink:',
        '  local: { path: ./out }',
        'policy:',
        '  concurrency: 4',
        '',
      ].join('\n'),
      'big-list.yaml',
    );
    const summary = await runPipelineFile(file);
    expect(summary).toMatchObject({ ok: 100, failed: 0 });
    expect(listFiles(ws.path('out'))).toHaveLength(100);
  });
});
