import type { Readable } from 'node:stream';
import { SluiceError } from '../../core/errors.js';

/**
 * Reads a small companion file (checksum list, detached signature) into memory, refusing
 * anything larger than `maxBytes` so a wrong file cannot exhaust memory.
 */
export async function readSmallFile(
  stream: Readable,
  name: string,
  maxBytes: number,
  /** The error for more than `maxBytes` (default: a companion file too large). */
  tooLarge?: () => Error,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      stream.destroy();
      if (tooLarge) throw tooLarge();
      throw new SluiceError(
        'SLUICE_E_BAD_DATA',
        `companion file "${name}" is larger than ${maxBytes} bytes`,
        {
          retryable: false,
        },
      );
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
