/** Config fields the http source and sink share. */
import { Type } from '@sinclair/typebox';
import type { ErrorCode } from '../../core/errors.js';
import { Duration } from '../../core/schema-fragments.js';
import { parseDuration } from '../../core/units.js';
import type { HttpClientOptions } from './client.js';

export const HeaderMap = (description: string) =>
  Type.Record(Type.String(), Type.String(), {
    description,
    examples: [{ Authorization: `Bearer $\{API_TOKEN}` }],
  });

export const UrlTemplateField = (description: string) =>
  Type.String({
    minLength: 1,
    description: `${description} Placeholders as in destination templates ({path}, {name}, {meta.KEY}, {date:%Y}…); substituted values are URL-encoded except their slashes.`,
  });

export const connectionFields = {
  max_connections: Type.Integer({
    minimum: 1,
    default: 8,
    description: 'Most connections open at once to one host (keep-alive pool size).',
  }),
  timeout: Duration({
    default: '60s',
    description: 'A connection that sends no data for this long fails (retryable).',
  }),
};

export function clientOptions(
  config: { max_connections?: number; timeout?: string | number },
  errorCode: ErrorCode,
): HttpClientOptions {
  return {
    maxConnections: config.max_connections ?? 8,
    timeoutMs: parseDuration(config.timeout ?? '60s'),
    errorCode,
  };
}
