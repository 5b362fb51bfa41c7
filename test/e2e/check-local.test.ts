/**
 * Pre-flight on the local connector with the real binary: `sluice check` proves the source folder
 * and writes and removes a probe in the sink folder; a missing source folder is one clear line
 * (and `run` stops on it before touching anything).
 */
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { SLUICE_BIN } from '../helpers/sluice-process.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
afterEach(() => ws?.cleanup());

const sluice = (args: string[]) =>
  spawnSync(process.execPath, [SLUICE_BIN, ...args], {
    cwd: ws.dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    encoding: 'utf8',
  });

describe('local pre-flight', () => {
  it('lists the source folder and probes the sink folder, leaving nothing behind', () => {
    ws = makeWorkspace('sluice-check-local-');
    ws.write('in/a.csv', 'a\n');
    ws.write('in/b.csv', 'b\n');
    ws.pipeline('name: ok\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n', 'ok.yaml');
    const r = sluice(['check', 'ok.yaml']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/✓ source local .*in — folder .*in listed \(2 entries\)/);
    expect(r.stdout).toMatch(/✓ sink local .*out — folder .*out: probe written and removed/);
    expect(ws.files('out')).toEqual([]);
    expect(ws.files('in')).toEqual(['a.csv', 'b.csv']);
  });

  it('names a missing source folder; run stops on it before anything is written', () => {
    ws = makeWorkspace('sluice-check-local-');
    ws.pipeline(
      'name: gone\nsource:\n  local: { path: ./nowhere }\nsink:\n  local: { path: ./out }\n',
      'gone.yaml',
    );
    const r = sluice(['check', 'gone.yaml']);
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(/✗ source local .*nowhere — folder .*nowhere does not exist/);
    const run = sluice(['run', 'gone.yaml']);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/pre-flight/);
    expect(run.stderr).toMatch(/nowhere does not exist/);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
