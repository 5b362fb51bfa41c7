/**
 * `sluice watch` and the connections file: editing sluice.config.yaml reloads the pipelines
 * whose connections changed (the others keep their version), and an edit that breaks a
 * connection is rejected like an invalid pipeline edit, the running version kept.
 */
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { type SluiceProcess, startSluice, until } from '../helpers/sluice-process.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
let proc: SluiceProcess | undefined;
afterEach(async () => {
  if (proc && proc.child.exitCode === null) {
    proc.kill('SIGKILL');
    await proc.exited;
  }
  proc = undefined;
  ws?.cleanup();
});

const connections = (inbox: string) =>
  `connections:\n  drop:\n    local: { path: ${inbox}, watch: true, min_age: 100ms, after_success: delete }\n`;

describe('sluice watch with shared connections', () => {
  it('an edit of a connection reloads the pipelines using it, and only them', async () => {
    ws = makeWorkspace('sluice-config-watch-');
    ws.write('in1/.keep', '');
    ws.write('in2/.keep', '');
    ws.write('sluice.config.yaml', connections('./in1'));
    ws.pipeline(
      'name: uses\nsource:\n  local: { connection: drop, exclude: [".keep"] }\nsink:\n  local: { path: ./out }\n',
      'uses.yaml',
    );
    ws.pipeline(
      'name: other\nsource:\n  local: { path: ./other-in, watch: true }\nsink:\n  local: { path: ./other-out }\n',
      'other.yaml',
    );
    ws.write('other-in/.keep', '');
    proc = startSluice(['watch', '.', '--debounce', '50', '--log-format', 'json'], ws.dir);
    await until(
      () => proc!.logs.filter((l) => l.msg === 'pipeline started').length,
      (n) => n === 2,
      15_000,
      'both pipelines to start',
    );
    ws.write('in1/a.txt', 'a');
    await until(
      () => ws.files('out'),
      (f) => f.includes('a.txt'),
      10_000,
      'a.txt delivered',
    );

    writeFileSync(ws.path('sluice.config.yaml'), connections('./in2'));
    const reloaded = await proc.waitForLog((l) => l.msg === 'pipeline reloaded', 10_000, 'the reload');
    expect(reloaded.pipeline).toBe('uses');
    ws.write('in2/b.txt', 'b');
    await until(
      () => ws.files('out'),
      (f) => f.includes('b.txt'),
      10_000,
      'b.txt delivered',
    );
    expect(proc.logs.filter((l) => l.msg === 'pipeline reloaded').map((l) => l.pipeline)).toEqual(['uses']);

    // A broken connection: rejected, the running version keeps running.
    writeFileSync(ws.path('sluice.config.yaml'), connections('./in2').replace('watch: true', 'watch: often'));
    const rejected = await proc.waitForLog(
      (l) => String(l.msg).startsWith('reload rejected'),
      10_000,
      'rejection',
    );
    expect(String(rejected.err)).toMatch(
      /sluice\.config\.yaml:3:\d+: .*\/source\/local\/watch: .*\(from connection "drop", used at uses\.yaml:3:\d+\)/,
    );
    ws.write('in2/c.txt', 'c');
    await until(
      () => ws.files('out'),
      (f) => f.includes('c.txt'),
      10_000,
      'c.txt delivered',
    );
  });
});
