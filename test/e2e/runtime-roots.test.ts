/**
 * Several roots on the local source (`paths:`, `match: all|first`, issue 14.5): first-match
 * hiding, the summary's count per root, and every later act (ledger identity, ready markers,
 * companions, tidy-up) in the item's own folder.
 */
import { mkdirSync, readFileSync, utimesSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { loadPipeline } from '../../core/config/load.js';
import { formatSummary } from '../../core/observe/summary.js';
import { builtinRegistry, runPipelineFile } from '../../core/sdk.js';
import { testRegistry } from '../helpers/test-plugins.js';
import { makeWorkspace, sha256, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
afterEach(() => ws?.cleanup());

const run = (file: string) => runPipelineFile(file, { registry: testRegistry() });

describe('local source with several paths', () => {
  it('match: first takes each relative path from the first folder holding it, and counts per folder', async () => {
    ws = makeWorkspace();
    ws.write('a/x.csv', 'x from a');
    ws.write('b/x.csv', 'x from b (hidden)');
    ws.write('b/y.csv', 'y from b');
    ws.write('c/y.csv', 'y from c (hidden)');
    ws.write('c/sub/z.csv', 'z from c');
    const file = ws.pipeline(`name: first
source:
  local: { paths: [./a, ./b, ./c], match: first }
sink:
  local: { path: ./out }
`);
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 3, failed: 0 });
    expect(ws.files('out')).toEqual(['sub/z.csv', 'x.csv', 'y.csv']);
    expect(ws.read('out/x.csv')).toBe('x from a');
    expect(ws.read('out/y.csv')).toBe('y from b');
    expect(summary.servedFrom).toEqual([
      { source: 'local', root: './a', items: 1 },
      { source: 'local', root: './b', items: 1 },
      { source: 'local', root: './c', items: 1 },
    ]);
    expect(formatSummary(summary)).toContain('served from: ./a (1), ./b (1), ./c (1)');
    // match: first keeps its sources: a rerun finds everything done, hidden copies included.
    expect(ws.files('b')).toEqual(['x.csv', 'y.csv']);
    expect(await run(file)).toMatchObject({ ok: 0, failed: 0, skipped: 3 });
    expect(ws.read('out/x.csv')).toBe('x from a');
  });

  it('refuses match: first with a tidy-up: the next pass would deliver a hidden older copy over the winner', async () => {
    ws = makeWorkspace();
    ws.write('a/x.csv', 'NEW');
    ws.write('b/x.csv', 'old');
    for (const after of ['delete', '{ move_to: ./done }']) {
      const file = ws.pipeline(
        `name: first-tidy\nsource:\n  local: { paths: [./a, ./b], match: first, after_success: ${after} }\nsink:\n  local: { path: ./out }\n`,
      );
      await expect(run(file)).rejects.toThrow(/match: first.*after_success.*hidden copy/s);
    }
    // Nothing was read, delivered or deleted.
    expect(ws.files('a')).toEqual(['x.csv']);
    expect(ws.files('b')).toEqual(['x.csv']);
    expect(ws.files('out')).toEqual([]);
  });

  it('match: all keeps one relative path in two folders apart in the ledger', async () => {
    ws = makeWorkspace();
    const when = new Date('2024-04-04T04:04:04Z');
    ws.write('a/x.csv', 'same');
    utimesSync(ws.path('a/x.csv'), when, when);
    mkdirSync(ws.path('b')); // a folder of `paths` that does not exist fails the listing, as `path` does
    const file = ws.pipeline(`name: all
source:
  local: { paths: [./a, ./b] }
sink:
  local: { path: ./out }
`);
    expect(await run(file)).toMatchObject({ ok: 1, skipped: 0 });
    // The same name, size and mtime in the second folder is another file, not "done before".
    ws.write('b/x.csv', 'SAME');
    utimesSync(ws.path('b/x.csv'), when, when);
    const second = await run(file);
    expect(second).toMatchObject({ ok: 1, skipped: 1 });
    expect(second.servedFrom).toEqual([{ source: 'local', root: './b', items: 1 }]);
    expect(ws.read('out/x.csv')).toBe('SAME');
    // One root served: no per-root line.
    expect(formatSummary(second)).not.toContain('served from');
  });

  it('match: all sending one relative path of two folders to one destination fails the second, keeping its source', async () => {
    ws = makeWorkspace();
    ws.write('a/x.csv', 'x from a');
    ws.write('b/x.csv', 'x from b');
    const file = ws.pipeline(`name: clash
source:
  local: { paths: [./a, ./b], after_success: delete }
sink:
  local: { path: ./out }
policy:
  concurrency: 1
`);
    // Two files, one destination in one pass: the second would replace the first copy while
    // the first source is deleted — the one-destination rule holds across roots too.
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 1, failed: 1 });
    expect(summary.failures[0].code).toBe('SLUICE_E_COLLISION');
    expect([...ws.files('a'), ...ws.files('b')]).toEqual(['x.csv']);
    expect(ws.read('out/x.csv')).toBe(ws.files('a').length === 0 ? 'x from a' : 'x from b');
  });

  it('looks for ready markers and companions in the item’s own folder, and tidies them there', async () => {
    ws = makeWorkspace();
    ws.write('a/x.csv', 'x in a');
    ws.write('b/x.csv.done', ''); // a marker for b's x.csv, not a's
    ws.write('b/y.csv', 'y in b');
    ws.write('b/y.csv.done', '');
    ws.write('b/y.csv.sha256', `${sha256('y in b')}  y.csv\n`);
    ws.write('a/y.csv.sha256', `${sha256('something else')}  y.csv\n`);
    ws.write('a/y.csv.done', '');
    const file = ws.pipeline(`name: companions
source:
  local:
    paths: [./a, ./b]
    ready: { marker: "{path}.done" }
    after_success: { move_to: ./done }
steps:
  - checksum: { algorithm: sha256, expect: companion }
sink:
  local: { path: ./out }
`);
    const summary = await run(file);
    expect(summary.failures).toEqual([]);
    expect(summary).toMatchObject({ ok: 1, failed: 0 });
    expect(ws.files('out')).toEqual(['y.csv']);
    // a/x.csv waits for its own marker; b's items went to done/ with their companions.
    expect(ws.files('a')).toEqual(['x.csv', 'y.csv.done', 'y.csv.sha256']);
    expect(ws.files('b')).toEqual(['x.csv.done']);
    expect(ws.files('done')).toEqual(['y.csv', 'y.csv.done', 'y.csv.sha256']);
    expect(readFileSync(ws.path('done/y.csv.sha256'), 'utf8')).toContain(sha256('y in b'));
  });

  it('rejects path with paths, match without paths, and watch with paths', async () => {
    ws = makeWorkspace();
    const cases: Array<[string, string]> = [
      ['{ path: ./a, paths: [./b] }', 'either `path` or `paths`'],
      ['{ path: ./a, match: first }', '`match` chooses among several folders'],
      ['{ paths: [./a, ./b], watch: true }', '`watch: true` reads one folder'],
      ['{ paths: [./a, ./a] }', 'listed twice'],
    ];
    for (const [source, message] of cases) {
      const file = ws.pipeline(`name: bad\nsource:\n  local: ${source}\nsink:\n  local: { path: ./out }\n`);
      await expect(loadPipeline(file, { registry: builtinRegistry() })).rejects.toThrow(message);
    }
  });
});
