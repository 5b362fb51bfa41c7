/**
 * Prometheus metrics of a long-running `sluice run`/`sluice watch` (prom-client, on a private
 * registry so that embedding Sluice never pollutes the host's default registry).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class SluiceMetrics {
  readonly registry = new Registry();
  private readonly items: Counter<'pipeline' | 'outcome'>;
  private readonly bytesIn: Counter<'pipeline'>;
  private readonly bytesOut: Counter<'pipeline'>;
  private readonly duration: Histogram<'pipeline'>;
  private readonly retries: Counter<'pipeline'>;
  private readonly reloads: Counter<'pipeline' | 'result'>;
  private readonly skippedPasses: Counter<'pipeline'>;
  private readonly lastSuccess: Gauge<'pipeline'>;
  private readonly inFlight: () => Map<string, number>;
  /** Pipelines whose series exist (at 0 until something happens). */
  private readonly known = new Set<string>();

  /** `inFlight()` is read at scrape time: pipeline name → items being processed. */
  constructor(inFlight: () => Map<string, number>) {
    this.inFlight = inFlight;
    const registers = [this.registry];
    this.items = new Counter({
      name: 'sluice_items_total',
      help: 'Items (source files) by outcome: ok, failed, skipped (done before), filtered.',
      labelNames: ['pipeline', 'outcome'],
      registers,
    });
    this.bytesIn = new Counter({
      name: 'sluice_bytes_in_total',
      help: 'Bytes read from sources.',
      labelNames: ['pipeline'],
      registers,
    });
    this.bytesOut = new Counter({
      name: 'sluice_bytes_out_total',
      help: 'Bytes committed to sinks.',
      labelNames: ['pipeline'],
      registers,
    });
    this.duration = new Histogram({
      name: 'sluice_item_duration_seconds',
      help: 'Time from an item’s start to its finalization.',
      labelNames: ['pipeline'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.retries = new Counter({
      name: 'sluice_retries_total',
      help: 'Item retries.',
      labelNames: ['pipeline'],
      registers,
    });
    this.reloads = new Counter({
      name: 'sluice_reloads_total',
      help: 'Pipeline file reloads by result: ok (new version running), invalid (old version kept), removed.',
      labelNames: ['pipeline', 'result'],
      registers,
    });
    this.skippedPasses = new Counter({
      name: 'sluice_passes_skipped_total',
      help: 'Scheduled passes skipped because the previous pass was still running.',
      labelNames: ['pipeline'],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'sluice_last_success_timestamp_seconds',
      help: 'When the pipeline last finalized an item (unix time).',
      labelNames: ['pipeline'],
      registers,
    });
    new Gauge({
      name: 'sluice_items_in_flight',
      help: 'Items being processed now.',
      labelNames: ['pipeline'],
      registers,
      collect() {
        this.reset();
        for (const [pipeline, n] of inFlight()) this.set({ pipeline }, n);
      },
    });
  }

  /**
   * Every series of `pipeline` at 0: an alert on `rate(sluice_retries_total[5m])` or
   * `increase(sluice_items_total{outcome="failed"}[1h])` needs the series before the first event.
   */
  register(pipeline: string): void {
    if (this.known.has(pipeline)) return;
    this.known.add(pipeline);
    for (const outcome of ['ok', 'failed', 'skipped', 'filtered']) this.items.inc({ pipeline, outcome }, 0);
    this.bytesIn.inc({ pipeline }, 0);
    this.bytesOut.inc({ pipeline }, 0);
    this.retries.inc({ pipeline }, 0);
    for (const result of ['ok', 'invalid', 'removed']) this.reloads.inc({ pipeline, result }, 0);
    this.skippedPasses.inc({ pipeline }, 0);
    this.duration.zero({ pipeline });
  }

  itemDone(pipeline: string, ms: number, bytesIn: number, bytesOut: number): void {
    this.items.inc({ pipeline, outcome: 'ok' });
    this.bytesIn.inc({ pipeline }, bytesIn);
    this.bytesOut.inc({ pipeline }, bytesOut);
    this.duration.observe({ pipeline }, ms / 1000);
    this.lastSuccess.set({ pipeline }, Date.now() / 1000);
  }

  itemOutcome(pipeline: string, outcome: 'failed' | 'skipped' | 'filtered', n = 1): void {
    if (n > 0) this.items.inc({ pipeline, outcome }, n);
  }

  retry(pipeline: string): void {
    this.retries.inc({ pipeline });
  }

  reload(pipeline: string, result: 'ok' | 'invalid' | 'removed'): void {
    this.reloads.inc({ pipeline, result });
  }

  passSkipped(pipeline: string, n: number): void {
    this.skippedPasses.inc({ pipeline }, n);
  }

  text(): Promise<string> {
    for (const pipeline of this.inFlight().keys()) if (pipeline) this.register(pipeline);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
