/**
 * /status lists each parked file once with its reason and since when, however many passes held
 * it back (issue 17): the list is the last pass's, not an append per pass.
 */
import { describe, expect, it } from 'vitest';
import { PipelineCounters } from './pipeline-counters.js';
import { newSummary } from './run-summary.js';

const parkedPass = (paths: string[]) => {
  const s = newSummary('nightly', false);
  s.parked = paths.length;
  s.parkedItems = paths.map((path) => ({
    source: 'sftp',
    path,
    error: 'bad data',
    since: '2026-01-01T02:00:00.000Z',
  }));
  return s;
};

describe('PipelineCounters: parked files', () => {
  it('shows each parked file once, from the last pass; an interrupted pass changes nothing', () => {
    const counters = new PipelineCounters(() => 'nightly', undefined);
    expect(counters.snapshot().parked).toEqual({ count: 0, items: [] });
    for (let night = 0; night < 3; night++) {
      counters.passStarted();
      counters.passFinished(parkedPass(['bad.gpg']));
    }
    const status = counters.snapshot();
    expect(status.parked).toEqual({
      count: 1,
      items: [{ source: 'sftp', path: 'bad.gpg', error: 'bad data', since: '2026-01-01T02:00:00.000Z' }],
    });
    expect(status.lastPass).toMatchObject({ parked: 1, failed: 0 });

    const interrupted = parkedPass([]);
    interrupted.interrupted = true;
    counters.passFinished(interrupted);
    expect(counters.snapshot().parked.count).toBe(1);

    // Replaced and delivered: no longer parked.
    counters.passFinished(parkedPass([]));
    expect(counters.snapshot().parked).toEqual({ count: 0, items: [] });
  });
});
