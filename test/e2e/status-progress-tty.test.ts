/**
 * The live progress line under a pseudo-terminal that reports no size (0 rows × 0 columns, as
 * some CI runners and `docker exec -t` give): it is drawn at 80 columns, not cut away to
 * nothing (issue 15 item 8).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runSluiceInTerminal } from '../helpers/sluice-process.js';
import { makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-tty-nosize-');
afterAll(() => ws.cleanup());

describe('progress on a terminal without a size', () => {
  it('still draws the progress line', () => {
    for (let i = 0; i < 12; i++) ws.write(`in/f${i}.bin`, Buffer.alloc(100_000, i));
    ws.pipeline(
      'name: tty\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\npolicy:\n  rate_limit: { per_second: 20 }\n',
      'tty.yaml',
    );
    const r = runSluiceInTerminal(['run', 'tty.yaml'], ws.dir, { rows: 0, cols: 0 });
    expect(r.status).toBe(0);
    const screen = r.screen;
    expect(screen).toMatch(
      /tty \[[█░]{20}\] \d+\/12 files {2}[\d.]+ (KiB|MiB) {2}[\d.]+ (KiB|MiB)\/s {2}[\d.]+ files\/s/,
    );
    expect(screen).toContain('tty: 12 ok, 0 failed');
  }, 30_000);
});
