/**
 * SIGKILL at random moments during a 2,000-file local → local move (after_success: delete),
 * rerun until done: exactly one correct copy of every file, no temp files, and never a source
 * deleted whose copy is not in the sink.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  expectNoLoss,
  killAfterShare,
  killLoop,
  localCopies,
  writeNumberedFiles,
} from '../helpers/kill-loop.js';
import { listFiles, makeWorkspace, sha256 } from '../helpers/workspace.js';

const FILES = 2000;
const KILLS = 8;
const ws = makeWorkspace('sluice-crash-');
afterAll(() => ws.cleanup());

describe('crash recovery', () => {
  it(`survives ${KILLS} SIGKILLs during a ${FILES}-file move`, async () => {
    const hashes = writeNumberedFiles(ws, 'in', FILES);
    ws.pipeline(
      'name: move\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  local: { path: ./out }\npolicy:\n  concurrency: 8\n',
      'move.yaml',
    );

    const result = await killLoop({
      args: () => ['run', 'move.yaml', '--log-format', 'json', '--quiet'],
      cwd: ws.dir,
      kills: KILLS,
      maxKillAttempts: KILLS,
      killMoment: killAfterShare(ws.path('in'), KILLS),
      afterRound: () => expectNoLoss(hashes, listFiles(ws.path('in')), localCopies(ws.path('out'))),
      maxRounds: 60,
      roundTimeoutMs: 120_000,
    });
    expect(result.finished).toBe(true);
    expect(result.kills).toBeGreaterThanOrEqual(3);

    const out = listFiles(ws.path('out'));
    expect(out).toHaveLength(FILES);
    for (const rel of out) expect(sha256(readFileSync(ws.path('out', rel)))).toBe(hashes.get(rel));
    expect(
      existsSync(ws.path('out', '.sluice-tmp')) ? readdirSync(ws.path('out', '.sluice-tmp')) : [],
    ).toEqual([]);
    expect(listFiles(ws.path('in'))).toEqual([]);
  }, 240_000);

  it('redoes an if_exists: rename item after a SIGKILL without writing a numbered twin', async () => {
    const files = 1000;
    const hashes = writeNumberedFiles(ws, 'in-rename', files);
    ws.pipeline(
      'name: move-rename\nsource:\n  local: { path: ./in-rename, after_success: delete }\nsink:\n  local: { path: ./out-rename, if_exists: rename }\npolicy:\n  concurrency: 8\n',
      'move-rename.yaml',
    );
    const result = await killLoop({
      args: () => ['run', 'move-rename.yaml', '--log-format', 'json', '--quiet'],
      cwd: ws.dir,
      kills: 5,
      maxKillAttempts: 5,
      killMoment: killAfterShare(ws.path('in-rename'), 5),
      afterRound: () =>
        expectNoLoss(hashes, listFiles(ws.path('in-rename')), localCopies(ws.path('out-rename'))),
      maxRounds: 40,
      roundTimeoutMs: 120_000,
    });
    expect(result.finished).toBe(true);
    const out = listFiles(ws.path('out-rename'));
    // A twin would be `name (1).ext`: the ledger knew which names the killed run had reserved.
    expect(out.filter((rel) => / \(\d+\)/.test(rel))).toEqual([]);
    expect(out).toHaveLength(files);
  }, 240_000);
});
