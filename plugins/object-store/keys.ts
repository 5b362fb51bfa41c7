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

/** `dir/name (n).ext` — the key `if_exists: rename` tries for the n-th collision. */
export function numberedKey(key: string, n: number): string {
  const slash = key.lastIndexOf('/');
  const dir = key.slice(0, slash + 1);
  const base = key.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  const stem = dot > 0 ? base.slice(0, dot) : base;
  const ext = dot > 0 ? base.slice(dot) : '';
  return `${dir}${stem} (${n})${ext}`;
}
