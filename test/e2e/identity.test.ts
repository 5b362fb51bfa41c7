/**
 * `identity:` decides what "the same file" is (issue 17): `version` (default) redoes a touched
 * file, `name` skips a done path whatever its version, `content` skips the same bytes under
 * any name — after reading them, and without committing or tidying the duplicate.
 */
import { utimesSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-identity-');
afterAll(() => ws.cleanup());

/** What a partner's `touch *` does: same names, same bytes, new mtimes. */
function touchAll(folder: string, files: string[], secondsLater: number): void {
  const at = new Date(Date.now() + secondsLater * 1000);
  for (const f of files) utimesSync(ws.path(folder, f), at, at);
}

const pipeline = (name: string, identity: string | undefined, extra = '') =>
  ws.pipeline(
    `name: ${name}\n${identity ? `identity: ${identity}\n` : ''}source:\n  local: { path: ./${name}-in${extra} }\nsink:\n  local: { path: ./${name}-out, if_exists: overwrite }\n`,
    `${name}.yaml`,
  );

describe('identity', () => {
  it('version (default): a touched folder is delivered again', async () => {
    for (const f of ['a.csv', 'b.csv']) ws.write(`version-in/${f}`, `${f}\n`);
    const file = pipeline('version', undefined);
    expect(await runPipelineFile(file)).toMatchObject({ ok: 2 });
    touchAll('version-in', ['a.csv', 'b.csv'], 10);
    expect(await runPipelineFile(file)).toMatchObject({ ok: 2, skipped: 0 });
  });

  it('name: a touched folder is skipped; a new name is taken', async () => {
    for (const f of ['a.csv', 'b.csv']) ws.write(`name-in/${f}`, `${f}\n`);
    const file = pipeline('name', 'name');
    expect(await runPipelineFile(file)).toMatchObject({ ok: 2 });
    touchAll('name-in', ['a.csv', 'b.csv'], 10);
    ws.write('name-in/b.csv', 'b rewritten\n');
    ws.write('name-in/c.csv', 'c\n');
    expect(await runPipelineFile(file)).toMatchObject({ ok: 1, skipped: 2 });
    expect(ws.read('name-out/b.csv')).toBe('b.csv\n');
  });

  it('switching version → name on an existing ledger treats every done path as done', async () => {
    for (const f of ['a.csv', 'b.csv']) ws.write(`switch-in/${f}`, `${f}\n`);
    const file = pipeline('switch', undefined);
    expect(await runPipelineFile(file)).toMatchObject({ ok: 2 });
    touchAll('switch-in', ['a.csv'], 10);
    pipeline('switch', 'name');
    expect(await runPipelineFile(file)).toMatchObject({ ok: 0, skipped: 2 });
    // And back: each version's own record still counts.
    pipeline('switch', 'version');
    expect(await runPipelineFile(file)).toMatchObject({ ok: 1, skipped: 1 });
  });

  it('content: the same bytes under another name (or a touched name) are done once', async () => {
    ws.write('content-in/report.csv', 'same bytes\n');
    ws.write('content-in/other.csv', 'other bytes\n');
    const file = pipeline('content', 'content');
    expect(await runPipelineFile(file)).toMatchObject({ ok: 2 });
    ws.write('content-in/report-copy.csv', 'same bytes\n');
    touchAll('content-in', ['other.csv'], 10);
    expect(await runPipelineFile(file)).toMatchObject({ ok: 0, skipped: 3, failed: 0 });
    expect(ws.files('content-out')).toEqual(['other.csv', 'report.csv']);
    // The duplicate is recorded under its own version too: the next pass skips it unread.
    expect(await runPipelineFile(file)).toMatchObject({ ok: 0, skipped: 3 });
    ws.write('content-in/new.csv', 'new bytes\n');
    expect(await runPipelineFile(file)).toMatchObject({ ok: 1, skipped: 3 });
  });

  it('content: a duplicate is neither committed nor tidied at the source', async () => {
    ws.write('tidy-in/one.csv', 'twice\n');
    const file = ws.pipeline(
      'name: tidy\nidentity: content\nsource:\n  local: { path: ./tidy-in, after_success: delete }\nsink:\n  local: { path: ./tidy-out }\n',
      'tidy.yaml',
    );
    expect(await runPipelineFile(file)).toMatchObject({ ok: 1 });
    expect(ws.files('tidy-in')).toEqual([]);
    ws.write('tidy-in/two.csv', 'twice\n');
    expect(await runPipelineFile(file)).toMatchObject({ ok: 0, skipped: 1 });
    expect(ws.files('tidy-out')).toEqual(['one.csv']);
    expect(ws.files('tidy-in')).toEqual(['two.csv']);
  });
});
