import { describe, expect, it } from 'vitest';
import { batchRefused } from './delete-batch.js';

const rest = (statusCode: number | undefined, code?: string) =>
  Object.assign(new Error(code ?? 'failed'), { name: 'RestError', statusCode, code });

describe('batchRefused', () => {
  it('reads a 4xx answer to the batch request, or one the SDK cannot parse, as a service without Blob Batch', () => {
    expect(batchRefused(rest(400, 'InvalidQueryParameterValue'))).toBe(true);
    expect(batchRefused(rest(403, 'AuthorizationPermissionMismatch'))).toBe(true);
    expect(batchRefused(rest(404, 'ResourceNotFound'))).toBe(true);
    expect(batchRefused(rest(405))).toBe(true);
    expect(batchRefused(new RangeError('batchResponse is malformed'))).toBe(true);
    expect(batchRefused(new Error("Invalid state: sub responses' count is not equal"))).toBe(true);
  });

  it('leaves throttling, timeouts, server and network errors to fail the batch, retryably', () => {
    expect(batchRefused(rest(429, 'TooManyRequests'))).toBe(false);
    expect(batchRefused(rest(408))).toBe(false);
    expect(batchRefused(rest(500, 'InternalError'))).toBe(false);
    expect(batchRefused(rest(503, 'ServerBusy'))).toBe(false);
    expect(batchRefused(rest(undefined, 'REQUEST_SEND_ERROR'))).toBe(false);
    expect(batchRefused(Object.assign(new Error('aborted'), { name: 'AbortError' }))).toBe(false);
  });
});
