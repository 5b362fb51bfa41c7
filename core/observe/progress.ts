/**
 * Live progress on a TTY: one line per pipeline (files done/total, bytes, rate, ETA), redrawn
 * in place with log-update (it handles terminal width, wrapping and cursor hiding). Log lines
 * are printed above the progress block, never through it.
 */
import { createLogUpdate } from 'log-update';
import { formatBytes, formatDuration } from '../units.js';

export interface ProgressFigures {
  name: string;
  state: string;
  done: number;
  failed: number;
  skipped: number;
  /** Listed so far; `counted` when the listing has ended (then it is the real total). */
  total: number;
  counted: boolean;
  bytes: number;
  elapsedMs: number;
  inFlight: number;
}

/** One progress line (pure: tested on its own). */
export function progressLine(f: ProgressFigures, color: boolean): string {
  const finished = f.done + f.failed + f.skipped;
  const total = Math.max(f.total, finished);
  const width = 20;
  const ratio = f.counted && total > 0 ? finished / total : 0;
  const filled = Math.round(ratio * width);
  const bar = f.counted ? `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]` : `[${'·'.repeat(width)}]`;
  const rate = f.elapsedMs > 0 ? (f.bytes / f.elapsedMs) * 1000 : 0;
  const processed = f.done + f.failed;
  const filesRate = f.elapsedMs > 0 ? (processed / f.elapsedMs) * 1000 : 0;
  const remaining = total - finished;
  let eta = '';
  if (f.counted && remaining > 0 && processed > 0)
    eta = ` ETA ${formatDuration((f.elapsedMs / processed) * remaining)}`;
  else if (f.counted && remaining === 0) eta = ' done';
  const failed = f.failed > 0 ? (color ? ` \x1b[31m${f.failed} failed\x1b[0m` : ` ${f.failed} failed`) : '';
  const name = color ? `\x1b[1m${f.name}\x1b[0m` : f.name;
  return `${name} ${bar} ${finished}/${total}${f.counted ? '' : '+'} files${failed}  ${formatBytes(f.bytes)}  ${formatRate(rate)}  ${formatFilesRate(filesRate)}${eta}  (${f.state}, ${f.inFlight} in flight)`;
}

/** Bytes per second, rounded as a person reads it: `407 B/s`, `1.2 MiB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond < 1024 ? Math.round(bytesPerSecond) : bytesPerSecond)}/s`;
}

/** Files per second: one decimal under 10 (small-file runs), whole numbers above. */
export function formatFilesRate(perSecond: number): string {
  return `${perSecond < 10 ? perSecond.toFixed(1) : Math.round(perSecond)} files/s`;
}

/** What a progress line reads of a running pipeline (the runtime's supervisor is one). */
export interface ProgressSubject {
  readonly name: string;
  readonly state: string;
  readonly inFlight: number;
  readonly pass?:
    | {
        done: number;
        failed: number;
        skipped: number;
        total: number;
        counted: boolean;
        bytesIn: number;
        startedAt: number;
      }
    | undefined;
}

export function figuresOf(s: ProgressSubject, now = Date.now()): ProgressFigures {
  const pass = s.pass;
  return {
    name: s.name,
    state: s.state,
    done: pass?.done ?? 0,
    failed: pass?.failed ?? 0,
    skipped: pass?.skipped ?? 0,
    total: pass?.total ?? 0,
    counted: pass?.counted ?? false,
    bytes: pass?.bytesIn ?? 0,
    elapsedMs: pass ? now - pass.startedAt : 0,
    inFlight: s.inFlight,
  };
}

/**
 * The stream as log-update should see it: a pseudo-terminal that reports no size (0 × 0, as
 * some CI runners and `docker exec -t` give) is drawn as 80 × 24 — log-update would otherwise cut
 * every line away to fit 0 rows, and nothing would show.
 */
function sized(stream: NodeJS.WriteStream): NodeJS.WriteStream {
  return new Proxy(stream, {
    get(target, prop) {
      if (prop === 'columns') return target.columns || 80;
      if (prop === 'rows') return target.rows || 24;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

export class ProgressDisplay {
  private readonly render: ReturnType<typeof createLogUpdate>;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly supervisors: () => ProgressSubject[],
    private readonly color: boolean,
  ) {
    this.render = createLogUpdate(sized(stream));
  }

  start(): void {
    this.timer = setInterval(() => this.draw(), 200);
    this.timer.unref();
  }

  /** Prints a line above the progress block. */
  print(text: string): void {
    this.render.clear();
    this.stream.write(text);
    this.draw();
  }

  private draw(): void {
    this.render(
      this.supervisors()
        .map((s) => progressLine(figuresOf(s), this.color))
        .join('\n'),
    );
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.render.clear();
  }
}
