/** Which configured headers go with which request. */
import type { Headers } from './client.js';

/** Merges header maps left to right; names compare case-insensitively (later wins). */
export function mergeHeaders(...maps: (Headers | undefined)[]): Record<string, string> {
  const merged: Record<string, string> = {};
  for (const map of maps) {
    for (const [name, value] of Object.entries(map ?? {})) merged[name.toLowerCase()] = value;
  }
  return merged;
}

/**
 * Headers for a request to `url`: the plugin-wide ones, then `inherited` (e.g. the list's
 * Authorization) only when `url` is on the same origin as `inheritedOrigin`, so a token given
 * for the API never travels to another host, then the request's own.
 */
export function headersFor(
  url: URL,
  common: Headers | undefined,
  inherited: { origin: string; headers: Headers | undefined },
  own: Headers | undefined,
): Record<string, string> {
  return mergeHeaders(common, url.origin === inherited.origin ? inherited.headers : undefined, own);
}
