/**
 * A pipeline's alerts: what its supervisor reports (a pass ended or failed, a reload was
 * rejected) becomes `failures`, `parked`, `recovered` and `reload_rejected` alerts, and the
 * `expect` deadlines become `missed_arrival` ones. One `PipelineAlerts` lives as long as its
 * pipeline file, across reloads (a reload takes the new targets and keeps the rate limit).
 *
 * - At most one alert per kind per `min_interval` (default 1h); the next one says how many were
 *   held back.
 * - Every text and detail is redacted (core/observe/redact.ts) before any target sees it.
 * - A target that fails is logged and never fails the pipeline; sending never delays a pass.
 */
import type { AlertsT, ExpectT } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { redact, redactDeep } from '../observe/redact.js';
import type { RunSummary } from '../observe/run-summary.js';
import { parseDuration } from '../units.js';
import { ArrivalWindow, deadlines } from './expect.js';
import { type Alert, type AlertKind, type AlertTarget, alertTarget } from './targets.js';

export type { Alert, AlertKind } from './targets.js';

/** What alerting needs of its host (the supervisor): a logger and a sleep that clamps long waits. */
export interface AlertsHost {
  log: Logger;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/** The parts of a loaded pipeline alerting reads. */
export interface AlertedPipeline {
  name: string;
  alerts?: AlertsT;
  expect?: ExpectT;
}

/** Files listed in one alert; the rest are counted. */
const MAX_LISTED = 10;
/** Files remembered as already alerted (failed or parked), oldest forgotten first. */
const MAX_REMEMBERED = 10_000;
/** A target gets this long per alert. */
const SEND_TIMEOUT_MS = 30_000;

interface ParkedLike {
  source: string;
  path: string;
  error: string;
  since?: string;
}

export class PipelineAlerts {
  private pipeline = '';
  private targets: AlertTarget[] = [];
  private kinds = new Set<AlertKind>();
  private minIntervalMs = 3_600_000;
  private readonly lastSent = new Map<AlertKind, number>();
  private readonly heldBack = new Map<AlertKind, number>();
  /** The last pass failed, or left files failed or parked: a clean pass is then a recovery. */
  private troubled = false;
  private readonly alerted = new Set<string>();
  private readonly window = new ArrivalWindow();
  private expectKey: string | undefined;
  private expectStop: AbortController | undefined;
  private readonly closing = new AbortController();
  private readonly sending = new Set<Promise<void>>();

  constructor(private readonly host: AlertsHost) {}

  /**
   * Takes a (re)loaded pipeline's `alerts` and `expect`. `timers` is false in one-shot runs:
   * the deadlines of `expect` are watched only by a process that stays up.
   */
  configure(def: AlertedPipeline, timers: boolean): void {
    this.pipeline = def.name;
    this.targets = (def.alerts?.targets ?? []).map(alertTarget);
    this.kinds = new Set(
      def.alerts?.on ?? ['failures', 'parked', 'recovered', 'reload_rejected', 'missed_arrival'],
    );
    this.minIntervalMs = parseDuration(def.alerts?.min_interval ?? '1h');
    const key = timers && def.expect ? JSON.stringify(def.expect) : undefined;
    if (key === this.expectKey) return;
    this.expectStop?.abort();
    this.expectKey = key;
    this.expectStop = undefined;
    if (def.expect && key) {
      this.expectStop = new AbortController();
      void this.watchArrivals(def.expect, this.expectStop.signal);
    }
  }

  /** A pass ended with `summary`. */
  passEnded(summary: RunSummary): void {
    if (summary.dryRun) return;
    this.window.add(summary.ok);
    // `parked`/`parkedItems` come with policy.failed; read as optional until every summary has them.
    const { parked = 0, parkedItems = [] } = summary as { parked?: number; parkedItems?: ParkedLike[] };
    if (summary.failures.length > 0) {
      for (const f of summary.failures) this.remember(f);
      this.send(
        'failures',
        `${summary.failures.length} file(s) failed`,
        [
          `A pass of ${this.pipeline} ended with ${summary.failed} failed file(s) (${summary.ok} delivered).`,
          ...listed(summary.failures.map((f) => `${f.source}:${f.path} — ${f.code}: ${f.error}`)),
        ],
        { failed: summary.failed, ok: summary.ok, failures: summary.failures.slice(0, MAX_LISTED) },
      );
    }
    const newlyParked = parkedItems.filter((p) => !this.alerted.has(keyOf(p)));
    if (newlyParked.length > 0) {
      for (const p of newlyParked) this.remember(p);
      this.send(
        'parked',
        `${newlyParked.length} file(s) parked`,
        [
          `${this.pipeline} set these files aside after they failed; they are tried again when they change or are replayed (sluice retry).`,
          ...listed(
            newlyParked.map(
              (p) => `${p.source}:${p.path} — ${p.error}${p.since ? ` (since ${p.since})` : ''}`,
            ),
          ),
        ],
        { parked: newlyParked.slice(0, MAX_LISTED) },
      );
    }
    if (summary.interrupted) return;
    const troubled = summary.failed > 0 || parked > 0;
    if (this.troubled && !troubled)
      this.send(
        'recovered',
        'recovered',
        [`A pass of ${this.pipeline} ended without failures (${summary.ok} delivered).`],
        {
          ok: summary.ok,
        },
      );
    this.troubled = troubled;
  }

  /** A pass failed as a whole (its listing, the ledger). */
  passFailed(error: string): void {
    this.troubled = true;
    this.send('failures', 'a pass failed', [`A pass of ${this.pipeline} failed: ${error}`], { error });
  }

  /** A changed pipeline file was not taken; the running version keeps running. */
  reloadRejected(file: string, error: string): void {
    this.send(
      'reload_rejected',
      'reload rejected',
      [`${file} changed but was not loaded; the running version keeps running.`, error],
      { file, error },
    );
  }

  /** Waits (a bounded time) for the alerts being sent, e.g. before a process that failed exits. */
  async flush(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.sending]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 10_000);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Stops watching deadlines and waits (a bounded time) for alerts still being sent. */
  async close(): Promise<void> {
    this.expectStop?.abort();
    const timeout = setTimeout(() => this.closing.abort(), 10_000);
    await Promise.allSettled([...this.sending]);
    clearTimeout(timeout);
  }

  private async watchArrivals(expect: ExpectT, signal: AbortSignal): Promise<void> {
    let schedule: ReturnType<typeof deadlines>;
    try {
      schedule = deadlines(expect);
    } catch (err) {
      this.host.log.error({ pipeline: this.pipeline, err: errorMessage(err) }, 'expect: not watched');
      return;
    }
    const files = expect.files ?? 1;
    for (;;) {
      const due = schedule.nextAfter(new Date());
      try {
        await this.host.sleep(Math.max(0, due.getTime() - Date.now()), signal);
      } catch {
        return; // stopped or reconfigured
      }
      const { delivered, since } = this.window.close(due);
      if (delivered >= files) continue;
      const where = `${expect.by} (${expect.timezone ?? 'UTC'})`;
      this.host.log.error(
        { pipeline: this.pipeline, delivered, expected: files, by: where },
        'expected files missing',
      );
      this.send(
        'missed_arrival',
        `${delivered} of ${files} expected file(s) by ${where}`,
        [
          `${this.pipeline} delivered ${delivered} file(s) since ${since.toISOString()}; ${files} were expected by ${where}.`,
        ],
        {
          delivered,
          expected: files,
          by: expect.by,
          timezone: expect.timezone ?? 'UTC',
          since: since.toISOString(),
        },
      );
    }
  }

  private remember(file: { source: string; path: string }): void {
    const key = keyOf(file);
    this.alerted.delete(key);
    this.alerted.add(key);
    if (this.alerted.size > MAX_REMEMBERED) this.alerted.delete(this.alerted.values().next().value as string);
  }

  private send(kind: AlertKind, title: string, lines: string[], details: Record<string, unknown>): void {
    if (this.targets.length === 0 || !this.kinds.has(kind)) return;
    const now = Date.now();
    const last = this.lastSent.get(kind);
    if (last !== undefined && now - last < this.minIntervalMs) {
      this.heldBack.set(kind, (this.heldBack.get(kind) ?? 0) + 1);
      this.host.log.info({ pipeline: this.pipeline, kind }, 'alert held back (alerts.min_interval)');
      return;
    }
    this.lastSent.set(kind, now);
    const suppressed = this.heldBack.get(kind) ?? 0;
    this.heldBack.delete(kind);
    const alert: Alert = redactDeep({
      pipeline: this.pipeline,
      kind,
      title: `[sluice] ${this.pipeline}: ${title}`,
      text: [
        ...lines,
        ...(suppressed > 0 ? [`(${suppressed} earlier alert(s) of this kind held back)`] : []),
      ].join('\n'),
      at: new Date(now).toISOString(),
      suppressed,
      details,
    });
    for (const target of this.targets) {
      const signal = AbortSignal.any([this.closing.signal, AbortSignal.timeout(SEND_TIMEOUT_MS)]);
      const sending: Promise<void> = target
        .send(alert, signal)
        .then(() => this.host.log.info({ pipeline: this.pipeline, kind, target: target.name }, 'alert sent'))
        .catch((err) =>
          this.host.log.warn(
            { pipeline: this.pipeline, kind, target: target.name, err: redact(errorMessage(err)) },
            'alert not sent',
          ),
        )
        .finally(() => this.sending.delete(sending));
      this.sending.add(sending);
    }
  }
}

function keyOf(file: { source: string; path: string }): string {
  return `${file.source}\u0000${file.path}`;
}

function listed(lines: string[]): string[] {
  const more = lines.length - MAX_LISTED;
  return [...lines.slice(0, MAX_LISTED).map((l) => `- ${l}`), ...(more > 0 ? [`…and ${more} more`] : [])];
}
