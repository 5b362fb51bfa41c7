import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { createObjectStoreSource, type ListPage, type SourceBackend, versionChange } from './source.js';

/** A backend whose listing is scripted page by page (pure logic of the shared source). */
function scripted(pages: Record<string, ListPage>): SourceBackend {
  return {
    location: (key) => `mem://${key}`,
    listPage: async (_prefix, _recursive, token) => pages[token ?? ''] ?? { objects: [] },
    read: async () => Readable.from([]),
    isNotFound: () => false,
    origin: (key) => ({ kind: 'mem', endpoint: 'mem', location: { key } }),
    keyFromOrigin: (origin) => origin?.location.key,
    deleteVersion: async () => undefined,
    copyVersion: async () => undefined,
    checks: {
      noun: 'bucket',
      name: 'mem',
      endpoint: 'mem',
      credentialFields: 'none',
      permission: () => 'none',
      proveRoot: async () => undefined,
      failureOf: () => undefined,
      reason: String,
    },
    error: (what, err) =>
      err instanceof SluiceError ? err : new SluiceError('SLUICE_E_SOURCE', `${what}: ${String(err)}`),
  };
}

const log = { debug: () => undefined };

describe('object-store source', () => {
  it('ends a listing whose service hands out a continuation token again', async () => {
    const source = createObjectStoreSource(
      scripted({
        '': { objects: [{ key: 'in/a.txt' }], next: 't1' },
        t1: { objects: [{ key: 'in/b.txt' }], next: 't2' },
        t2: { objects: [{ key: 'in/c.txt' }], next: 't1' },
      }),
      { sourceName: 'mem', prefixes: ['in'], recursive: true, log },
    );
    const seen: string[] = [];
    const listing = (async () => {
      for await (const item of source.list(new AbortController().signal)) seen.push(item.path);
    })();
    await expect(listing).rejects.toThrow(/continuation token it had already given/);
    expect(seen).toEqual(['a.txt', 'b.txt', 'c.txt']);
  });

  it('asks for the next page as soon as one arrives, while its items are worked through', async () => {
    const pages: Record<string, ListPage> = {
      '': { objects: [{ key: 'in/a.txt' }, { key: 'in/b.txt' }], next: 't1' },
      t1: { objects: [{ key: 'in/c.txt' }] },
    };
    const asked: string[] = [];
    const backend: SourceBackend = {
      ...scripted(pages),
      listPage: async (_prefix, _recursive, token) => {
        asked.push(token ?? '');
        return pages[token ?? ''];
      },
    };
    const source = createObjectStoreSource(backend, {
      sourceName: 'mem',
      prefixes: ['in'],
      recursive: true,
      log,
    });
    const listing = source.list(new AbortController().signal)[Symbol.asyncIterator]();
    expect((await listing.next()).value?.path).toBe('a.txt');
    expect(asked).toEqual(['', 't1']);
    const rest: string[] = [];
    for (let next = await listing.next(); !next.done; next = await listing.next()) rest.push(next.value.path);
    expect(rest).toEqual(['b.txt', 'c.txt']);
    expect(asked).toEqual(['', 't1']);
  });

  it('drops the failure of a page read ahead for a consumer that stopped', async () => {
    const backend: SourceBackend = {
      ...scripted({}),
      listPage: async (_prefix, _recursive, token) => {
        if (token === undefined) return { objects: [{ key: 'in/a.txt' }], next: 't1' };
        throw new Error('service gone');
      },
    };
    const source = createObjectStoreSource(backend, {
      sourceName: 'mem',
      prefixes: ['in'],
      recursive: true,
      log,
    });
    const seen: string[] = [];
    for await (const item of source.list(new AbortController().signal)) {
      seen.push(item.path);
      break;
    }
    expect(seen).toEqual(['a.txt']);
    // The same failure still ends a listing that goes on to that page.
    const all = (async () => {
      for await (const _ of source.list(new AbortController().signal));
    })();
    await expect(all).rejects.toThrow(/service gone/);
  });

  it('lists `inbox`, not `inbox2/`, and names each item by its exact key', async () => {
    const source = createObjectStoreSource(
      scripted({ '': { objects: [{ key: 'inbox/x.txt', etag: '"e1"' }, { key: 'inbox2/y.txt' }] } }),
      { sourceName: 'mem', prefixes: ['inbox'], recursive: true, log },
    );
    const items = [];
    for await (const item of source.list(new AbortController().signal)) items.push(item);
    expect(items.map((i) => [i.path, i.etag, i.origin?.location.key])).toEqual([
      ['x.txt', 'e1', 'inbox/x.txt'],
    ]);
  });

  it('with match: first, a path under an earlier prefix hides it under later ones; items carry their prefix', async () => {
    const pages = (prefix: string): ListPage => {
      const byPrefix: Record<string, string[]> = {
        'one/': ['one/a.txt'],
        'two/': ['two/a.txt', 'two/b.txt'],
        'three/': ['three/a.txt', 'three/b.txt', 'three/c.txt'],
      };
      return { objects: (byPrefix[prefix] ?? []).map((key) => ({ key })) };
    };
    const backend = { ...scripted({}), listPage: async (prefix: string) => pages(prefix) };
    const listed = async (match: 'all' | 'first') => {
      const source = createObjectStoreSource(backend, {
        sourceName: 'mem',
        prefixes: ['one', 'two/', 'three'],
        recursive: true,
        match,
        log,
      });
      const items = [];
      for await (const item of source.list(new AbortController().signal))
        items.push(`${item.root}:${item.path}`);
      return items;
    };
    expect(await listed('first')).toEqual(['one:a.txt', 'two/:b.txt', 'three:c.txt']);
    expect(await listed('all')).toHaveLength(6);
  });

  it('describes how the object at a key differs from the listed version', () => {
    expect(versionChange({ etag: 'e1', size: 3 }, { etag: '"e1"', size: 3 })).toBeUndefined();
    expect(versionChange({ etag: 'e1' }, { etag: '"e2"' })).toBe('etag e1 when listed, e2 now');
    expect(versionChange({ size: 3 }, { size: 4 })).toBe('3 bytes when listed, 4 now');
    expect(versionChange({}, { etag: 'e2', size: 4 })).toBeUndefined();
  });
});
