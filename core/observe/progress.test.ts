import { describe, expect, it } from 'vitest';
import { formatFilesRate, formatRate, progressLine } from './progress.js';

const base = {
  name: 'orders',
  state: 'running',
  done: 0,
  failed: 0,
  skipped: 0,
  total: 0,
  counted: false,
  bytes: 0,
  elapsedMs: 0,
  inFlight: 0,
};

describe('progressLine', () => {
  it('shows done/total, bytes, rate and an ETA once the total is known', () => {
    const line = progressLine(
      {
        ...base,
        done: 20,
        skipped: 10,
        total: 60,
        counted: true,
        bytes: 10 * 1024 * 1024,
        elapsedMs: 10_000,
        inFlight: 4,
      },
      false,
    );
    // 30 of 60 finished; 20 processed in 10 s → 30 left take 15 s.
    expect(line).toBe(
      'orders [██████████░░░░░░░░░░] 30/60 files  10.0 MiB  1.0 MiB/s  2.0 files/s ETA 15.0s  (running, 4 in flight)',
    );
  });

  it('marks a total still being listed with + and draws no bar', () => {
    const line = progressLine({ ...base, done: 3, total: 5, bytes: 300, elapsedMs: 1000 }, false);
    expect(line).toBe(
      'orders [····················] 3/5+ files  300 B  300 B/s  3.0 files/s  (running, 0 in flight)',
    );
  });

  it('rounds the rates (no 407.1246819338422 B/s) and gives files/s beside bytes/s', () => {
    const line = progressLine({ ...base, done: 160, total: 160, bytes: 160_000, elapsedMs: 393_000 }, false);
    expect(line).toContain('  407 B/s  0.4 files/s');
    expect(formatRate(3.5 * 1024 * 1024)).toBe('3.5 MiB/s');
    expect(formatFilesRate(123.4)).toBe('123 files/s');
  });

  it('shows failures, in red only with colour', () => {
    const f = { ...base, done: 1, failed: 2, total: 3, counted: true, elapsedMs: 1000 };
    expect(progressLine(f, false)).toContain(' 3/3 files 2 failed ');
    expect(progressLine(f, false)).toContain(' done ');
    expect(progressLine(f, true)).toContain('\x1b[31m2 failed\x1b[0m');
    expect(progressLine(f, false)).not.toContain('\x1b[');
  });
});
