/**
 * The line a finished file gets at `info`: what people grep a log for ("where did X go, how
 * big, how long"), as the reference scripts' "processed file #N name in S seconds" did.
 */
import { formatBytes, formatDuration } from '../units.js';
import type { Logger } from './logger.js';

export interface FinishedItem {
  /** `source:path`, as every other line of the item names it. */
  item: string;
  path: string;
  /** Every destination, sink by sink. */
  destinations: string[];
  bytesIn: number;
  bytesOut: number;
  ms: number;
  attempts?: number;
  dryRun: boolean;
}

export function logItemDone(log: Logger, e: FinishedItem): void {
  // A ratio only where a step changed the size (compress, decrypt, unpack).
  const ratio =
    e.bytesIn > 0 && e.bytesIn !== e.bytesOut
      ? Math.round((e.bytesOut / e.bytesIn) * 1000) / 1000
      : undefined;
  const size =
    ratio === undefined
      ? formatBytes(e.bytesOut)
      : `${formatBytes(e.bytesIn)} → ${formatBytes(e.bytesOut)}, ${Math.round(ratio * 100)}%`;
  const to = e.destinations.length > 0 ? e.destinations.join(', ') : '(nothing written)';
  log.info(
    {
      item: e.item,
      to: e.destinations,
      bytesIn: e.bytesIn,
      bytesOut: e.bytesOut,
      ...(ratio === undefined ? {} : { ratio }),
      ms: Math.round(e.ms),
      ...(e.attempts !== undefined && e.attempts > 1 ? { attempts: e.attempts } : {}),
    },
    `${e.dryRun ? 'would write' : 'done'} ${e.path} → ${to} (${size}, ${formatDuration(e.ms)})`,
  );
}
