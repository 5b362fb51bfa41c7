/** Probing a source directly, below the runtime: what it lists, and which code an operation fails with. */
import { SluiceError } from '../../core/errors.js';
import type { Item, SourceInstance } from '../../core/plugin-api.js';

/** Every item the source lists, sorted by path. */
export async function listAll(src: SourceInstance): Promise<Item[]> {
  const items: Item[] = [];
  for await (const item of src.list(new AbortController().signal)) items.push(item);
  return items.sort((a, b) => (a.path < b.path ? -1 : 1));
}

/** The error code `promise` rejects with (a SluiceError's, else a system error's), or undefined. */
export async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return err instanceof SluiceError ? err.code : String((err as NodeJS.ErrnoException).code ?? err);
  }
}
