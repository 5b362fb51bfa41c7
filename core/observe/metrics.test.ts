import { describe, expect, it } from 'vitest';
import { SluiceMetrics } from './metrics.js';

describe('SluiceMetrics', () => {
  it('shows every series of a pipeline at 0 before anything happened', async () => {
    const metrics = new SluiceMetrics(() => new Map([['orders', 0]]));
    const text = await metrics.text();
    for (const line of [
      'sluice_retries_total{pipeline="orders"} 0',
      'sluice_items_total{pipeline="orders",outcome="failed"} 0',
      'sluice_items_total{pipeline="orders",outcome="ok"} 0',
      'sluice_bytes_out_total{pipeline="orders"} 0',
      'sluice_reloads_total{pipeline="orders",result="invalid"} 0',
      'sluice_passes_skipped_total{pipeline="orders"} 0',
      'sluice_item_duration_seconds_count{pipeline="orders"} 0',
    ])
      expect(text).toContain(line);
    metrics.retry('orders');
    expect(await metrics.text()).toContain('sluice_retries_total{pipeline="orders"} 1');
  });
});
