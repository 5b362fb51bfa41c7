/**
 * Tar through tar-stream: sequential, each entry's bytes consumed before the next header is
 * parsed. GNU long names and pax headers are resolved by tar-stream.
 */
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Header } from 'tar-stream';
import { pipeThrough } from '../../core/streams.js';
import { EntryGuard, type ErrorOrigins, limitError, type UnpackBudget } from './limits.js';
import { type RawEntry, safeEntryName } from './raw-entry.js';

interface TarEntryStream extends AsyncIterable<Buffer> {
  header: Header;
  resume(): void;
}

/**
 * The safe name of a regular file entry, '' for entries skipped silently (directories), or a
 * SLUICE_E_LIMIT error for links, devices and fifos.
 */
export function checkTarHeader(archive: string, header: Header): string {
  const name = safeEntryName(archive, header.name);
  switch (header.type) {
    case 'file':
    case 'contiguous-file':
      return name;
    case 'directory':
      return '';
    case 'symlink':
    case 'link':
      throw limitError(
        archive,
        `entry "${header.name}" is a ${header.type === 'link' ? 'hard' : 'symbolic'} link; links are refused`,
      );
    default:
      throw limitError(
        archive,
        `entry "${header.name}" is a ${header.type ?? 'unknown'} entry; only regular files are unpacked`,
      );
  }
}

/** Iterates the raw tar entries of `tar`; errors come out classified by `origins`. */
async function* tarHeaders(tar: Readable, origins: ErrorOrigins): AsyncGenerator<TarEntryStream> {
  const { extract } = await import('tar-stream');
  const parser = extract();
  tar.on('error', (err) => parser.destroy(err));
  tar.pipe(parser as unknown as NodeJS.WritableStream);
  try {
    for await (const entry of parser as unknown as AsyncIterable<TarEntryStream>) yield entry;
  } catch (err) {
    throw origins.classify(err as Error);
  } finally {
    parser.destroy();
    tar.destroy();
  }
}

/**
 * Reads every header of `tar`, draining the data, and throws at the first entry that breaks a
 * rule. Used on a spooled copy so a bad archive is refused before any entry is handed on.
 */
export async function prescanTar(tar: Readable, budget: UnpackBudget, origins: ErrorOrigins): Promise<void> {
  for await (const entry of tarHeaders(tar, origins)) {
    const name = checkTarHeader(budget.archive, entry.header);
    if (name !== '') {
      budget.addEntry(name);
      budget.checkEntrySize(name, entry.header.size ?? 0);
    }
    entry.resume();
  }
}

/** Yields the regular files of `tar` one by one; each must be read to the end before the next. */
export async function* readTarEntries(
  tar: Readable,
  budget: UnpackBudget,
  origins: ErrorOrigins,
): AsyncGenerator<RawEntry> {
  for await (const entry of tarHeaders(tar, origins)) {
    const name = checkTarHeader(budget.archive, entry.header);
    if (name === '') {
      entry.resume();
      continue;
    }
    const size = entry.header.size ?? 0;
    budget.addEntry(name);
    budget.checkEntrySize(name, size);
    let opened: Readable | undefined;
    yield {
      name,
      size,
      mtime: entry.header.mtime,
      open: () => {
        if (opened) throw new Error(`tar entry "${name}" can only be read once`);
        opened = pipeThrough(
          Readable.from(entry, { objectMode: false }),
          new EntryGuard({ budget, origins, entry: name, expectedSize: size }),
        );
        return opened;
      },
    };
    // The consumer normally read the entry to its end; if it never opened it, skip its bytes.
    if (opened) await finished(opened);
    else entry.resume();
  }
}
