/**
 * The destination pre-check: with `if_exists: skip` or `fail`, a sink that can `stat` is asked
 * what is at the destination before the source is read, so an item already delivered (a
 * migration from another tool, a ledger lost) is not downloaded again. One request per item and
 * sink; anything short of proof falls back to reading and comparing, as without it.
 */
import { SluiceError } from '../errors.js';
import type { DestinationStat, Item } from '../plugin-api.js';
import { label } from './driver.js';
import type { Job, Stage } from './stage.js';
import { differentMtime, type Target } from './verify.js';

/**
 * What a stat says about the object at the destination compared with the item:
 * - `checksum`: the same size and a checksum both sides know is equal: the same bytes;
 * - `mtime`: the same size and the mtimes agree at the sink's precision (rclone's size +
 *   modtime), no checksum to compare;
 * - `size`: the same size, nothing else known on both sides;
 * - `unsure`: the same size, but the mtimes differ and no checksum settles it (a sink that keeps
 *   its own time, or another file of the same length);
 * - `different`: another size, or a checksum both sides know differs.
 */
export type Presence = 'checksum' | 'mtime' | 'size' | 'unsure' | 'different';

export function comparePresence(item: Item, stat: DestinationStat, precisionMs?: number): Presence {
  if (item.size === undefined || stat.size !== item.size) return 'different';
  const stored = stat.checksums ?? {};
  let checksumAgrees = false;
  for (const [algorithm, value] of Object.entries(item.checksums)) {
    const other = stored[algorithm];
    if (other === undefined) continue;
    if (other.toLowerCase() !== value.toLowerCase()) return 'different';
    checksumAgrees = true;
  }
  // Equal bytes with another mtime are still the item: skipping or failing leaves the object as
  // reading it first would.
  if (checksumAgrees) return 'checksum';
  if (!item.mtime || !stat.mtime) return 'size';
  return differentMtime(item.mtime, stat.mtime, precisionMs) ? 'unsure' : 'mtime';
}

/**
 * The targets already holding the item, found before its bytes are read. Only for an item whose
 * bytes no step changed (its size is the listed one) and sinks with `skip` or `fail`.
 * - Anything short of reading is proof only while the source is kept (`skip`): with `delete` or
 *   `move_to` the item is read and compared, even when a checksum both listings show agrees
 *   (it may be metadata a writer set, not the bytes).
 * - Size and mtime (or size alone, where either side has no mtime) are enough only for `skip`
 *   while the source is kept: such a skip is accepted whatever the object holds, so the
 *   pre-check only saves the read. They are not proof of the same bytes (two files of one
 *   length written in the same second, on a sink keeping whole seconds), so with `delete`,
 *   `move_to` or `fail` the item is read and compared as without the pre-check.
 * - `fail` finding another size fails at once, unread; a checksum difference is read and compared.
 */
export async function alreadyPresent(
  stage: Stage,
  item: Item,
  destination: string,
  targets: Target[],
  job: Job,
): Promise<Array<{ target: Target; stat: DestinationStat }>> {
  if (stage.dryRun || item.open !== job.chainOpen || item.size === undefined) return [];
  const found: Array<{ target: Target; stat: DestinationStat }> = [];
  for (const target of targets) {
    const { sink } = target;
    if (!sink.instance.stat || (sink.ifExists !== 'skip' && sink.ifExists !== 'fail')) continue;
    const stat = await stage.driver.stat(sink, label(item), destination, job.signal);
    if (!stat) continue;
    const presence = comparePresence(item, stat, sink.instance.mtimePrecisionMs);
    // Only another size fails unread: checksums the listing carries may be metadata a writer set
    // (Azure Content-MD5, a sha256 in metadata, an ETag under SSE-KMS), so a checksum difference
    // is settled by reading, as without the pre-check.
    if (presence === 'different' && sink.ifExists === 'fail' && stat.size !== item.size) {
      throw new SluiceError(
        'SLUICE_E_EXISTS',
        `destination "${destination}" already holds another object (${differenceOf(item, stat)}) and if_exists is fail: nothing was read or written`,
        {
          retryable: false,
          context: {
            ...stage.driver.where(sink.ref, label(item)),
            hint: 'use overwrite, skip or rename to allow this',
          },
        },
      );
    }
    // While the source is kept, an unread skip loses nothing. When it is then deleted or moved,
    // nothing short of reading proves the bytes: a checksum both listings show may be metadata a
    // writer carried over to new content of the same size.
    const cheapSkip = sink.ifExists === 'skip' && !job.touchesSource;
    if (cheapSkip && (presence === 'checksum' || presence === 'mtime' || presence === 'size'))
      found.push({ target, stat });
  }
  return found;
}

function differenceOf(item: Item, stat: DestinationStat): string {
  if (stat.size !== item.size) return `${stat.size} bytes, this item ${item.size}`;
  const algorithm = Object.keys(item.checksums).find((a) => stat.checksums?.[a] !== undefined);
  return `its ${algorithm} ${stat.checksums?.[algorithm!]} differs from this item's ${item.checksums[algorithm!]}`;
}
