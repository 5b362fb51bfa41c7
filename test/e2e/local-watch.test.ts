/** The local source's `watch: true`: near-real-time pick-up that waits for files to hold still. */
import { appendFileSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../core/ledger/sqlite.js';
import { PipelineRunner } from '../../core/runtime/runner.js';
import { loadPipelineFile } from '../../core/sdk.js';
import { sleep, startSluice, until } from '../helpers/sluice-process.js';
import { listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
afterEach(() => ws?.cleanup());

describe('local source, watch: true', () => {
  it('takes existing files, then new ones, only once they stopped growing for min_age', async () => {
    ws = makeWorkspace('sluice-lwatch-');
    ws.write('in/old.txt', 'already there');
    const file = ws.pipeline(
      'name: lw\nsource:\n  local: { path: ./in, watch: true, min_age: 400ms, after_success: delete }\nsink:\n  local: { path: ./out, if_exists: fail }\n',
    );
    const def = await loadPipelineFile(file);
    const ledger = await SqliteLedger.open(def.stateDir);
    const runner = new PipelineRunner(def, { ledger });
    const pass = runner.runPass();
    try {
      await until(
        () => listFiles(ws.path('out')),
        (f) => f.includes('old.txt'),
        10_000,
        'the existing file',
      );

      // A slow writer: 8 appends 150 ms apart. The file must not be taken half-written.
      ws.write('in/growing.log', 'line 0\n');
      for (let i = 1; i < 8; i++) {
        await sleep(150);
        expect(listFiles(ws.path('out'))).not.toContain('growing.log');
        appendFileSync(ws.path('in/growing.log'), `line ${i}\n`);
      }
      ws.write('in/sub/new.bin', Buffer.alloc(5000, 1));
      await until(
        () => listFiles(ws.path('out')),
        (f) => f.length === 3,
        10_000,
        'the new files',
      );
      expect(readFileSync(ws.path('out/growing.log'), 'utf8')).toBe(
        Array.from({ length: 8 }, (_, i) => `line ${i}\n`).join(''),
      );
      expect(listFiles(ws.path('out'))).toEqual(['growing.log', 'old.txt', 'sub/new.bin']);
      await until(
        () => listFiles(ws.path('in')),
        (f) => f.length === 0,
        5_000,
        'the source to be emptied',
      );
    } finally {
      runner.stopIntake();
      const summary = await pass;
      await runner.close();
      await ledger.close();
      expect(summary).toMatchObject({ ok: 3, failed: 0 });
    }
  }, 30_000);
});

describe('a watching pass that lasts as long as the pipeline runs', () => {
  it('takes a file dropped again under the same name, and routes a later file to a destination an earlier one had', async () => {
    ws = makeWorkspace('sluice-lwatch-again-');
    const file = ws.pipeline(
      'name: lw-again\nsource:\n  local: { path: ./in, watch: true, min_age: 200ms, after_success: delete }\nsteps:\n  - rename: { to: "{name}" }\nsink:\n  local: { path: ./out, if_exists: rename }\n',
    );
    const def = await loadPipelineFile(file);
    const ledger = await SqliteLedger.open(def.stateDir);
    const runner = new PipelineRunner(def, { ledger });
    const pass = runner.runPass();
    try {
      ws.write('in/r.csv', 'monday\n');
      await until(
        () => listFiles(ws.path('out')),
        (f) => f.length === 1,
        10_000,
        'the first drop',
      );
      await until(
        () => listFiles(ws.path('in')),
        (f) => f.length === 0,
        5_000,
        'its source deleted',
      );
      // The same name again, then another folder's file flattened onto the same destination.
      ws.write('in/r.csv', 'tuesday, longer\n');
      await until(
        () => listFiles(ws.path('out')),
        (f) => f.length === 2,
        10_000,
        'the second drop',
      );
      ws.write('in/b/r.csv', 'from b\n');
      await until(
        () => listFiles(ws.path('out')),
        (f) => f.length === 3,
        10_000,
        'the later file',
      );
      expect(listFiles(ws.path('out'))).toEqual(['r (1).csv', 'r (2).csv', 'r.csv']);
      expect(readFileSync(ws.path('out/r (1).csv'), 'utf8')).toBe('tuesday, longer\n');
    } finally {
      runner.stopIntake();
      await pass;
      await runner.close();
      await ledger.close();
    }
  }, 30_000);
});

describe('stopping a watching source while it is still scanning', () => {
  it('lets the process exit: no watch of a folder found after the stop keeps it alive', async () => {
    ws = makeWorkspace('sluice-lwatch-stop-');
    for (let i = 0; i < 400; i++) ws.write(`in/d${i}/e${i % 7}/f.txt`, 'x');
    ws.pipeline(
      'name: lw-stop\nsource:\n  local: { path: ./in, watch: true, min_age: 100ms }\nsink:\n  local: { path: ./out }\n',
      'stop.yaml',
    );
    for (let round = 0; round < 5; round++) {
      const proc = startSluice(['watch', 'stop.yaml', '--debounce', '10'], ws.dir);
      await proc.waitForLog((l) => l.msg === 'pipeline started', 15_000, 'the pipeline to start');
      proc.kill('SIGTERM');
      const code = await Promise.race([proc.exited, sleep(15_000).then(() => 'still running')]);
      if (code === 'still running') proc.kill('SIGKILL');
      expect(code).toBe(0);
    }
  }, 120_000);
});
