/**
 * The writing half shared by the S3 and Azure Blob sinks: each connector is an adapter
 * (`SinkBackend`) for its service's upload and copy; `if_exists`, metadata, the reserved numbered
 * names and what a commit reports live here once.
 *
 * Every commit reports the size the service holds (for a skip: the existing object's) and, when
 * `rename` chose another name, that `destination`. Writes that must not replace an object
 * (`rename`, and `skip`/`fail` when nothing was there) are exclusive (If-None-Match: *), so an
 * object created between the check and the commit is never overwritten where the service
 * honours the condition (AWS, Azure, Azurite; s3rver ignores it).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { SluiceError } from '../../core/errors.js';
import type {
  DestinationStat,
  Item,
  SinkCommit,
  SinkInstance,
  SinkWriteRequest,
} from '../../core/plugin-api.js';
import { type CheckTarget, checkError, checking } from './check.js';
import {
  decideForCopy,
  decideForWrite,
  type IfExistsMode,
  type ObjectStoreAccess,
  type StoredObject,
  storedChecksums,
} from './if-exists.js';
import { folderPrefix, joinKey } from './keys.js';
import { type MetadataTemplates, spoolHashed } from './metadata.js';

export interface UploadOptions {
  /** Only if no object exists at the key (If-None-Match: *); a taken key throws `takenError`. */
  exclusive: boolean;
  /** Byte count of the body when known. */
  size?: number;
  signal: AbortSignal;
}

export interface SinkBackend extends ObjectStoreAccess {
  /**
   * Uploads `body` atomically to `key` with `metadata`; rejects with the body's own error when
   * the body failed. Resolves to the stored size when the upload itself proves it (S3: a
   * single-part ETag equal to the MD5 of what was sent), else undefined (then it is asked).
   */
  upload(
    key: string,
    body: Readable,
    metadata: Record<string, string>,
    options: UploadOptions,
  ): Promise<number | undefined>;
  /**
   * Where `item`'s bytes are when this service can copy them server-side (same endpoint,
   * within limits): `key` is set when they are in this sink's own bucket or container.
   */
  copyableFrom(item: Item): { key?: string } | undefined;
  /**
   * Server-side copy of `item` (pinned to its listed etag) to `key`; metadata replaces the
   * source's when given. Resolves to the stored size when the copy proves it, undefined when
   * it must be asked, null when the copy is not allowed (credentials): the runtime streams.
   */
  copy(
    item: Item,
    key: string,
    options: { metadata?: Record<string, string>; exclusive: boolean; signal: AbortSignal },
  ): Promise<number | undefined | null>;
  delete(key: string): Promise<void>;
  error(what: string, err: unknown): SluiceError;
  /** Pre-flight: the root and how to read the service's errors. */
  readonly checks: CheckTarget;
}

export interface ObjectStoreSinkOptions {
  prefix: string | undefined;
  ifExists: IfExistsMode;
  metadata: MetadataTemplates;
  /** Folder for spooled bodies (metadata that needs `{sha256}` before the upload). */
  tempDir: string;
}

/** write, copy, readBack and remove of a sink (the connector adds isRetryable and close). */
export function createObjectStoreSink(
  backend: SinkBackend,
  options: ObjectStoreSinkOptions,
): Pick<SinkInstance, 'write' | 'copy' | 'readBack' | 'remove' | 'stat' | 'mtimePrecisionMs' | 'check'> {
  const prefix = folderPrefix(options.prefix);
  const { ifExists, metadata } = options;

  const storedObject = async (key: string): Promise<StoredObject> => {
    let stored: StoredObject | null;
    try {
      stored = await backend.stat(key);
    } catch (err) {
      throw backend.error(`cannot check ${backend.location(key)} after writing it`, err);
    }
    if (!stored) {
      throw new SluiceError('SLUICE_E_SINK', `${backend.location(key)} is not there right after writing it`, {
        retryable: true,
      });
    }
    return stored;
  };

  /**
   * What a write or copy to `key` reports. The stored mtime is read back (one HEAD /
   * getProperties) whenever one was stored, even when the upload already proved the size: only
   * the service can say what it kept. `provenSize` spares that request otherwise.
   */
  const committed = async (
    key: string,
    item: Item,
    provenSize: number | undefined,
    renamed: string | undefined,
  ): Promise<SinkCommit> => {
    const readsMtime = metadata.keepsMtime && item.mtime !== undefined;
    let size = provenSize;
    let mtime: Date | undefined;
    if (size === undefined || readsMtime) {
      const stored = await storedObject(key);
      size = stored.size;
      if (readsMtime) mtime = stored.mtime;
    }
    return {
      location: backend.location(key),
      size,
      ...(mtime !== undefined ? { mtime } : {}),
      ...(renamed !== undefined ? { destination: renamed } : {}),
    };
  };

  return {
    // A Date holds milliseconds; both spellings of the stored mtime keep at least that.
    mtimePrecisionMs: 1,

    async write(req: SinkWriteRequest): Promise<SinkCommit> {
      let decision: Awaited<ReturnType<typeof decideForWrite>>;
      try {
        decision = await decideForWrite(backend, prefix, req.destination, ifExists, req.body, {
          signal: req.signal,
          reserve: req.reserve,
        });
      } catch (err) {
        throw backend.error(`cannot check ${backend.location(joinKey(prefix, req.destination))}`, err);
      }
      if (decision.commit) return decision.commit;
      const { key, destination, exclusive } = decision;
      let size: number | undefined;
      if (!metadata.needsSha256 || req.sha256 !== undefined) {
        size = await backend.upload(key, req.body, metadata.render(req.item, req.sha256), {
          exclusive,
          size: req.size,
          signal: req.signal,
        });
      } else {
        const spooled = await spoolHashed(req.body, options.tempDir);
        try {
          size = await backend.upload(key, spooled.open(), metadata.render(req.item, spooled.sha256), {
            exclusive,
            size: spooled.size,
            signal: req.signal,
          });
        } finally {
          await spooled.remove();
        }
      }
      return committed(key, req.item, size, destination !== req.destination ? destination : undefined);
    },

    async copy(
      item: Item,
      destination: string,
      signal: AbortSignal,
      reserve?: (destination: string) => Promise<void>,
    ): Promise<SinkCommit | null> {
      const from = backend.copyableFrom(item);
      if (!from) return null;
      const sha256 = item.checksums.sha256;
      if (metadata.needsSha256 && sha256 === undefined) return null;
      const target = joinKey(prefix, destination);
      if (from.key === target) {
        throw new SluiceError(
          'SLUICE_E_DESTINATION',
          `destination ${backend.location(target)} is the source object itself`,
          { retryable: false },
        );
      }
      let decision: Awaited<ReturnType<typeof decideForCopy>>;
      try {
        decision = await decideForCopy(backend, prefix, destination, ifExists, item, { signal, reserve });
      } catch (err) {
        throw backend.error(`cannot check ${backend.location(target)}`, err);
      }
      if (decision === null) return null;
      if (decision.commit) return decision.commit;
      // Nothing to store: the copy keeps the source's metadata.
      const rendered = metadata.render(item, sha256);
      const { key } = decision;
      const size = await backend.copy(item, key, {
        metadata: Object.keys(rendered).length > 0 ? rendered : undefined,
        exclusive: decision.exclusive,
        signal,
      });
      if (size === null) return null;
      return committed(
        key,
        item,
        size,
        decision.destination !== destination ? decision.destination : undefined,
      );
    },

    async stat(destination: string, signal: AbortSignal): Promise<DestinationStat | null> {
      const key = joinKey(prefix, destination);
      let stored: StoredObject | null;
      try {
        stored = await backend.stat(key, signal);
      } catch (err) {
        throw backend.error(`cannot check ${backend.location(key)}`, err);
      }
      if (!stored) return null;
      const checksums = storedChecksums(stored);
      return {
        size: stored.size,
        ...(stored.mtime !== undefined ? { mtime: stored.mtime } : {}),
        ...(Object.keys(checksums).length > 0 ? { checksums } : {}),
      };
    },

    async check({ depth, signal }) {
      const target = backend.checks;
      await checking(target, 'SLUICE_E_SINK', 'reach', () => target.proveRoot(signal));
      const proven = `${target.noun} "${target.name}" at ${target.endpoint} exists, credentials accepted`;
      if (depth === 'cheap') return { detail: proven };
      // Exclusive: a probe name that is somehow taken is never overwritten.
      const probe = joinKey(prefix, `.sluice-check-${randomBytes(8).toString('hex')}`);
      await checking(target, 'SLUICE_E_SINK', 'write', () =>
        backend.upload(probe, Readable.from([]), {}, { exclusive: true, size: 0, signal }),
      );
      try {
        await backend.delete(probe);
      } catch (err) {
        const failed = checkError(target, 'SLUICE_E_SINK', 'delete', err);
        throw new SluiceError(
          'SLUICE_E_SINK',
          `${failed.message}; the probe ${backend.location(probe)} is left behind`,
          {
            cause: err,
            context: failed.context,
          },
        );
      }
      return { detail: `${proven}; wrote and removed ${backend.location(probe)}` };
    },

    async readBack(destination: string, signal: AbortSignal): Promise<Readable> {
      const key = joinKey(prefix, destination);
      try {
        return await backend.read(key, signal);
      } catch (err) {
        throw backend.error(`cannot read back ${backend.location(key)}`, err);
      }
    },

    async remove(destination: string): Promise<void> {
      const key = joinKey(prefix, destination);
      try {
        await backend.delete(key);
      } catch (err) {
        throw backend.error(`cannot delete ${backend.location(key)}`, err);
      }
    },
  };
}
