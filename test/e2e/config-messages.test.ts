/**
 * Messages that used to cost minutes (issue 15): each names file:line:col and says what to
 * write instead. Through the loader as `sluice validate` uses it; EPIPE with the real binary.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConfigErrors } from '../../core/config/load.js';
import { loadPipelineFile } from '../../core/sdk.js';
import { SLUICE_BIN } from '../helpers/sluice-process.js';
import { makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-messages-');
afterAll(() => ws.cleanup());

async function errorOf(yaml: string, name = 'p.yaml', env: Record<string, string> = {}): Promise<string[]> {
  const file = ws.pipeline(yaml, name);
  try {
    await loadPipelineFile(file, { env });
  } catch (err) {
    const e = err as ConfigErrors;
    return (e.errors ?? [e]).map((x) => x.toUserString().replaceAll(`${ws.dir}/`, ''));
  }
  throw new Error('expected the load to fail');
}

const SINK = 'sink:\n  local:\n    path: ./out\n';

describe('config messages', () => {
  it('an unquoted glob is named as such, at its place, with the fix', async () => {
    const errors = await errorOf(`name: g\nsource:\n  local:\n    path: ./in\n    include: *.zip\n${SINK}`);
    expect(errors).toEqual([
      'p.yaml:5:14: *.zip is read as a YAML alias, not as text — quote the glob: "*.zip" (in YAML a value starting with * names an anchor)',
    ]);
  });

  it('{date:YYYY/MM/DD} is refused with the strftime spelling', async () => {
    const errors = await errorOf(
      `name: d\nsource:\n  local:\n    path: ./in\nsteps:\n  - segregate:\n      to: "{date:YYYY/MM/DD}/{name}"\n${SINK}`,
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^p\.yaml:7:\d+: .*"YYYY" is not a date field here; date formats are strftime/);
    expect(errors[0]).toContain('write {date:%Y/%m/%d}');
  });

  it('every: 5 minutes is one error with a hint', async () => {
    const errors = await errorOf(
      `name: e\ntrigger:\n  every: 5 minutes\nsource:\n  local:\n    path: ./in\n${SINK}`,
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^p\.yaml:3:10: \/trigger\/every: "5 minutes" is not valid here/);
    expect(errors[0]).toContain('— a number and a unit without a space: ms, s, m, h, d or w (5m, 90s, 1h)');
  });

  it('a missing variable says where .env was looked for', async () => {
    const yaml = `name: v\nsource:\n  local:\n    path: \${INBOX}\n${SINK}`;
    const [missing] = await errorOf(yaml, 'v.yaml');
    expect(missing).toContain('environment variable INBOX is not set and has no default');
    expect(missing).toContain('(not in the environment, and there is no .env)');
    expect(missing).toContain('add INBOX=… to .env');
    ws.write('.env', 'OTHER=1\n');
    const [again] = await errorOf(yaml, 'v.yaml');
    expect(again).toContain('(not in the environment nor in .env)');
  });
});

describe('output into a closed pipe', () => {
  it('`sluice plugins | head -1` ends quietly, without an EPIPE stack trace', () => {
    const r = spawnSync('sh', ['-c', `"${process.execPath}" "${SLUICE_BIN}" plugins | head -1`], {
      encoding: 'utf8',
    });
    expect(r.stdout).toBe('Sources:\n');
    expect(r.stderr).not.toMatch(/EPIPE|Error|at /);
  });
});
