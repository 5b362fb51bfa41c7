/** `azure_blob` source: lists blobs under a prefix of a container, lazily, page by page. */
import type { Readable } from 'node:stream';
import type { BlobItem } from '@azure/storage-blob';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { createItem } from '../../core/item.js';
import { definePlugin, type Item } from '../../core/plugin-api.js';
import { sourceCommon } from '../../core/schema-fragments.js';
import { folderPrefix, joinKey } from '../object-store/keys.js';
import {
  AZURE_ORIGIN_KIND,
  azureConnectionFields,
  azureError,
  azureLocation,
  connectAzure,
  copyBlob,
  deleteBlob,
  downloadBlob,
  isAzureRetryable,
  isBlobNotFound,
  validateAzureConnection,
} from './client.js';

const config = Type.Object(
  {
    ...azureConnectionFields,
    prefix: Type.String({
      default: '',
      description:
        'Folder (name prefix) to list; a trailing `/` is implied. Item paths are blob names relative to it.',
    }),
    recursive: Type.Boolean({
      default: true,
      description: 'List blobs at any depth below the prefix; false: only blobs directly under it.',
    }),
    page_size: Type.Integer({
      minimum: 1,
      maximum: 5000,
      default: 5000,
      description: 'Blobs per listing page.',
    }),
    ...sourceCommon,
  },
  { additionalProperties: false },
);

export const azureBlobSource = definePlugin({
  name: 'azure_blob',
  kind: 'source',
  summary: 'Lists and reads blobs under a prefix of an Azure Storage container.',
  description:
    'Listing is paginated and lazy. Item identity is etag + size + last-modified; reads are pinned to the listed etag, so a replaced blob is never processed under the old identity. `after_success: {move_to: dir}` copies the blob server-side to `dir/<path>` in the same container, then deletes it.',
  config,
  examples: [
    {
      title: 'Blobs under exports/, moved to done/ once delivered',
      yaml: 'connection_string: ${AZURE_STORAGE_CONNECTION_STRING}\ncontainer: partner\nprefix: exports/\nafter_success:\n  move_to: done/\n',
    },
  ],
  validate: validateAzureConnection,
  async create(cfg, ctx) {
    const conn = await connectAzure(cfg);
    const sourceName = cfg.name ?? 'azure_blob';
    const prefix = folderPrefix(cfg.prefix);
    const namesByItem = new WeakMap<Item, string>();

    const makeItem = (blob: BlobItem): Item => {
      const name = blob.name;
      const etag = blob.properties.etag;
      const item = createItem({
        source: sourceName,
        path: name.slice(prefix.length),
        size: blob.properties.contentLength,
        mtime: blob.properties.lastModified,
        etag: etag?.replace(/^"|"$/g, ''),
        origin: {
          kind: AZURE_ORIGIN_KIND,
          endpoint: conn.endpointId,
          location: { container: conn.container.containerName, blob: name },
        },
        open: async (signal) => {
          try {
            return await downloadBlob(conn, name, { signal, ifMatch: etag });
          } catch (err) {
            throw azureError('SLUICE_E_SOURCE', `cannot read ${azureLocation(conn, name)}`, err);
          }
        },
      });
      namesByItem.set(item, name);
      return item;
    };

    const nameOf = (item: Item): string => {
      const known = namesByItem.get(item);
      if (known !== undefined) return known;
      const origin = item.origin;
      if (
        origin?.kind === AZURE_ORIGIN_KIND &&
        origin.endpoint === conn.endpointId &&
        origin.location.container === conn.container.containerName
      ) {
        return origin.location.blob;
      }
      return prefix + item.path;
    };

    const pages = (signal: AbortSignal): AsyncIterable<{ segment: { blobItems: BlobItem[] } }> => {
      const options = { prefix: prefix || undefined, abortSignal: signal };
      const byPage = { maxPageSize: cfg.page_size };
      return cfg.recursive
        ? conn.container.listBlobsFlat(options).byPage(byPage)
        : conn.container.listBlobsByHierarchy('/', options).byPage(byPage);
    };

    const attempt = async (what: string, action: () => Promise<void>) => {
      try {
        await action();
      } catch (err) {
        throw azureError('SLUICE_E_SOURCE', what, err);
      }
    };

    return {
      async *list(signal: AbortSignal) {
        try {
          for await (const page of pages(signal)) {
            for (const blob of page.segment.blobItems) {
              // Names ending in `/` are folder markers (hierarchical namespace, tools), not files.
              if (!blob.name.endsWith('/')) yield makeItem(blob);
            }
            if (signal.aborted) return;
          }
        } catch (err) {
          throw azureError('SLUICE_E_SOURCE', `cannot list ${azureLocation(conn, prefix)}`, err);
        }
      },

      async openPath(path: string, signal?: AbortSignal): Promise<Readable | null> {
        const name = joinKey(prefix, path);
        try {
          return await downloadBlob(conn, name, { signal });
        } catch (err) {
          if (isBlobNotFound(err)) return null;
          throw azureError('SLUICE_E_SOURCE', `cannot read ${azureLocation(conn, name)}`, err);
        }
      },

      async remove(item: Item) {
        const name = nameOf(item);
        await attempt(`cannot delete ${azureLocation(conn, name)}`, () => deleteBlob(conn, name));
      },

      async move(item: Item, toDir: string) {
        const name = nameOf(item);
        const target = joinKey(folderPrefix(toDir), item.path);
        if (target === name) {
          throw new SluiceError('SLUICE_E_SOURCE', `cannot move ${azureLocation(conn, name)} onto itself`, {
            retryable: false,
          });
        }
        await attempt(`cannot copy ${azureLocation(conn, name)} to ${target}`, () =>
          copyBlob(conn, conn.container.getBlobClient(name).url, target),
        );
        await attempt(`cannot delete ${azureLocation(conn, name)} after copying it to ${target}`, () =>
          deleteBlob(conn, name),
        );
        ctx.log.debug({ from: name, to: target }, 'azure blob moved');
      },

      isRetryable: isAzureRetryable,
    };
  },
});
