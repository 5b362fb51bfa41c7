/**
 * What the s3 source and sink share: connection options, the client factory (the AWS SDK is
 * imported here, lazily, only when a pipeline uses S3), error classification, object access.
 */

import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { HeadObjectCommandOutput, S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { Type } from '@sinclair/typebox';
import pLimit from 'p-limit';
import { SluiceError } from '../../core/errors.js';
import type { Item } from '../../core/plugin-api.js';
import { Secret } from '../../core/schema-fragments.js';
import { type CheckTarget, isUnreachable } from '../object-store/check.js';
import { type ObjectStoreAccess, type StoredObject, storedChecksums } from '../object-store/if-exists.js';
import { quotedEtag, unquotedEtag } from '../object-store/keys.js';
import { MTIME_METADATA, parseStoredMtime } from '../object-store/mtime.js';
import {
  changedError,
  type ListedObject,
  type ListedVersion,
  type ListPage,
  versionChange,
} from '../object-store/source.js';
import { type DeleteBatcher, type DeleteTransport, deleteObjectsInput } from './delete-batch.js';
import {
  type LeanCopy,
  type LeanHead,
  type LeanHeaders,
  type LeanPut,
  leanHeadObject,
  leanMetadata,
} from './lean-head.js';

export type S3Sdk = typeof import('@aws-sdk/client-s3');

/** Connection fields shared by the s3 source and sink. */
export const s3ConnectionFields = {
  bucket: Type.String({ minLength: 3, description: 'Bucket name.' }),
  region: Type.String({ default: 'us-east-1', description: 'AWS region of the bucket.' }),
  endpoint: Type.Optional(
    Type.String({
      description:
        'URL of an S3-compatible service (MinIO, Ceph, s3rver…). Empty or absent: AWS itself, from `region`.',
      examples: ['http://127.0.0.1:9000'],
    }),
  ),
  force_path_style: Type.Optional(
    Type.Boolean({
      description:
        'Address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key` (default: true when `endpoint` is set).',
    }),
  ),
  access_key_id: Type.Optional(
    Secret(
      Type.String({
        description:
          'Access key id. Absent: the SDK default chain (AWS_ACCESS_KEY_ID, profile, instance role…).',
      }),
    ),
  ),
  secret_access_key: Type.Optional(
    Secret(Type.String({ description: 'Secret access key (with `access_key_id`).' })),
  ),
  session_token: Type.Optional(
    Secret(Type.String({ description: 'Session token for temporary credentials (with `access_key_id`).' })),
  ),
  profile: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        "Named profile of the shared config and credentials files (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE, default `~/.aws/config` and `~/.aws/credentials`), read by the SDK's own provider: static keys, `role_arn` + `source_profile`, SSO, `credential_process`. Instead of `access_key_id`.",
      examples: ['partner-prod'],
    }),
  ),
  role_arn: Type.Optional(
    Type.String({
      pattern: '^arn:',
      description:
        'Role to assume (STS AssumeRole, renewed before it expires) with the credentials given otherwise: the keys, `profile`, or the SDK default chain.',
      examples: ['arn:aws:iam::123456789012:role/sluice-writer'],
    }),
  ),
  external_id: Type.Optional(
    Secret(Type.String({ description: 'External id the role’s trust policy requires (with `role_arn`).' })),
  ),
  session_name: Type.Optional(
    Type.String({
      pattern: '^[\\w+=,.@-]{2,64}$',
      description: 'Role session name, seen in CloudTrail (with `role_arn`; default `sluice-<time>`).',
    }),
  ),
  request_checksum: Type.Union([Type.Literal('when_required'), Type.Literal('when_supported')], {
    default: 'when_required',
    description:
      'When the SDK adds request checksums. `when_supported` makes it send streamed bodies aws-chunked with trailing CRCs, which many S3-compatible stores (s3rver among them) store verbatim, corrupting the object; `when_required` avoids that, and Sluice verifies content with sha256 itself.',
  }),
  max_connections: Type.Integer({
    minimum: 1,
    default: 50,
    description: 'Most simultaneous HTTP connections to the service (HTTP agent maxSockets).',
  }),
  lean_requests: Type.Boolean({
    default: true,
    description:
      'On a custom `endpoint` addressed path-style, send the hot requests — HeadObject (tidy-up checks), the PutObject of an object smaller than `part_size`, and server-side CopyObject — SigV4-signed directly instead of through the SDK’s middleware, with the SDK client’s own credentials and clock: several times less CPU per request. Not with `request_checksum: when_supported` or metadata that is not printable ASCII. `false`: every request through the SDK.',
  }),
};

export interface S3ConnectionConfig {
  bucket: string;
  region?: string;
  endpoint?: string;
  force_path_style?: boolean;
  access_key_id?: string;
  secret_access_key?: string;
  session_token?: string;
  profile?: string;
  role_arn?: string;
  external_id?: string;
  session_name?: string;
  request_checksum?: 'when_required' | 'when_supported';
  max_connections?: number;
  lean_requests?: boolean;
}

export interface S3Connection {
  sdk: S3Sdk;
  client: S3Client;
  bucket: string;
  /** Identity of the service for `Item.origin.endpoint`: the endpoint URL, or `aws`. */
  endpointId: string;
  /** HeadObject without the SDK's middleware, where the endpoint allows it (see lean-head.ts). */
  leanHead?: LeanHead;
  /** Single-part PutObject without the SDK's middleware, where the endpoint allows it. */
  leanPut?: LeanPut;
  /** CopyObject, and the source's HeadObject of a REPLACE copy, likewise. */
  leanCopy?: LeanCopy;
  leanHeaders?: LeanHeaders;
}

export const S3_ORIGIN_KIND = 's3';

function configError(message: string, field: string): SluiceError {
  return new SluiceError('SLUICE_E_CONFIG', message, { context: { jsonPath: `/${field}` } });
}

/** Static checks: a URL endpoint and one consistent way to obtain credentials. */
export function validateS3Connection(config: S3ConnectionConfig): void {
  const endpoint = config.endpoint?.trim() || undefined;
  if (endpoint !== undefined && !URL.canParse(endpoint)) {
    throw configError(`endpoint "${endpoint}" is not a URL`, 'endpoint');
  }
  if ((config.access_key_id === undefined) !== (config.secret_access_key === undefined)) {
    const missing = config.access_key_id === undefined ? 'access_key_id' : 'secret_access_key';
    throw configError(`${missing} is required when the other credential field is set`, missing);
  }
  if (config.session_token !== undefined && config.access_key_id === undefined) {
    throw configError('session_token goes with access_key_id and secret_access_key', 'session_token');
  }
  if (config.profile !== undefined && config.access_key_id !== undefined) {
    throw configError(
      'give either access_key_id/secret_access_key or profile, not both (the profile would be ignored)',
      'profile',
    );
  }
  for (const field of ['external_id', 'session_name'] as const) {
    if (config[field] !== undefined && config.role_arn === undefined) {
      throw configError(`${field} is only used with role_arn`, field);
    }
  }
}

/**
 * Credentials by the SDK's own providers: static keys, or a profile of the shared files, or
 * (undefined) the default chain; with `role_arn`, those assume the role.
 */
async function s3Credentials(config: S3ConnectionConfig): Promise<S3ClientConfig['credentials']> {
  let credentials: S3ClientConfig['credentials'];
  if (config.access_key_id && config.secret_access_key) {
    credentials = {
      accessKeyId: config.access_key_id,
      secretAccessKey: config.secret_access_key,
      sessionToken: config.session_token,
    };
  } else if (config.profile !== undefined) {
    const { fromIni } = await import('@aws-sdk/credential-providers');
    credentials = fromIni({ profile: config.profile });
  }
  if (config.role_arn === undefined) return credentials;
  const { fromTemporaryCredentials } = await import('@aws-sdk/credential-providers');
  return fromTemporaryCredentials({
    masterCredentials: credentials as Parameters<typeof fromTemporaryCredentials>[0]['masterCredentials'],
    params: {
      RoleArn: config.role_arn,
      ExternalId: config.external_id,
      RoleSessionName: config.session_name ?? `sluice-${Date.now()}`,
    },
    clientConfig: { region: config.region ?? 'us-east-1' },
  });
}

/** Creates the client. Throws config errors for inconsistent credentials or a bad endpoint URL. */
export async function connectS3(config: S3ConnectionConfig): Promise<S3Connection> {
  validateS3Connection(config);
  const endpoint = config.endpoint?.trim() || undefined;
  const sdk = await import('@aws-sdk/client-s3');
  const maxSockets = config.max_connections ?? 50;
  const checksum = config.request_checksum === 'when_supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
  const client = new sdk.S3Client({
    region: config.region ?? 'us-east-1',
    endpoint,
    forcePathStyle: config.force_path_style ?? endpoint !== undefined,
    credentials: await s3Credentials(config),
    requestChecksumCalculation: checksum,
    responseChecksumValidation: checksum,
    requestHandler: { httpAgent: { maxSockets }, httpsAgent: { maxSockets } },
  });
  const lean = await (config.lean_requests === false
    ? undefined
    : leanHeadObject({
        client,
        endpoint,
        pathStyle: config.force_path_style ?? endpoint !== undefined,
        bucket: config.bucket,
        region: config.region ?? 'us-east-1',
        maxSockets,
        checksums: checksum === 'WHEN_SUPPORTED',
      }));
  if (lean) {
    const destroy = client.destroy.bind(client);
    client.destroy = () => {
      lean.destroy();
      destroy();
    };
  }
  return {
    sdk,
    client,
    bucket: config.bucket,
    endpointId: endpointIdentity(endpoint),
    leanHead: lean?.head,
    leanPut: lean?.put,
    leanCopy: lean?.copy,
    leanHeaders: lean?.headersOf,
  };
}

/**
 * True when CopyObject into a bucket of the endpoint `endpointId` can take `item`: an s3 item of
 * the same endpoint, within one CopyObject's limit.
 */
export function s3Copies(endpointId: string, item: Item): boolean {
  const origin = item.origin;
  if (origin?.kind !== S3_ORIGIN_KIND || origin.endpoint !== endpointId) return false;
  return item.size === undefined || item.size <= MAX_SINGLE_COPY_BYTES;
}

/** The endpoint identity of a config's `endpoint` (what `Item.origin.endpoint` holds). */
export function endpointIdentity(endpoint: string | undefined): string {
  endpoint = endpoint?.trim() || undefined;
  if (endpoint === undefined) return 'aws';
  const url = new URL(endpoint);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/** `s3://bucket/key` */
export function s3Location(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

/**
 * CopySource for CopyObject: `bucket/key` with each key segment URL-encoded (non-ASCII, `+`,
 * `%`, `#`…), as AWS, MinIO and Ceph decode it. `uri` encodes like `encodeURI` (leaving
 * `;?:@&=+$,#` literal) for servers that decode with `decodeURI` (s3rver).
 */
export function copySource(bucket: string, key: string, style: 'component' | 'uri' = 'component'): string {
  const encoded = style === 'uri' ? encodeURI(key) : key.split('/').map(encodeURIComponent).join('/');
  return `${bucket}/${encoded}`;
}

/** Characters `encodeURIComponent` escapes but `decodeURI` does not unescape. */
const URI_RESERVED = /[;?:@&=+$,#]/;

const NOT_RETRYABLE_NAMES = new Set([
  'NoSuchBucket',
  'NoSuchKey',
  'NotFound',
  'AccessDenied',
  'Forbidden',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidBucketName',
  'AllAccessDisabled',
  'AuthorizationHeaderMalformed',
  'PreconditionFailed',
  'EntityTooLarge',
  'InvalidRequest',
]);

const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'InternalError',
  'ServiceUnavailable',
  'TimeoutError',
]);

/** Retry classification of S3 errors; undefined leaves network errors to the default rules. */
export function isS3Retryable(err: unknown): boolean | undefined {
  if (err instanceof SluiceError) return err.retryable;
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
  if (e.name && NOT_RETRYABLE_NAMES.has(e.name)) return false;
  if (e.name && RETRYABLE_NAMES.has(e.name)) return true;
  if (e.$retryable) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status === undefined) return undefined;
  return status === 429 || status === 408 || status >= 500;
}

/** A conditional request (If-Match, If-None-Match) whose condition did not hold. */
export function isPreconditionFailed(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'PreconditionFailed' || e?.$metadata?.httpStatusCode === 412;
}

export function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

/** The service's reason for a failed S3 call, one line (`NoSuchBucket: …`). */
export function s3Reason(err: unknown): string {
  const e = err as {
    name?: string;
    message?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const message =
    e?.message || e?.code || (e?.$metadata?.httpStatusCode ? `HTTP ${e.$metadata.httpStatusCode}` : '');
  if (!message) return String(err);
  return e?.name && e.name !== 'Error' && !message.includes(e.name) ? `${e.name}: ${message}` : message;
}

/** The error a plugin reports for a failed S3 call: what, where, the service's reason, retry class. */
export function s3Error(code: 'SLUICE_E_SOURCE' | 'SLUICE_E_SINK', what: string, err: unknown): SluiceError {
  if (err instanceof SluiceError) return err;
  return new SluiceError(code, `${what}: ${s3Reason(err)}`, { cause: err, retryable: isS3Retryable(err) });
}

const REFUSED_CREDENTIALS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'AuthorizationHeaderMalformed',
  'CredentialsProviderError',
]);

/** What a pre-flight check of an S3 bucket reports, and how it reads S3's errors. */
export function s3CheckTarget(conn: S3Connection, region: string | undefined): CheckTarget {
  return {
    noun: 'bucket',
    name: conn.bucket,
    endpoint: conn.endpointId === 'aws' ? `AWS S3 (${region ?? 'us-east-1'})` : conn.endpointId,
    credentialFields:
      'access_key_id / secret_access_key / session_token, profile or role_arn (absent: the SDK default chain)',
    permission: (action) =>
      ({
        reach: 's3:ListBucket on the bucket',
        list: 's3:ListBucket on the bucket',
        write: 's3:PutObject under the prefix',
        delete: 's3:DeleteObject under the prefix',
      })[action],
    async proveRoot(signal) {
      try {
        await conn.client.send(new conn.sdk.HeadBucketCommand({ Bucket: conn.bucket }), {
          abortSignal: signal,
        });
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status !== 400 && status !== 403) throw err;
        // A HEAD answer has no body: which credential problem, or a denial, only a GET's says.
        await conn.client.send(new conn.sdk.ListObjectsV2Command({ Bucket: conn.bucket, MaxKeys: 1 }), {
          abortSignal: signal,
        });
        throw err;
      }
    },
    failureOf(err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      const status = e?.$metadata?.httpStatusCode;
      if (e?.name === 'NoSuchBucket' || (e?.name === 'NotFound' && status === 404)) return 'missing';
      if (e?.name && REFUSED_CREDENTIALS.has(e.name)) return 'credentials';
      if (e?.name === 'AccessDenied' || e?.name === 'AllAccessDisabled' || status === 403) return 'denied';
      if (isUnreachable(err) || e?.name === 'TimeoutError') return 'unreachable';
      return undefined;
    },
    reason: s3Reason,
  };
}

/** Reads an object; the SDK's Node body is a Readable. */
export async function getObjectStream(
  conn: S3Connection,
  key: string,
  options: { signal?: AbortSignal; ifMatch?: string } = {},
): Promise<Readable> {
  const response = await conn.client.send(
    new conn.sdk.GetObjectCommand({ Bucket: conn.bucket, Key: key, IfMatch: options.ifMatch }),
    { abortSignal: options.signal },
  );
  return response.Body as Readable;
}

/** Metadata key under which Sluice records the sha256 of what it uploaded (`x-amz-meta-sluice-sha256`). */
export const S3_SHA256_METADATA = 'sluice-sha256';

/** The MD5 an ETag is, hex: a single-part ETag (32 hex digits); a multipart one (`…-N`) is not. */
export function etagMd5(etag: string | undefined): string | undefined {
  const bare = unquotedEtag(etag);
  return bare !== undefined && /^[0-9a-fA-F]{32}$/.test(bare) ? bare.toLowerCase() : undefined;
}

/**
 * What a HeadObject says is stored. Under SSE-KMS and SSE-C the ETag is not the MD5 of the
 * bytes: HeadObject tells, so no `md5` then (a listing cannot tell; see the source's docs).
 */
export function storedFromHead(head: HeadObjectCommandOutput): StoredObject {
  const encrypted =
    head.SSECustomerAlgorithm !== undefined || (head.ServerSideEncryption ?? '').startsWith('aws:kms');
  const md5 = encrypted ? undefined : etagMd5(head.ETag);
  const sha256 = head.Metadata?.[S3_SHA256_METADATA];
  return {
    size: head.ContentLength ?? 0,
    ...(sha256 !== undefined ? { sha256 } : {}),
    ...(md5 !== undefined ? { md5 } : {}),
    mtime: parseStoredMtime(head.Metadata?.[MTIME_METADATA]) ?? head.LastModified,
  };
}

/** `storedFromHead` of a lean HeadObject's raw headers (the same fields, as the SDK reads them). */
function storedFromHeaders(headers: IncomingHttpHeaders): StoredObject {
  const text = (name: string) => {
    const value = headers[name];
    return typeof value === 'string' ? value : undefined;
  };
  const lastModified = text('last-modified');
  return storedFromHead({
    $metadata: {},
    ContentLength: text('content-length') === undefined ? undefined : Number(text('content-length')),
    ETag: text('etag'),
    SSECustomerAlgorithm: text('x-amz-server-side-encryption-customer-algorithm'),
    ServerSideEncryption: text(
      'x-amz-server-side-encryption',
    ) as HeadObjectCommandOutput['ServerSideEncryption'],
    LastModified: lastModified === undefined ? undefined : new Date(lastModified),
    Metadata: Object.fromEntries(
      Object.entries(headers)
        .filter(([name, value]) => name.startsWith('x-amz-meta-') && typeof value === 'string')
        .map(([name, value]) => [name.slice('x-amz-meta-'.length), value as string]),
    ),
  });
}

export function s3ObjectAccess(conn: S3Connection): ObjectStoreAccess {
  return {
    location: (key) => s3Location(conn.bucket, key),
    async stat(key, signal): Promise<StoredObject | null> {
      try {
        if (conn.leanHeaders) {
          return storedFromHeaders(await conn.leanHeaders({ bucket: conn.bucket, key, signal }));
        }
        const head = await conn.client.send(
          new conn.sdk.HeadObjectCommand({ Bucket: conn.bucket, Key: key }),
          {
            abortSignal: signal,
          },
        );
        return storedFromHead(head);
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    },
    read: (key, signal) => getObjectStream(conn, key, { signal }),
  };
}

/** HeadObject requests in flight per listing page with `read_metadata`. */
const METADATA_READS_IN_FLIGHT = 16;

/**
 * `objects` with what only a HeadObject tells (ListObjectsV2 carries no user metadata): the
 * stored mtime and sha256, and whether the ETag is an MD5 (not under SSE-KMS/SSE-C). An object
 * replaced or removed since it was listed keeps its listed values: its read, pinned to the
 * listed ETag, fails anyway, and metadata of another version must not describe it.
 */
export async function withStoredMetadata(
  conn: S3Connection,
  objects: ListedObject[],
  signal: AbortSignal,
): Promise<ListedObject[]> {
  const limit = pLimit(METADATA_READS_IN_FLIGHT);
  const described = async (object: ListedObject): Promise<ListedObject> => {
    let head: HeadObjectCommandOutput;
    try {
      head = await conn.client.send(
        new conn.sdk.HeadObjectCommand({ Bucket: conn.bucket, Key: object.key }),
        {
          abortSignal: signal,
        },
      );
    } catch (err) {
      if (isNotFound(err)) return object;
      throw err;
    }
    if (unquotedEtag(head.ETag) !== unquotedEtag(object.etag)) return object;
    const stored = storedFromHead(head);
    return { ...object, mtime: stored.mtime, checksums: storedChecksums(stored) };
  };
  return Promise.all(
    objects.map((object) =>
      object.unreadable !== undefined || object.key.endsWith('/') ? object : limit(() => described(object)),
    ),
  );
}

/** Objects larger than this cannot be copied with one CopyObject (a multipart copy would be needed). */
export const MAX_SINGLE_COPY_BYTES = 5 * 1024 ** 3;

/** What a copy is asked to do besides copying (see `copyObject`). */
interface CopyOptions {
  metadata?: Record<string, string>;
  signal?: AbortSignal;
  ifMatch?: string;
  ifNoneMatch?: boolean;
}

/**
 * Server-side copy into the connection's bucket. With `metadata` the copy gets exactly that
 * metadata (REPLACE); without, it keeps the source's; with `ifMatch` (unquoted etag) only that
 * version of the source is copied; with `ifNoneMatch` only onto a free key. Returns the new object's ETag (unquoted).
 */
export async function copyObject(
  conn: S3Connection,
  from: { bucket: string; key: string },
  toKey: string,
  options: CopyOptions = {},
): Promise<string | undefined> {
  const ifMatch = options.ifMatch === undefined ? undefined : quotedEtag(options.ifMatch);
  if (conn.leanCopy && conn.leanHeaders && leanMetadata(options.metadata)) {
    return leanCopyObject(conn as LeanConnection, from, toKey, { ...options, ifMatch });
  }
  // REPLACE drops every header of the source, not only its user metadata: carry them over
  // (one HeadObject of the source), so a copy keeps its Content-Type as a plain copy does.
  const replaced =
    options.metadata && (await replacingHeaders(conn, from, options.metadata, ifMatch, options.signal));
  const send = (style: 'component' | 'uri') =>
    conn.client.send(
      new conn.sdk.CopyObjectCommand({
        Bucket: conn.bucket,
        Key: toKey,
        CopySource: copySource(from.bucket, from.key, style),
        // Pins the copy to the listed version; it also makes the `uri` retry below safe on a
        // service that would decode that form as another key (a different object, another etag).
        CopySourceIfMatch: ifMatch,
        IfNoneMatch: options.ifNoneMatch ? '*' : undefined,
        ...(replaced ? { ...replaced, MetadataDirective: 'REPLACE' } : {}),
      }),
      { abortSignal: options.signal },
    );
  let result: { CopyObjectResult?: { ETag?: string } };
  try {
    result = await send('component');
  } catch (err) {
    // A source key that was just listed "does not exist": the server decoded CopySource with
    // decodeURI semantics, so say it that way once.
    if (!isNotFound(err) || !URI_RESERVED.test(from.key)) throw err;
    result = await send('uri');
  }
  return result.CopyObjectResult?.ETag?.replace(/^"|"$/g, '');
}

type LeanConnection = S3Connection & Required<Pick<S3Connection, 'leanCopy' | 'leanHeaders'>>;

/** The headers a REPLACE copy carries over from its source (as the SDK path's HeadObject does). */
const CARRIED_HEADERS = [
  'content-type',
  'content-encoding',
  'content-disposition',
  'content-language',
  'cache-control',
  'expires',
];

/** `copyObject` through the lean requests (lean-head.ts); `ifMatch` is quoted. */
async function leanCopyObject(
  conn: LeanConnection,
  from: { bucket: string; key: string },
  toKey: string,
  options: CopyOptions,
): Promise<string | undefined> {
  const { signal, ifMatch } = options;
  let replace: Record<string, string> | undefined;
  if (options.metadata) {
    const source = await conn.leanHeaders({ bucket: from.bucket, key: from.key, ifMatch, signal });
    replace = {};
    for (const [name, value] of Object.entries(source)) {
      if (typeof value !== 'string') continue;
      if (CARRIED_HEADERS.includes(name) || name.startsWith('x-amz-meta-')) replace[name] = value;
    }
    for (const [name, value] of Object.entries(options.metadata))
      replace[`x-amz-meta-${name.toLowerCase()}`] = value;
    // A value the source had that is not plain ASCII: the SDK sends it as it does.
    if (!leanMetadata(replace)) {
      const { leanCopy: _, ...sdkOnly } = conn;
      return copyObject(sdkOnly, from, toKey, {
        ...options,
        ifMatch: options.ifMatch?.replace(/^"|"$/g, ''),
      });
    }
  }
  const send = (style: 'component' | 'uri') =>
    conn.leanCopy({
      key: toKey,
      copySource: copySource(from.bucket, from.key, style),
      ifMatch,
      exclusive: options.ifNoneMatch,
      replace,
      signal,
    });
  try {
    return await send('component');
  } catch (err) {
    // As the SDK path: a server that decodes the copy source with decodeURI semantics.
    if (!isNotFound(err) || !URI_RESERVED.test(from.key)) throw err;
    return send('uri');
  }
}

/** The source's headers and user metadata, with `metadata` over them, for a REPLACE copy. */
async function replacingHeaders(
  conn: S3Connection,
  from: { bucket: string; key: string },
  metadata: Record<string, string>,
  ifMatch: string | undefined,
  signal: AbortSignal | undefined,
) {
  const source = await conn.client.send(
    new conn.sdk.HeadObjectCommand({ Bucket: from.bucket, Key: from.key, IfMatch: ifMatch }),
    { abortSignal: signal },
  );
  return {
    ContentType: source.ContentType,
    ContentEncoding: source.ContentEncoding,
    ContentDisposition: source.ContentDisposition,
    ContentLanguage: source.ContentLanguage,
    CacheControl: source.CacheControl,
    Expires: source.Expires,
    Metadata: { ...source.Metadata, ...metadata },
  };
}

export async function deleteObject(conn: S3Connection, key: string, signal?: AbortSignal): Promise<void> {
  await conn.client.send(new conn.sdk.DeleteObjectCommand({ Bucket: conn.bucket, Key: key }), {
    abortSignal: signal,
  });
}

/** Size and ETag (unquoted) of an object, or null when there is none. */
export async function headObject(
  conn: S3Connection,
  key: string,
  signal?: AbortSignal,
): Promise<{ size?: number; etag?: string } | null> {
  if (conn.leanHead) return conn.leanHead(key, signal);
  try {
    const head = await conn.client.send(new conn.sdk.HeadObjectCommand({ Bucket: conn.bucket, Key: key }), {
      abortSignal: signal,
    });
    return { size: head.ContentLength, etag: head.ETag?.replace(/^"|"$/g, '') };
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/**
 * Throws `changedError` when the object at `key` is no longer `version`; false when it is gone.
 * AWS honours If-Match on DeleteObject and CopySourceIfMatch, which settles it in the request
 * itself; s3rver (and other S3-compatible stores) ignore them, so this HeadObject is what
 * protects a newer version there — up to the moment between it and the request that follows.
 */
async function stillListedVersion(conn: S3Connection, key: string, version: ListedVersion, action: string) {
  if (version.etag === undefined && version.size === undefined) return true;
  const now = await headObject(conn, key);
  if (now === null) return false;
  const change = versionChange(version, now);
  if (change !== undefined) throw changedError(s3Location(conn.bucket, key), action, change);
  return true;
}

/**
 * Deletes `key` only while it is the listed `version` (see `stillListedVersion`). With
 * `batcher`, the delete itself goes out in a DeleteObjects request shared with other keys
 * (the listed ETag as that key's condition); the HeadObject check before it stays, for the
 * services that ignore conditions.
 */
export async function deleteObjectVersion(
  conn: S3Connection,
  key: string,
  version: ListedVersion,
  batcher?: DeleteBatcher,
): Promise<void> {
  if (!(await stillListedVersion(conn, key, version, 'deleted'))) return;
  if (batcher) await batcher.delete(key, version.etag);
  else await deleteOneVersion(conn, key, version.etag);
}

/** One DeleteObject of `key`, If-Match `etag`. */
async function deleteOneVersion(conn: S3Connection, key: string, etag: string | undefined): Promise<void> {
  try {
    await conn.client.send(
      new conn.sdk.DeleteObjectCommand({
        Bucket: conn.bucket,
        Key: key,
        IfMatch: etag === undefined ? undefined : quotedEtag(etag),
      }),
    );
  } catch (err) {
    if (isPreconditionFailed(err)) {
      throw changedError(s3Location(conn.bucket, key), 'deleted', 'its ETag no longer matches');
    }
    // AWS answers a conditional delete of a key that is gone with 404: gone is what was asked.
    if (!isNotFound(err)) throw err;
  }
}

/** How a `DeleteBatcher` reaches the connection's bucket. */
export function deleteTransport(conn: S3Connection): DeleteTransport {
  return {
    async deleteMany(objects) {
      const answer = await conn.client.send(
        new conn.sdk.DeleteObjectsCommand(deleteObjectsInput(conn.bucket, objects)),
      );
      return { deleted: answer.Deleted ?? [], errors: answer.Errors ?? [] };
    },
    deleteOne: (key, etag) => deleteOneVersion(conn, key, etag),
    location: (key) => s3Location(conn.bucket, key),
  };
}

/** Copies `key` to `toKey` in the bucket only while it is the listed `version`. */
export async function copyObjectVersion(
  conn: S3Connection,
  key: string,
  version: ListedVersion,
  toKey: string,
): Promise<void> {
  const location = s3Location(conn.bucket, key);
  if (version.size !== undefined && version.size > MAX_SINGLE_COPY_BYTES) {
    throw new SluiceError(
      'SLUICE_E_SOURCE',
      `cannot move ${location}: objects over 5 GiB need a multipart copy, which this source does not do; use after_success: delete or keep`,
      { retryable: false },
    );
  }
  if (!(await stillListedVersion(conn, key, version, 'moved'))) {
    throw new SluiceError('SLUICE_E_SOURCE', `cannot move ${location}: it is gone`, { retryable: false });
  }
  try {
    await copyObject(conn, { bucket: conn.bucket, key }, toKey, { ifMatch: version.etag });
  } catch (err) {
    if (isPreconditionFailed(err)) throw changedError(location, 'moved', 'its ETag no longer matches');
    throw err;
  }
}

/**
 * One ListObjectsV2 page. Keys are asked URL-encoded: XML cannot carry every character a key
 * may hold (control characters), and a service that honours the request says so in the
 * response (`EncodingType: url`, `+` for a space, as AWS and MinIO encode); s3rver does not
 * encode and does not say so.
 */
export async function listObjectsPage(
  conn: S3Connection,
  prefix: string,
  options: { recursive: boolean; pageSize: number; token?: string; signal: AbortSignal },
): Promise<ListPage> {
  const page = await conn.client.send(
    new conn.sdk.ListObjectsV2Command({
      Bucket: conn.bucket,
      Prefix: prefix || undefined,
      Delimiter: options.recursive ? undefined : '/',
      MaxKeys: options.pageSize,
      ContinuationToken: options.token,
      EncodingType: 'url',
    }),
    { abortSignal: options.signal },
  );
  const encoded = page.EncodingType === 'url';
  const objects = (page.Contents ?? []).flatMap((object) => {
    if (object.Key === undefined) return [];
    const md5 = etagMd5(object.ETag);
    const listed = {
      size: object.Size,
      mtime: object.LastModified,
      etag: object.ETag,
      ...(md5 !== undefined ? { checksums: { md5 } } : {}),
    };
    if (!encoded) return [{ ...listed, key: object.Key }];
    try {
      return [{ ...listed, key: decodeURIComponent(object.Key.replace(/\+/g, '%20')) }];
    } catch {
      return [{ ...listed, key: object.Key, unreadable: 'the listed key is not valid URL-encoded UTF-8' }];
    }
  });
  return { objects, next: page.IsTruncated ? page.NextContinuationToken : undefined };
}
