/**
 * Ready markers, stable files and uploaders' temporary names (issue 17, item 3): a file waits
 * for its `.done` (or its folder's `_SUCCESS`), a per-file marker is tidied with its file, a
 * folder marker stays; `*.part` and friends are never taken; on SFTP (real sshd) a file still
 * growing is left for a later pass with `stable`.
 */
import { appendFileSync, chownSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { listFiles, makeWorkspace } from '../helpers/workspace.js';
import { type SshdHandle, startSshd } from '../servers/sshd.js';

const ws = makeWorkspace('sluice-ready-');
afterAll(() => ws.cleanup());

const localPipeline = (dir: string, source: string) =>
  ws.pipeline(
    `name: ${dir}\nsource:\n  local: { path: ./in, ${source} }\nsink:\n  local: { path: ./out }\n`,
    `${dir}/pipeline.yaml`,
  );

describe('ready markers on a local source', () => {
  it('holds a file back until its .done appears, then delivers it and deletes both', async () => {
    ws.write('done/in/a.csv', 'a\n');
    ws.write('done/in/a.csv.done', '');
    ws.write('done/in/sub/b.csv', 'b\n');
    const file = localPipeline('done', 'ready: { marker: "{path}.done" }, after_success: delete');

    const first = await runPipelineFile(file);
    expect(first).toMatchObject({ ok: 1, failed: 0, filtered: 1 });
    expect(listFiles(ws.path('done/out'))).toEqual(['a.csv']);
    expect(listFiles(ws.path('done/in'))).toEqual(['sub/b.csv']);

    ws.write('done/in/sub/b.csv.done', '');
    const second = await runPipelineFile(file);
    expect(second).toMatchObject({ ok: 1, failed: 0 });
    expect(listFiles(ws.path('done/out'))).toEqual(['a.csv', 'sub/b.csv']);
    expect(listFiles(ws.path('done/in'))).toEqual([]);
  });

  it('moves a per-file marker with its file (move_to)', async () => {
    ws.write('mv/in/a.csv', 'a\n');
    ws.write('mv/in/a.csv.ok', '');
    const file = localPipeline('mv', 'ready: { marker: "{name}.ok" }, after_success: { move_to: ./moved }');
    expect(await runPipelineFile(file)).toMatchObject({ ok: 1 });
    expect(listFiles(ws.path('mv/moved'))).toEqual(['a.csv', 'a.csv.ok']);
  });

  it('waits for a folder marker and leaves it in place for the other files of the folder', async () => {
    ws.write('folder/in/day1/x.csv', 'x\n');
    ws.write('folder/in/day1/y.csv', 'y\n');
    ws.write('folder/in/day1/_SUCCESS', '');
    ws.write('folder/in/day2/z.csv', 'z\n');
    const file = localPipeline('folder', 'ready: { marker: "{dir}/_SUCCESS" }, after_success: delete');
    expect(await runPipelineFile(file)).toMatchObject({ ok: 2, failed: 0, filtered: 1 });
    expect(listFiles(ws.path('folder/out'))).toEqual(['day1/x.csv', 'day1/y.csv']);
    expect(listFiles(ws.path('folder/in'))).toEqual(['day1/_SUCCESS', 'day2/z.csv']);
  });
});

describe('temporary names', () => {
  it('never takes *.part, *.filepart, *.tmp, .~* or *.crdownload, unless told', async () => {
    for (const name of ['a.csv', 'b.csv.part', 'c.filepart', 'd.tmp', '.~lock.e#', 'f.crdownload'])
      ws.write(`tmp/in/${name}`, `${name}\n`);
    const byDefault = localPipeline('tmp', 'after_success: keep');
    expect(await runPipelineFile(byDefault)).toMatchObject({ ok: 1, failed: 0 });
    expect(listFiles(ws.path('tmp/out'))).toEqual(['a.csv']);

    ws.write('tmp2/in/b.csv.part', 'b\n');
    ws.write('tmp2/in/c.upload', 'c\n');
    const own = localPipeline('tmp2', 'skip_temporary: ["*.upload"]');
    expect(await runPipelineFile(own)).toMatchObject({ ok: 1 });
    expect(listFiles(ws.path('tmp2/out'))).toEqual(['b.csv.part']);
  });
});

describe('sftp source (sshd)', () => {
  let sshd: SshdHandle;
  let owner: { uid: number; gid: number };

  /** Writes `files` into `dir` on the server, owned by its user. */
  const put = (dir: string, files: Record<string, string>) => {
    for (const [name, body] of Object.entries(files)) {
      const abs = join(sshd.rootDir, dir, name);
      mkdirSync(join(abs, '..'), { recursive: true });
      chownSync(join(abs, '..'), owner.uid, owner.gid);
      writeFileSync(abs, body);
      chownSync(abs, owner.uid, owner.gid);
    }
  };
  const sftpPipeline = (name: string, dir: string, extra: string[]) =>
    ws.pipeline(
      [
        `name: ${name}`,
        'source:',
        '  sftp:',
        ...sshd.sftpYaml(),
        `    path: "${join(sshd.rootDir, dir)}"`,
        ...extra.map((l) => `    ${l}`),
        'sink:',
        `  local: { path: ./${name}-out }`,
        '',
      ].join('\n'),
      `${name}.yaml`,
    );

  beforeAll(async () => {
    sshd = await startSshd('sluice-ready');
    const { statSync } = await import('node:fs');
    const st = statSync(sshd.rootDir);
    owner = { uid: st.uid, gid: st.gid };
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  it('holds a file back until its .done appears, then deletes both', async () => {
    put('done', { 'a.csv': 'a\n', 'b.csv': 'b\n', 'b.csv.done': '', 'c.csv.part': 'c' });
    const file = sftpPipeline('sftp-done', 'done', [
      'ready: { marker: "{path}.done" }',
      'after_success: delete',
    ]);
    expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 0, filtered: 1 });
    expect(listFiles(ws.path('sftp-done-out'))).toEqual(['b.csv']);
    expect(readdirSync(join(sshd.rootDir, 'done')).sort()).toEqual(['a.csv', 'c.csv.part']);

    put('done', { 'a.csv.done': '' });
    expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 0 });
    expect(listFiles(ws.path('sftp-done-out'))).toEqual(['a.csv', 'b.csv']);
    expect(readdirSync(join(sshd.rootDir, 'done'))).toEqual(['c.csv.part']);
  });

  it('stable: leaves a file that is still growing, takes it once it holds still', async () => {
    put('grow', { 'still.csv': 'still\n', 'growing.csv': 'start\n' });
    const file = sftpPipeline('sftp-grow', 'grow', ['stable: 1s']);
    const growing = join(sshd.rootDir, 'grow', 'growing.csv');
    const writer = setInterval(() => appendFileSync(growing, 'more\n'), 100);
    let first: Awaited<ReturnType<typeof runPipelineFile>>;
    try {
      first = await runPipelineFile(file);
    } finally {
      clearInterval(writer);
    }
    expect(first).toMatchObject({ ok: 1, failed: 0, filtered: 1 });
    expect(listFiles(ws.path('sftp-grow-out'))).toEqual(['still.csv']);

    expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 0, skipped: 1 });
    expect(listFiles(ws.path('sftp-grow-out'))).toEqual(['growing.csv', 'still.csv']);
  });
});
