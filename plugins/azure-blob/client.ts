/**
 * What the azure_blob source and sink share: connection options (connection string, account
 * key, or SAS), the client factory (the Azure SDK is imported lazily), error classification.
 */
import { PassThrough, type Readable } from 'node:stream';
import type { BlobItem, BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { Secret } from '../../core/schema-fragments.js';
import { STREAM_CHUNK } from '../../core/streams.js';
import { type CheckTarget, isUnreachable } from '../object-store/check.js';
import { type ObjectStoreAccess, type StoredObject, storedChecksums } from '../object-store/if-exists.js';
import { quotedEtag } from '../object-store/keys.js';
import { MTIME_METADATA, parseStoredMtime } from '../object-store/mtime.js';
import { changedError, type ListedVersion, type ListPage } from '../object-store/source.js';

export const azureConnectionFields = {
  connection_string: Type.Optional(
    Secret(
      Type.String({
        description:
          'Storage account connection string (`DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…`).',
      }),
    ),
  ),
  account: Type.Optional(
    Type.String({ description: 'Storage account name (with `account_key` or `sas_token`).' }),
  ),
  account_key: Type.Optional(Secret(Type.String({ description: 'Storage account key.' }))),
  sas_token: Type.Optional(
    Secret(Type.String({ description: 'Shared access signature (query string) for `account`/`endpoint`.' })),
  ),
  sas_url: Type.Optional(
    Secret(
      Type.String({
        description:
          'SAS URL: of the container when `container` is not set, otherwise of the account (blob service).',
      }),
    ),
  ),
  endpoint: Type.Optional(
    Type.String({
      description: 'Blob service URL for `account` (default `https://<account>.blob.core.windows.net`).',
    }),
  ),
  container: Type.Optional(
    Type.String({ minLength: 3, description: 'Container name (optional only with a container `sas_url`).' }),
  ),
};

export interface AzureConnectionConfig {
  connection_string?: string;
  account?: string;
  account_key?: string;
  sas_token?: string;
  sas_url?: string;
  endpoint?: string;
  container?: string;
}

export interface AzureConnection {
  sdk: typeof import('@azure/storage-blob');
  container: ContainerClient;
  /** Identity of the storage account for `Item.origin.endpoint`: its blob service URL. */
  endpointId: string;
  /** Authorised by a SAS (which may not read container properties). */
  sas: boolean;
}

export const AZURE_ORIGIN_KIND = 'azure_blob';

/** Azure metadata names must be C# identifiers: no `-`. */
export const AZURE_SHA256_METADATA = 'sluice_sha256';

function configError(message: string, jsonPath: string): SluiceError {
  return new SluiceError('SLUICE_E_CONFIG', message, { context: { jsonPath } });
}

/** Static checks: exactly one way to authenticate, and a container. */
export function validateAzureConnection(config: AzureConnectionConfig): void {
  const ways = [
    config.connection_string !== undefined,
    config.account_key !== undefined,
    config.sas_token !== undefined,
    config.sas_url !== undefined,
  ].filter(Boolean).length;
  if (ways !== 1) {
    throw configError(
      'give exactly one of connection_string, account + account_key, account + sas_token, or sas_url',
      '',
    );
  }
  if (
    (config.account_key !== undefined || config.sas_token !== undefined) &&
    !config.account &&
    !config.endpoint
  ) {
    throw configError('account (or endpoint) is required with account_key or sas_token', '/account');
  }
  if (config.account_key !== undefined && !config.account) {
    throw configError('account is required with account_key', '/account');
  }
  if (config.container === undefined && config.sas_url === undefined) {
    throw configError('container is required', '/container');
  }
  for (const [field, value] of [
    ['endpoint', config.endpoint],
    ['sas_url', config.sas_url],
  ] as const) {
    if (value !== undefined && !URL.canParse(value)) throw configError(`${field} is not a URL`, `/${field}`);
  }
}

export async function connectAzure(config: AzureConnectionConfig): Promise<AzureConnection> {
  validateAzureConnection(config);

  const sdk = await import('@azure/storage-blob');
  let container: ContainerClient;
  if (config.sas_url && config.container === undefined) {
    container = new sdk.ContainerClient(config.sas_url);
  } else {
    let service: BlobServiceClient;
    if (config.connection_string) {
      try {
        service = sdk.BlobServiceClient.fromConnectionString(config.connection_string);
      } catch {
        // The SDK's message would quote the string, key included.
        throw configError('connection_string is not a valid storage connection string', '/connection_string');
      }
    } else if (config.sas_url) {
      service = new sdk.BlobServiceClient(config.sas_url);
    } else {
      const base = (config.endpoint ?? `https://${config.account}.blob.core.windows.net`).replace(/\/+$/, '');
      service = config.account_key
        ? new sdk.BlobServiceClient(
            base,
            new sdk.StorageSharedKeyCredential(config.account!, config.account_key),
          )
        : new sdk.BlobServiceClient(`${base}?${config.sas_token!.replace(/^\?/, '')}`);
    }
    container = service.getContainerClient(config.container!);
  }
  return {
    sdk,
    container,
    endpointId: accountIdentity(container.url, container.containerName),
    sas:
      config.sas_token !== undefined ||
      config.sas_url !== undefined ||
      /(^|;)SharedAccessSignature=/i.test(config.connection_string ?? ''),
  };
}

/** The account's blob service URL without query (SAS) and without the container segment. */
function accountIdentity(containerUrl: string, containerName: string): string {
  const url = new URL(containerUrl);
  const path = url.pathname.replace(/\/+$/, '');
  const suffix = `/${encodeURIComponent(containerName)}`;
  const accountPath = path.endsWith(suffix) ? path.slice(0, -suffix.length) : path;
  return `${url.protocol}//${url.host}${accountPath}`;
}

export function azureLocation(conn: AzureConnection, blob: string): string {
  return `azure://${conn.container.accountName}/${conn.container.containerName}/${blob}`;
}

const NOT_RETRYABLE_CODES = new Set([
  'BlobNotFound',
  'ContainerNotFound',
  'AuthenticationFailed',
  'AuthorizationFailure',
  'AuthorizationPermissionMismatch',
  'InvalidResourceName',
  'ConditionNotMet',
]);

const RETRYABLE_CODES = new Set(['ServerBusy', 'OperationTimedOut', 'InternalError', 'REQUEST_SEND_ERROR']);

/** Retry classification of Azure errors; undefined leaves the decision to the default rules. */
export function isAzureRetryable(err: unknown): boolean | undefined {
  if (err instanceof SluiceError) return err.retryable;
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: string; statusCode?: number; name?: string };
  if (e.name === 'AbortError') return false;
  if (e.code && NOT_RETRYABLE_CODES.has(e.code)) return false;
  if (e.code && RETRYABLE_CODES.has(e.code)) return true;
  if (e.statusCode === undefined) return undefined;
  return e.statusCode === 429 || e.statusCode === 408 || e.statusCode >= 500;
}

/** A conditional request whose condition did not hold (412; 409 for If-None-Match: * on a write). */
export function isConditionNotMet(err: unknown): boolean {
  const e = err as { statusCode?: number; code?: string };
  return e?.statusCode === 412 || e?.code === 'ConditionNotMet' || e?.code === 'BlobAlreadyExists';
}

/** No blob at the name; a missing container is not that (it is an error, not an absence). */
export function isBlobNotFound(err: unknown): boolean {
  const e = err as { statusCode?: number; code?: string };
  if (azureCode(err) === 'ContainerNotFound') return false;
  return e?.statusCode === 404 || e?.code === 'BlobNotFound';
}

/** The service's code of an Azure error (a HEAD's is only in `details`: it has no body). */
function azureCode(err: unknown): string | undefined {
  const e = err as { code?: string; details?: { errorCode?: string } };
  return e?.code ?? e?.details?.errorCode;
}

/** The service's reason for a failed Azure call, cut at its first line (the SDK appends request ids and XML). */
export function azureReason(err: unknown): string {
  const e = err as { statusCode?: number; message?: string };
  const firstLine = (e?.message || azureCode(err) || String(err)).split('\n')[0];
  const status = [e?.statusCode, azureCode(err)].filter(Boolean).join(' ');
  return status && !firstLine.startsWith(status) ? `${status}: ${firstLine}` : firstLine;
}

/** The error a plugin reports for a failed Azure call. */
export function azureError(
  code: 'SLUICE_E_SOURCE' | 'SLUICE_E_SINK',
  what: string,
  err: unknown,
): SluiceError {
  if (err instanceof SluiceError) return err;
  return new SluiceError(code, `${what}: ${azureReason(err)}`, {
    cause: err,
    retryable: isAzureRetryable(err),
  });
}

const REFUSED_CREDENTIALS = new Set([
  'AuthenticationFailed',
  'InvalidAuthenticationInfo',
  'NoAuthenticationInformation',
]);

/** What a pre-flight check of a container reports, and how it reads Azure's errors. */
export function azureCheckTarget(conn: AzureConnection): CheckTarget {
  return {
    noun: 'container',
    name: conn.container.containerName,
    endpoint: conn.endpointId,
    credentialFields: 'connection_string, account + account_key, sas_token, sas_url or the Entra ID fields',
    permission: (action) =>
      ({
        reach: 'read access to the container (SAS permission r, or a Storage Blob Data role)',
        list: 'list access (SAS permission l, or Storage Blob Data Reader)',
        write: 'write access (SAS permissions c and w, or Storage Blob Data Contributor)',
        delete: 'delete access (SAS permission d, or Storage Blob Data Contributor)',
      })[action],
    async proveRoot(signal) {
      try {
        await conn.container.getProperties({ abortSignal: signal });
        return;
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode !== 403) throw err;
      }
      // 403: a service SAS may not read container properties; a HEAD of a free name proves the
      // container is there (BlobNotFound, not ContainerNotFound) and the SAS is accepted.
      if (conn.sas) {
        try {
          await conn.container
            .getBlobClient(`.sluice-check-${Date.now()}`)
            .getProperties({ abortSignal: signal });
        } catch (probeErr) {
          if (isBlobNotFound(probeErr)) return;
        }
      }
      // A HEAD answer has no body: which credential problem, or a denial, only a GET's says.
      await conn.container
        .listBlobsFlat({ prefix: '.sluice-check-', abortSignal: signal })
        .byPage({ maxPageSize: 1 })
        .next();
    },
    failureOf(err) {
      const code = azureCode(err);
      const e = err as { statusCode?: number; name?: string };
      if (code === 'ContainerNotFound') return 'missing';
      if (
        (code && REFUSED_CREDENTIALS.has(code)) ||
        // Azurite answers a wrong key with AuthorizationFailure, worded as Azure's AuthenticationFailed.
        /failed to authenticate/i.test((err as { message?: string })?.message ?? '') ||
        e?.name === 'CredentialUnavailableError' ||
        e?.name === 'AuthenticationError'
      )
        return 'credentials';
      if (code?.startsWith('Authorization') || e?.statusCode === 403) return 'denied';
      if (code === 'REQUEST_SEND_ERROR' || isUnreachable(err)) return 'unreachable';
      return undefined;
    },
    reason: azureReason,
  };
}

export async function downloadBlob(
  conn: AzureConnection,
  blob: string,
  options: { signal?: AbortSignal; ifMatch?: string } = {},
): Promise<Readable> {
  const response = await conn.container.getBlobClient(blob).download(0, undefined, {
    abortSignal: options.signal,
    conditions: options.ifMatch ? { ifMatch: options.ifMatch } : undefined,
  });
  return relabelDroppedDownload(
    response.readableStreamBody as Readable,
    azureLocation(conn, blob),
    options.signal,
  );
}

/**
 * The SDK's download stream turns a connection dropped mid-body (the response's `aborted`
 * event) into an `AbortError`, which reads like a cancelled run and is never retried. When our
 * own signal did not fire, it is a network failure: report it as a retryable one.
 */
export function relabelDroppedDownload(body: Readable, location: string, signal?: AbortSignal): Readable {
  const out = new PassThrough({ highWaterMark: STREAM_CHUNK });
  body.once('error', (err: Error) => {
    const dropped = err?.name === 'AbortError' && !signal?.aborted;
    out.destroy(
      dropped
        ? new SluiceError(
            'SLUICE_E_SOURCE',
            `download of ${location} was cut off: the connection dropped mid-body`,
            {
              cause: err,
              retryable: true,
            },
          )
        : err,
    );
  });
  out.once('close', () => {
    if (!body.destroyed) body.destroy();
  });
  return body.pipe(out);
}

/**
 * Server-side copy of `fromUrl` (a blob of the same account, or any URL the service can read)
 * to `toBlob`, waiting until the copy is complete; with `ifMatch` (unquoted etag) only that
 * version of the source is copied; with `ifNoneMatch` only onto a free name.
 */
export async function copyBlob(
  conn: AzureConnection,
  fromUrl: string,
  toBlob: string,
  options: {
    metadata?: Record<string, string>;
    signal?: AbortSignal;
    ifMatch?: string;
    ifNoneMatch?: boolean;
  } = {},
): Promise<void> {
  const poller = await conn.container.getBlobClient(toBlob).beginCopyFromURL(fromUrl, {
    metadata: options.metadata,
    conditions: options.ifNoneMatch ? { ifNoneMatch: '*' } : undefined,
    sourceConditions: options.ifMatch === undefined ? undefined : { ifMatch: quotedEtag(options.ifMatch) },
    abortSignal: options.signal,
    intervalInMs: 200,
  });
  const result = await poller.pollUntilDone();
  if (result.copyStatus !== undefined && result.copyStatus !== 'success') {
    throw new SluiceError(
      'SLUICE_E_SINK',
      `copy to ${azureLocation(conn, toBlob)} ended with status ${result.copyStatus}`,
    );
  }
}

/** URL of a blob in `container` of this connection's account (carrying the connection's SAS, if any). */
export function blobUrl(conn: AzureConnection, container: string, blob: string): string {
  if (container === conn.container.containerName) return conn.container.getBlobClient(blob).url;
  const sas = new URL(conn.container.url).search;
  return `${conn.endpointId}/${encodeURIComponent(container)}/${blob.split('/').map(encodeURIComponent).join('/')}${sas}`;
}

export async function deleteBlob(conn: AzureConnection, blob: string, signal?: AbortSignal): Promise<void> {
  await conn.container.getBlobClient(blob).delete({ abortSignal: signal });
}

/** Deletes `blob` only while it is the listed `version` (If-Match on its etag). */
export async function deleteBlobVersion(
  conn: AzureConnection,
  blob: string,
  version: ListedVersion,
): Promise<void> {
  try {
    await conn.container.getBlobClient(blob).delete({
      conditions: version.etag === undefined ? undefined : { ifMatch: quotedEtag(version.etag) },
    });
  } catch (err) {
    // If-Match fails on a blob that is gone too (HTTP semantics): gone is what was asked.
    if (isConditionNotMet(err) && (await azureObjectAccess(conn).stat(blob)) !== null) {
      throw changedError(azureLocation(conn, blob), 'deleted', 'its etag no longer matches');
    }
    if (!isConditionNotMet(err) && !isBlobNotFound(err)) throw err;
  }
}

/** Copies `blob` to `toBlob` in the container only while it is the listed `version`. */
export async function copyBlobVersion(
  conn: AzureConnection,
  blob: string,
  version: ListedVersion,
  toBlob: string,
): Promise<void> {
  try {
    await copyBlob(conn, conn.container.getBlobClient(blob).url, toBlob, { ifMatch: version.etag });
  } catch (err) {
    if (isConditionNotMet(err))
      throw changedError(azureLocation(conn, blob), 'moved', 'its etag no longer matches');
    throw err;
  }
}

/** One listing page under `prefix` (names come decoded from the SDK, `Encoded` ones included). */
export async function listBlobsPage(
  conn: AzureConnection,
  prefix: string,
  options: { recursive: boolean; pageSize: number; token?: string; signal: AbortSignal },
): Promise<ListPage> {
  // Metadata comes in the same response: the stored mtime and sha256 cost no request.
  const listOptions = { prefix: prefix || undefined, abortSignal: options.signal, includeMetadata: true };
  const byPage = { maxPageSize: options.pageSize, continuationToken: options.token };
  const page = options.recursive
    ? (await conn.container.listBlobsFlat(listOptions).byPage(byPage).next()).value
    : (await conn.container.listBlobsByHierarchy('/', listOptions).byPage(byPage).next()).value;
  if (!page) return { objects: [] };
  const blobs: BlobItem[] = page.segment.blobItems;
  const objects = blobs.map((blob) => {
    const stored = storedFromProperties({ ...blob.properties, metadata: blob.metadata });
    return {
      key: blob.name,
      size: blob.properties.contentLength,
      mtime: stored.mtime,
      etag: blob.properties.etag,
      checksums: storedChecksums(stored),
    };
  });
  return { objects, next: page.continuationToken || undefined };
}

/** What a blob's properties (getProperties, or a listing with metadata) say is stored. */
export function storedFromProperties(props: {
  contentLength?: number;
  contentMD5?: Uint8Array;
  lastModified?: Date;
  metadata?: Record<string, string>;
}): StoredObject {
  const sha256 = props.metadata?.[AZURE_SHA256_METADATA];
  const md5 = props.contentMD5?.length ? Buffer.from(props.contentMD5).toString('hex') : undefined;
  return {
    size: props.contentLength ?? 0,
    ...(sha256 !== undefined ? { sha256 } : {}),
    ...(md5 !== undefined ? { md5 } : {}),
    mtime: parseStoredMtime(props.metadata?.[MTIME_METADATA]) ?? props.lastModified,
  };
}

export function azureObjectAccess(conn: AzureConnection): ObjectStoreAccess {
  return {
    location: (blob) => azureLocation(conn, blob),
    async stat(blob, signal): Promise<StoredObject | null> {
      try {
        const props = await conn.container.getBlobClient(blob).getProperties({ abortSignal: signal });
        return storedFromProperties(props);
      } catch (err) {
        if (isBlobNotFound(err)) return null;
        throw err;
      }
    },
    read: (blob, signal) => downloadBlob(conn, blob, { signal }),
  };
}
