/** `s3` source: lists objects under one or more prefixes of a bucket, lazily, page by page. */
import type { Readable } from 'node:stream';
import type { _Object, ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { createItem } from '../../core/item.js';
import { definePlugin, type Item } from '../../core/plugin-api.js';
import { sourceCommon } from '../../core/schema-fragments.js';
import { folderPrefix, joinKey } from '../object-store/keys.js';
import {
  connectS3,
  copyObject,
  deleteObject,
  getObjectStream,
  isNotFound,
  isS3Retryable,
  MAX_SINGLE_COPY_BYTES,
  S3_ORIGIN_KIND,
  s3ConnectionFields,
  s3Error,
  s3Location,
} from './client.js';

const config = Type.Object(
  {
    ...s3ConnectionFields,
    prefix: Type.String({
      default: '',
      description:
        'Folder (key prefix) to list; a trailing `/` is implied. Item paths are keys relative to it.',
      examples: ['incoming/'],
    }),
    prefixes: Type.Optional(
      Type.Array(Type.String(), {
        minItems: 1,
        description:
          'Several folders to list, in order, instead of `prefix`; each item keeps its path relative to the prefix that found it (a key under two of them is listed once).',
      }),
    ),
    recursive: Type.Boolean({
      default: true,
      description: 'List keys at any depth below the prefix; false: only keys directly under it.',
    }),
    page_size: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 1000,
      description: 'Keys per ListObjectsV2 page.',
    }),
    ...sourceCommon,
  },
  { additionalProperties: false },
);

export const s3Source = definePlugin({
  name: 's3',
  kind: 'source',
  summary: 'Lists and reads objects under a prefix of an S3 (or S3-compatible) bucket.',
  description:
    'Listing is paginated and lazy. Item identity is etag + size + LastModified; reads are pinned to the listed etag (If-Match), so a replaced object is never processed under the old identity. Items carry their bucket/key as origin, so an s3 sink on the same endpoint copies them server-side without downloading. `after_success: {move_to: dir}` moves objects to `dir/<path>` in the same bucket (dir is a key prefix from the bucket root).',
  config,
  examples: [
    {
      title: 'Files directly under incoming/, deleted once delivered',
      yaml: 'bucket: cdr-bucket\nprefix: incoming/\nrecursive: false\nafter_success: delete\n',
    },
    {
      title: 'An S3-compatible store with explicit credentials',
      yaml: 'bucket: exports\nendpoint: http://minio.internal:9000\naccess_key_id: ${MINIO_KEY}\nsecret_access_key: ${MINIO_SECRET}\nprefixes: [daily/, weekly/]\n',
    },
  ],
  validate(cfg) {
    if (cfg.prefixes && cfg.prefix !== '') {
      throw new SluiceError('SLUICE_E_CONFIG', 'use either prefix or prefixes, not both', {
        context: { jsonPath: '/prefixes' },
      });
    }
  },
  async create(cfg, ctx) {
    s3Source.validate!(cfg);
    const conn = await connectS3(cfg);
    const sourceName = cfg.name ?? 's3';
    const prefixes = (cfg.prefixes ?? [cfg.prefix]).map(folderPrefix);
    const keysByItem = new WeakMap<Item, string>();

    const makeItem = (prefix: string, object: _Object & { Key: string }): Item => {
      const key = object.Key;
      const quotedEtag = object.ETag;
      const item = createItem({
        source: sourceName,
        path: key.slice(prefix.length),
        size: object.Size,
        mtime: object.LastModified,
        etag: quotedEtag?.replace(/^"|"$/g, ''),
        origin: { kind: S3_ORIGIN_KIND, endpoint: conn.endpointId, location: { bucket: conn.bucket, key } },
        open: async (signal) => {
          try {
            return await getObjectStream(conn, key, { signal, ifMatch: quotedEtag });
          } catch (err) {
            throw s3Error('SLUICE_E_SOURCE', `cannot read ${s3Location(conn.bucket, key)}`, err);
          }
        },
      });
      keysByItem.set(item, key);
      return item;
    };

    /** The key of an item this source listed (also when a step derived a new item from it). */
    const keyOf = (item: Item): string => {
      const known = keysByItem.get(item);
      if (known !== undefined) return known;
      const origin = item.origin;
      if (
        origin?.kind === S3_ORIGIN_KIND &&
        origin.endpoint === conn.endpointId &&
        origin.location.bucket === conn.bucket
      ) {
        return origin.location.key;
      }
      return prefixes[0] + item.path;
    };

    /** True when an earlier prefix already listed `key` (overlapping prefixes). */
    const listedEarlier = (key: string, index: number): boolean =>
      prefixes
        .slice(0, index)
        .some((p) => key.startsWith(p) && (cfg.recursive || !key.slice(p.length).includes('/')));

    async function* listPrefix(prefix: string, index: number, signal: AbortSignal): AsyncGenerator<Item> {
      let token: string | undefined;
      do {
        let page: ListObjectsV2CommandOutput;
        try {
          page = await conn.client.send(
            new conn.sdk.ListObjectsV2Command({
              Bucket: conn.bucket,
              Prefix: prefix || undefined,
              Delimiter: cfg.recursive ? undefined : '/',
              MaxKeys: cfg.page_size,
              ContinuationToken: token,
            }),
            { abortSignal: signal },
          );
        } catch (err) {
          throw s3Error('SLUICE_E_SOURCE', `cannot list ${s3Location(conn.bucket, prefix)}`, err);
        }
        for (const object of page.Contents ?? []) {
          const key = object.Key;
          // Keys ending in `/` are folder markers made by consoles, not files.
          if (key === undefined || key.endsWith('/') || listedEarlier(key, index)) continue;
          yield makeItem(prefix, { ...object, Key: key });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined && !signal.aborted);
    }

    const attempt = async (what: string, action: () => Promise<void>) => {
      try {
        await action();
      } catch (err) {
        throw s3Error('SLUICE_E_SOURCE', what, err);
      }
    };

    return {
      async *list(signal: AbortSignal) {
        for (const [index, prefix] of prefixes.entries()) {
          if (signal.aborted) return;
          yield* listPrefix(prefix, index, signal);
        }
      },

      async openPath(path: string, signal?: AbortSignal): Promise<Readable | null> {
        for (const prefix of prefixes) {
          const key = joinKey(prefix, path);
          try {
            return await getObjectStream(conn, key, { signal });
          } catch (err) {
            if (!isNotFound(err))
              throw s3Error('SLUICE_E_SOURCE', `cannot read ${s3Location(conn.bucket, key)}`, err);
          }
        }
        return null;
      },

      async remove(item: Item) {
        const key = keyOf(item);
        await attempt(`cannot delete ${s3Location(conn.bucket, key)}`, () => deleteObject(conn, key));
      },

      async move(item: Item, toDir: string) {
        const key = keyOf(item);
        const target = joinKey(folderPrefix(toDir), item.path);
        if (item.size !== undefined && item.size > MAX_SINGLE_COPY_BYTES) {
          throw new SluiceError(
            'SLUICE_E_SOURCE',
            `cannot move ${s3Location(conn.bucket, key)}: objects over 5 GiB need a multipart copy, which this source does not do; use after_success: delete or keep`,
            { retryable: false },
          );
        }
        await attempt(
          `cannot copy ${s3Location(conn.bucket, key)} to ${s3Location(conn.bucket, target)}`,
          async () => {
            await copyObject(conn, { bucket: conn.bucket, key }, target);
          },
        );
        await attempt(`cannot delete ${s3Location(conn.bucket, key)} after copying it to ${target}`, () =>
          deleteObject(conn, key),
        );
        ctx.log.debug({ from: key, to: target }, 's3 object moved');
      },

      isRetryable: isS3Retryable,

      async close() {
        conn.client.destroy();
      },
    };
  },
});
