/** Object-store key helpers shared by the S3 and Azure Blob connectors. Keys are not file paths:
 * `a//b` is a distinct key, so nothing here normalises with `path.posix`. */

/** A configured prefix as a folder: no leading `/`, one trailing `/` unless empty. */
export function folderPrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+/, '');
  if (trimmed === '') return '';
  return trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

/** The key of a relative item path under a folder prefix. */
export function joinKey(prefix: string, relative: string): string {
  return folderPrefix(prefix) + relative.replace(/^\/+/, '');
}

/**
 * Why `relative` (a listed key below its prefix) cannot be an item path, or undefined when it
 * can. An item path must name this key and no other: everything downstream (the item path model,
 * destinations, `openPath`) treats `/`-separated segments as a path, so `a//b`, `./a`, `a/../b`,
 * a leading `/` or a `\` would be read as — or turned into — another key, and a control character
 * would break one-line logs and reason files.
 */
export function unsafeKeyReason(relative: string): string | undefined {
  if (relative === '') return 'it is the prefix itself (no name)';
  if (/[\u0000-\u001f\u007f]/.test(relative)) return 'it contains a control character';
  if (relative.includes('\\')) return 'it contains a backslash';
  if (relative.startsWith('/')) return 'it starts with "/"';
  const segments = relative.split('/');
  if (segments.includes('')) return 'it contains an empty segment ("//")';
  if (segments.includes('.') || segments.includes('..')) return 'it contains a "." or ".." segment';
  if (relative.includes('\ufffd')) return 'it is not valid UTF-8 (the listing holds a replacement character)';
  return undefined;
}

/**
 * A display path for a key `unsafeKeyReason` refused: the offending characters percent-encoded
 * (`a//b` → `a/%2Fb`, `../x` → `%2E%2E/x`), so the report names it on one line and not as the
 * key it would otherwise have been confused with (`a/b`, `x`).
 */
export function displayKey(relative: string): string {
  const pct = (c: string) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
  const escaped = relative.replace(/[%\\\u0000-\u001f\u007f]/g, pct);
  const dots = escaped
    .split('/')
    .map((s) => (s === '.' ? '%2E' : s === '..' ? '%2E%2E' : s))
    .join('/');
  // An empty segment shows as the slash that made it: `a//b` → `a/%2Fb`, `/a` → `%2Fa`.
  return dots.replace(
    /(^|\/)(\/+)/g,
    (_, lead: string, slashes: string) => lead + '%2F'.repeat(slashes.length),
  );
}

/** An etag as HTTP conditions want it (`"…"`), from the unquoted form items carry. */
export function quotedEtag(etag: string): string {
  return etag.startsWith('"') || etag.startsWith('W/') ? etag : `"${etag}"`;
}

export function unquotedEtag(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, '');
}
