/**
 * Dotted paths into parsed JSON (`files`, `data.items`, `links.next.href`, `items.0.id`):
 * how the http source finds the item array, the next-page link and each item's fields.
 */

/** The value at `path` in `value`, or undefined when any step is missing. `''` is the value itself. */
export function getDotted(value: unknown, path: string): unknown {
  if (path === '') return value;
  let current = value;
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    if (Array.isArray(current)) {
      if (!/^\d+$/.test(key)) return undefined;
      current = current[Number(key)];
    } else {
      // Own properties only: a path like `constructor` must not reach Object.prototype.
      if (!Object.hasOwn(current, key)) return undefined;
      current = (current as Record<string, unknown>)[key];
    }
  }
  return current;
}
