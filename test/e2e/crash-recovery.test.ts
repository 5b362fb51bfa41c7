/**
 * SIGKILL at random moments during a 2,000-file local → local move (after_success: delete),
 * rerun until done: exactly one correct copy of every file, no temp files, and never a source
 * deleted whose copy is not in the sink.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listFiles, makeWorkspace, sha256 } from '../helpers/workspace.js';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'sluice.js');
const FILES = 2000;
const KILLS = 8;
const ws = makeWorkspace('sluice-crash-');
afterAll(() => ws.cleanup());

function runOnce(killAfterMs: number | null): Promise<{ code: number | null; killed: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, 'run', 'move.yaml', '--log-format', 'json', '--quiet'], {
      cwd: ws.dir,
      stdio: 'ignore',
    });
    let killed = false;
    const timer =
      killAfterMs === null
        ? null
        : setTimeout(() => {
            killed = child.kill('SIGKILL');
          }, killAfterMs);
    child.on('exit', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code, killed: killed && code === null });
    });
  });
}

describe('crash recovery', () => {
  it(`survives ${KILLS} SIGKILLs during a ${FILES}-file move`, async () => {
    const hashes = new Map<string, string>();
    for (let i = 0; i < FILES; i++) {
      const rel = `d${i % 20}/file-${i}.dat`;
      const body = Buffer.alloc(512 + ((i * 7919) % 16384), i % 251);
      body.write(`file ${i}`);
      ws.write(`in/${rel}`, body);
      hashes.set(rel, sha256(body));
    }
    ws.pipeline(
      'name: move\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  local: { path: ./out }\npolicy:\n  concurrency: 8\n',
      'move.yaml',
    );

    const checkNoLoss = () => {
      const remaining = new Set(listFiles(ws.path('in')));
      for (const [rel, hash] of hashes) {
        if (remaining.has(rel)) continue;
        // Deleted at the source: its verified copy must be in the sink.
        const copy = ws.path('out', rel);
        expect(existsSync(copy), `${rel} deleted at the source but missing in the sink`).toBe(true);
        expect(sha256(readFileSync(copy)), `${rel} copy differs`).toBe(hash);
      }
      return remaining.size;
    };

    let kills = 0;
    let finished = false;
    for (let round = 0; round < 60 && !finished; round++) {
      const killAfter = round < KILLS ? 250 + Math.floor(Math.random() * 900) : null;
      const r = await runOnce(killAfter);
      if (r.killed) kills++;
      const remaining = checkNoLoss();
      finished = !r.killed && r.code === 0 && remaining === 0;
    }
    expect(finished).toBe(true);
    expect(kills).toBeGreaterThanOrEqual(3);

    const out = listFiles(ws.path('out'));
    expect(out).toHaveLength(FILES);
    for (const rel of out) expect(sha256(readFileSync(ws.path('out', rel)))).toBe(hashes.get(rel));
    expect(existsSync(ws.path('out', '.sluice-tmp')) ? readdirSync(ws.path('out', '.sluice-tmp')) : []).toEqual([]);
    expect(listFiles(ws.path('in'))).toEqual([]);
  }, 240_000);
});
