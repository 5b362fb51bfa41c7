import { describe, expect, it } from 'vitest';
import { isS3Retryable } from './client.js';
import { batchableKey, DeleteBatcher, type DeleteTransport, deleteObjectsInput } from './delete-batch.js';

type Answer = Awaited<ReturnType<DeleteTransport['deleteMany']>>;

/** A transport that records requests and answers each DeleteObjects with `answer` (default: all deleted). */
function fakeTransport(answer?: (keys: string[]) => Answer | Promise<Answer>) {
  const batches: { key: string; etag?: string }[][] = [];
  const singles: string[] = [];
  let release: (() => void) | undefined;
  const transport: DeleteTransport = {
    async deleteMany(objects) {
      batches.push(objects);
      // The first request stays open until released, so later deletes queue behind it.
      if (batches.length === 1) await new Promise<void>((r) => (release = r));
      const keys = objects.map((o) => o.key);
      return answer ? answer(keys) : { deleted: keys.map((Key) => ({ Key })), errors: [] };
    },
    async deleteOne(key) {
      singles.push(key);
    },
    location: (key) => `s3://b/${key}`,
  };
  return { transport, batches, singles, release: () => release?.() };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('DeleteBatcher', () => {
  it('sends deletes that arrive while a request is on its way as one request', async () => {
    const fake = fakeTransport();
    const batcher = new DeleteBatcher(fake.transport);
    const first = batcher.delete('k0', 'e0');
    await tick();
    const rest = Array.from({ length: 30 }, (_, i) => batcher.delete(`k${i + 1}`, `e${i + 1}`));
    await tick();
    expect(fake.batches).toHaveLength(1);
    fake.release();
    await Promise.all([first, ...rest]);
    expect(fake.batches.map((b) => b.length)).toEqual([1, 30]);
    expect(fake.batches[1][0]).toEqual({ key: 'k1', etag: 'e1' });
    expect(fake.singles).toEqual([]);
  });

  it('fails only the keys the answer names as errors, with clear errors', async () => {
    const fake = fakeTransport((keys) => ({
      deleted: keys.filter((k) => k !== 'denied' && k !== 'changed').map((Key) => ({ Key })),
      errors: [
        { Key: 'denied', Code: 'AccessDenied', Message: 'Access Denied' },
        { Key: 'changed', Code: 'PreconditionFailed', Message: 'At least one of the preconditions failed' },
        { Key: 'gone', Code: 'NoSuchKey', Message: 'The specified key does not exist.' },
      ],
    }));
    const batcher = new DeleteBatcher(fake.transport);
    const blocker = batcher.delete('first', undefined);
    await tick();
    const pending = ['a', 'denied', 'b', 'changed', 'gone'].map((k) => batcher.delete(k, 'etag'));
    fake.release();
    const [a, denied, b, changed, gone] = await Promise.allSettled([blocker, ...pending]).then((r) =>
      r.slice(1),
    );
    expect(a.status).toBe('fulfilled');
    expect(b.status).toBe('fulfilled');
    // A key that is gone is what was asked.
    expect(gone.status).toBe('fulfilled');
    expect(denied).toMatchObject({
      status: 'rejected',
      reason: { name: 'AccessDenied', message: 'Access Denied' },
    });
    expect(isS3Retryable((denied as PromiseRejectedResult).reason)).toBe(false);
    expect(changed).toMatchObject({ status: 'rejected', reason: { code: 'SLUICE_E_CHANGED' } });
    expect((changed as PromiseRejectedResult).reason.message).toContain('s3://b/changed was not deleted');
  });

  it('fails, retryably, a key the answer does not mention', async () => {
    const fake = fakeTransport((keys) => ({ deleted: keys.slice(1).map((Key) => ({ Key })), errors: [] }));
    const batcher = new DeleteBatcher(fake.transport);
    const blocker = batcher.delete('first', undefined);
    await tick();
    const [x, y] = [batcher.delete('x', undefined), batcher.delete('y', undefined)];
    fake.release();
    await expect(blocker).rejects.toMatchObject({ code: 'SLUICE_E_SOURCE', retryable: true });
    await expect(x).rejects.toMatchObject({ retryable: true });
    await expect(y).resolves.toBeUndefined();
  });

  it('fails every key of a request that fails as a whole, with its error', async () => {
    const boom = Object.assign(new Error('We encountered an internal error.'), {
      name: 'InternalError',
      $metadata: { httpStatusCode: 500 },
    });
    const fake = fakeTransport(() => {
      throw boom;
    });
    const batcher = new DeleteBatcher(fake.transport);
    const all = Promise.allSettled([batcher.delete('a', undefined), batcher.delete('b', undefined)]);
    await tick();
    fake.release();
    expect((await all).map((r) => (r as PromiseRejectedResult).reason)).toEqual([boom, boom]);
  });

  it('falls back to one DeleteObject per key, for good, when the service has no DeleteObjects', async () => {
    const fake = fakeTransport(() => {
      throw Object.assign(new Error('not implemented'), {
        name: 'NotImplemented',
        $metadata: { httpStatusCode: 501 },
      });
    });
    const batcher = new DeleteBatcher(fake.transport);
    const all = Promise.all([batcher.delete('a', undefined), batcher.delete('b', undefined)]);
    await tick();
    fake.release();
    await all;
    await batcher.delete('c', undefined);
    expect(fake.batches).toHaveLength(1);
    expect(fake.singles).toEqual(['a', 'b', 'c']);
  });

  it('sends a key asked twice in separate requests, and odd keys one by one', async () => {
    const fake = fakeTransport();
    const batcher = new DeleteBatcher(fake.transport);
    const blocker = batcher.delete('first', undefined);
    await tick();
    const all = Promise.all([
      batcher.delete('k', 'e1'),
      batcher.delete('k', 'e1'),
      batcher.delete('0012', undefined),
      batcher.delete(' spaced ', undefined),
    ]);
    await tick();
    fake.release();
    await Promise.all([blocker, all]);
    expect(fake.batches.map((b) => b.map((o) => o.key))).toEqual([['first'], ['k'], ['k']]);
    expect(fake.singles).toEqual(['0012', ' spaced ']);
  });

  it('close sends what waits, waits for it, and refuses later deletes', async () => {
    const fake = fakeTransport();
    const batcher = new DeleteBatcher(fake.transport);
    const first = batcher.delete('a', undefined);
    await tick();
    const second = batcher.delete('b', undefined);
    const closed = batcher.close();
    // Close does not wait for the blocked first request to send the second.
    await tick();
    expect(fake.batches.map((b) => b.map((o) => o.key))).toEqual([['a'], ['b']]);
    fake.release();
    await Promise.all([first, second, closed]);
    await expect(batcher.delete('c', undefined)).rejects.toMatchObject({ code: 'SLUICE_E_SOURCE' });
  });

  it('caps a request at maxBatch keys', async () => {
    const fake = fakeTransport();
    const batcher = new DeleteBatcher(fake.transport, { maxBatch: 3 });
    const first = batcher.delete('first', undefined);
    await tick();
    const rest = Array.from({ length: 7 }, (_, i) => batcher.delete(`k${i}`, undefined));
    await tick();
    fake.release();
    await Promise.all([first, ...rest]);
    expect(fake.batches.map((b) => b.length).sort()).toEqual([1, 1, 3, 3]);
  });
});

describe('batchableKey', () => {
  it('keeps keys an XML parser could read as another key out of batches', () => {
    expect(batchableKey('incoming/CHARGINGCDR_ü #1+2%&<>.dat')).toBe(true);
    for (const key of ['12', '0012', '1e3', ' a', 'a ', 'a\rb', 'a\u0085b', '\ud800x', '']) {
      expect(batchableKey(key), JSON.stringify(key)).toBe(false);
    }
  });
});

describe('deleteObjectsInput', () => {
  it('asks for a verbose answer, each key with its quoted ETag, and a Content-MD5', () => {
    expect(deleteObjectsInput('b', [{ key: 'a', etag: 'abc' }, { key: 'c' }])).toEqual({
      Bucket: 'b',
      Delete: { Objects: [{ Key: 'a', ETag: '"abc"' }, { Key: 'c' }], Quiet: false },
      ChecksumAlgorithm: 'MD5',
    });
  });
});
