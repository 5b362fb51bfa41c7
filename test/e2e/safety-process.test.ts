/**
 * Issue 11, process-level safety, with the real `sluice` binary:
 * - #7: two runs of one pipeline at once — the second is refused (SLUICE_E_LOCKED, exit 3) and
 *   nothing is delivered twice; a holder killed with SIGKILL leaves no stale lock; `watch` and
 *   `run` refuse two files declaring one pipeline name.
 * - #6: a sink inside (or equal to) a source is a validation error, for local and remote roots.
 * - #13: `plan` leaves the folder tree byte for byte as it was (no state folder, ledger, sink or
 *   dead-letter folder, log file); `sluice test` refuses input and expected paths that lead out of
 *   its temp folder, and writes nothing.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SLUICE_BIN, type SluiceProcess, startSluice, until } from '../helpers/sluice-process.js';
import { deliveredFiles, listFiles, makeWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
const procs: SluiceProcess[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.kill('SIGKILL');
      await p.exited;
    }
  }
  ws?.cleanup();
});

function sluice(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [SLUICE_BIN, ...args], {
    cwd: ws.dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function start(args: string[]): SluiceProcess {
  const p = startSluice(args, ws.dir);
  procs.push(p);
  return p;
}

/** Every entry under the workspace: type, size, mode, mtime and a hash of the bytes. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const abs = join(dir, name);
      const st = lstatSync(abs);
      const rel = relative(root, abs);
      if (st.isDirectory()) {
        out.push(`${rel}/ ${st.mode}`);
        walk(abs);
      } else {
        out.push(
          `${rel} ${st.size} ${st.mode} ${st.mtimeMs} ${createHash('sha256').update(readFileSync(abs)).digest('hex')}`,
        );
      }
    }
  };
  walk(root);
  return out;
}

const FILES = 400;
const slowPipeline = (extra = '') =>
  `name: overlap\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  local: { path: ./out, if_exists: rename }\npolicy:\n  concurrency: 2\n  rate_limit: { per_second: 150 }\n${extra}`;

describe('one process per pipeline and state folder (#7)', () => {
  it('a second run of a running pipeline is refused with SLUICE_E_LOCKED (exit 3) and nothing is delivered twice', async () => {
    ws = makeWorkspace('sluice-overlap-');
    for (let i = 0; i < FILES; i++) ws.write(`in/f${String(i).padStart(3, '0')}.txt`, `file ${i}\n`);
    ws.pipeline(slowPipeline(), 'overlap.yaml');
    const first = start(['run', 'overlap.yaml']);
    await until(
      () => deliveredFiles(ws.path('out')).length,
      (n) => n >= 10,
      20_000,
      'the first run to be under way',
    );

    const second = sluice(['run', 'overlap.yaml']);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain('SLUICE_E_LOCKED');
    expect(second.stderr).toContain('pipeline "overlap"');
    expect(second.stderr).toContain(ws.path('.sluice'));
    expect(second.stderr).toContain(`by pid ${first.child.pid} on `);
    expect(second.stderr).toContain('overlap.yaml');

    expect(await first.exited).toBe(0);
    const out = listFiles(ws.path('out'));
    expect(out).toHaveLength(FILES);
    expect(out.filter((f) => f.includes(' ('))).toEqual([]);
    expect(listFiles(ws.path('in'))).toEqual([]);
    // The lock is released with the run: the next one starts (and finds nothing to do).
    expect(sluice(['run', 'overlap.yaml']).code).toBe(0);
  });

  it('a run killed with SIGKILL leaves no stale lock: the next run takes over at once and delivers the rest once', async () => {
    ws = makeWorkspace('sluice-overlap-kill-');
    for (let i = 0; i < FILES; i++) ws.write(`in/f${String(i).padStart(3, '0')}.txt`, `file ${i}\n`);
    ws.pipeline(slowPipeline(), 'overlap.yaml');
    const first = start(['run', 'overlap.yaml']);
    await until(
      () => deliveredFiles(ws.path('out')).length,
      (n) => n >= 10,
      20_000,
      'the first run to be under way',
    );
    first.kill('SIGKILL');
    await first.exited;
    const next = sluice(['run', 'overlap.yaml']);
    expect(next.stderr).not.toContain('SLUICE_E_LOCKED');
    expect(next.code).toBe(0);
    expect(listFiles(ws.path('out'))).toHaveLength(FILES);
    expect(listFiles(ws.path('in'))).toEqual([]);
  });

  it('run refuses two files declaring one pipeline on one state folder; watch runs only one of them and names both', async () => {
    ws = makeWorkspace('sluice-same-name-');
    ws.write('in/a.txt', 'a');
    ws.pipeline(
      'name: same\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out-a }\n',
      'a.yaml',
    );
    ws.pipeline(
      'name: same\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out-b }\n',
      'b.yaml',
    );
    const run = sluice(['run', '.']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/a\.yaml and .*b\.yaml both declare pipeline "same" on state folder/);
    expect(listFiles(ws.path('out-a'))).toEqual([]);

    const watch = start(['watch', '.']);
    const refused = await watch.waitForLog(
      (l) =>
        l.msg === 'pipeline file refused: its pipeline runs elsewhere; the running version keeps running',
      20_000,
      'the second file refused',
    );
    expect(String(refused.err)).toMatch(
      /pipeline name "same" is already declared by .*[ab]\.yaml; .*[ab]\.yaml was not started/,
    );
    await until(
      () => [...listFiles(ws.path('out-a')), ...listFiles(ws.path('out-b'))],
      (f) => f.length === 1,
      20_000,
      'the running one to deliver',
    );
    watch.kill('SIGTERM');
    expect(await watch.exited).toBe(0);
    expect([...listFiles(ws.path('out-a')), ...listFiles(ws.path('out-b'))]).toEqual(['a.txt']);
  });
  it('watch refuses a reload that takes the name another file runs under; the running version keeps running', async () => {
    ws = makeWorkspace('sluice-rename-clash-');
    ws.write('in-1/.keep', ''); // the source folders exist: the start check would refuse them
    ws.write('in-2/.keep', '');
    ws.pipeline(
      'name: one\ntrigger: { every: 200ms }\nsource:\n  local: { path: ./in-1, exclude: [".keep"] }\nsink:\n  local: { path: ./out-1 }\n',
      'one.yaml',
    );
    const two = (name: string) =>
      `name: ${name}\ntrigger: { every: 200ms }\nsource:\n  local: { path: ./in-2, exclude: [".keep"] }\nsink:\n  local: { path: ./out-2 }\n`;
    ws.pipeline(two('two'), 'two.yaml');
    const watch = start(['watch', '.', '--debounce', '50']);
    await watch.waitForLog(
      (l) => l.msg === 'pipeline loaded' && l.pipeline === 'two',
      20_000,
      'two.yaml to start',
    );
    await watch.waitForLog(
      (l) => l.msg === 'pipeline loaded' && l.pipeline === 'one',
      20_000,
      'one.yaml to start',
    );
    ws.pipeline(two('one'), 'two.yaml');
    const refused = await watch.waitForLog(
      (l) =>
        l.msg === 'pipeline file refused: its pipeline runs elsewhere; the running version keeps running',
      20_000,
      'the clashing reload refused',
    );
    expect(String(refused.err)).toMatch(
      /pipeline name "one" is already declared by .*one\.yaml; .*two\.yaml was not started/,
    );
    ws.write('in-2/x.txt', 'x');
    await until(
      () => listFiles(ws.path('out-2')),
      // only x.txt: .keep is excluded, so a .keep delivered early cannot pass this on its own
      (f) => f.length === 1 && f[0] === 'x.txt',
      20_000,
      'the running version of two.yaml to go on',
    );
    watch.kill('SIGTERM');
    expect(await watch.exited).toBe(0);
  });
});

describe('sinks never write where a source lists (#6)', () => {
  it('validate rejects a local sink inside or equal to the source, at the sink, naming both roots', () => {
    ws = makeWorkspace('sluice-overlap-validate-');
    ws.pipeline(
      'name: inside\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  local:\n    path: ./in/processed\n',
      'inside.yaml',
    );
    ws.pipeline(
      'name: same\nsource:\n  local: { path: ./data }\nsink:\n  local: { path: ./data/ }\n',
      'same.yaml',
    );
    const inside = sluice(['validate', 'inside.yaml']);
    expect(inside.code).toBe(2);
    expect(inside.stderr).toMatch(
      new RegExp(
        `^inside\\.yaml:6:11: \\[sink\\.local\\] .*writes under ${ws.path('in', 'processed')}, which is inside ${ws.path('in')}, the root of source\\.local`,
      ),
    );
    const same = sluice(['validate', 'same.yaml']);
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/^same\.yaml:5:18: .*which is the root of source\.local/);
    // run refuses it too: nothing is read, written or deleted.
    ws.write('in/a.txt', 'a');
    expect(sluice(['run', 'inside.yaml']).code).toBe(2);
    expect(listFiles(ws.path('in'))).toEqual(['a.txt']);
  });

  it('validate rejects sftp and s3 sinks inside their source on the same server, and accepts another login or bucket', () => {
    ws = makeWorkspace('sluice-overlap-remote-');
    const sftp = (user: string) =>
      `host: 127.0.0.1\n    port: 2222\n    username: ${user}\n    password: pw\n    insecure_accept_any_host_key: true`;
    ws.pipeline(
      `name: sftp\nsource:\n  sftp:\n    ${sftp('acme')}\n    path: /upload\nsink:\n  sftp:\n    ${sftp('acme')}\n    path: /upload/done\n`,
      'sftp.yaml',
    );
    ws.pipeline(
      `name: sftp2\nsource:\n  sftp:\n    ${sftp('acme')}\n    path: /upload\nsink:\n  sftp:\n    ${sftp('other')}\n    path: /upload/done\n`,
      'sftp2.yaml',
    );
    const s3 = (bucket: string) =>
      `bucket: ${bucket}\n    endpoint: http://127.0.0.1:4569\n    access_key_id: k\n    secret_access_key: s`;
    ws.pipeline(
      `name: s3\nsource:\n  s3:\n    ${s3('data')}\n    prefix: landing/\nsink:\n  s3:\n    ${s3('data')}\n    prefix: landing/sorted/\n`,
      's3.yaml',
    );
    ws.pipeline(
      `name: s32\nsource:\n  s3:\n    ${s3('data')}\n    prefix: landing/\nsink:\n  s3:\n    ${s3('archive')}\n    prefix: landing/sorted/\n`,
      's32.yaml',
    );
    const bad = sluice(['validate', 'sftp.yaml', 's3.yaml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /^sftp\.yaml:17:11: \[sink\.sftp\] .*writes under sftp:\/\/acme@127\.0\.0\.1:2222\/upload\/done, which is inside sftp:\/\/acme@127\.0\.0\.1:2222\/upload, the root of source\.sftp/m,
    );
    expect(bad.stderr).toMatch(
      /^s3\.yaml:15:13: \[sink\.s3\] .*writes under s3:\/\/data\/landing\/sorted, which is inside s3:\/\/data\/landing, the root of source\.s3/m,
    );
    const good = sluice(['validate', 'sftp2.yaml', 's32.yaml']);
    expect(good.stderr).toBe('');
    expect(good.code).toBe(0);
  });
});

describe('writes where nothing should be written (#13)', () => {
  const pipeline =
    'name: planned\nsource:\n  local: { path: ./in }\nsteps:\n  - rename: { to: "sorted/{name}" }\nsink:\n  local: { path: ./out }\non_error:\n  local: { path: ./failed }\n';

  it('plan leaves the folder tree byte for byte as it was — before any run, and beside a ledger', () => {
    ws = makeWorkspace('sluice-plan-');
    ws.write('in/a.csv', 'a,b\n');
    ws.write('in/sub/b.csv', 'c,d\n');
    ws.pipeline(pipeline, 'planned.yaml');
    // A defaults file asking for a log file: that is for runs, not for plan.
    ws.write('sluice.config.yaml', 'log_file: ./logs/sluice.log\n');
    const before = snapshot(ws.dir);
    const plan = sluice(['plan', 'planned.yaml']);
    expect(plan.stderr).toBe('');
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain('local:a.csv → sorted/a.csv');
    expect(snapshot(ws.dir)).toEqual(before);

    // After a real run the ledger exists (closed): plan reads it and changes nothing, not even -wal/-shm.
    ws.write('sluice.config.yaml', '');
    expect(sluice(['run', 'planned.yaml']).code).toBe(0);
    ws.write('in/c.csv', 'e,f\n');
    const afterRun = snapshot(ws.dir);
    const again = sluice(['plan', 'planned.yaml']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('local:a.csv — skip: done before');
    expect(again.stdout).toContain('local:c.csv → sorted/c.csv');
    expect(snapshot(ws.dir)).toEqual(afterRun);
    // history only reads too.
    expect(sluice(['history', 'planned.yaml']).code).toBe(0);
    expect(snapshot(ws.dir)).toEqual(afterRun);
  });

  it('sluice test refuses an input or expected path leading out of its temp folder, at file:line:col, and writes nothing', () => {
    ws = makeWorkspace('sluice-test-escape-');
    ws.pipeline('name: t\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n', 't.yaml');
    ws.write('tmp/.keep', '');
    ws.write(
      't.test.yaml',
      'tests:\n  - name: escapes\n    inputs:\n      - path: ../../../../escaped.txt\n        content: "x"\n    expect:\n      files:\n        - path: escaped.txt\n',
    );
    const before = snapshot(ws.dir);
    // The temp folder is inside the workspace, so anything written outside it would show.
    const input = sluice(['test', 't.yaml'], { TMPDIR: ws.path('tmp') });
    expect(input.code).toBe(2);
    expect(input.stderr).toMatch(
      /^t\.test\.yaml:4:15: tests\.0\.inputs\.0\.path: input path "\.\.\/\.\.\/\.\.\/\.\.\/escaped\.txt" is not a relative path to a file inside the test's folder/,
    );
    expect(snapshot(ws.dir)).toEqual(before);

    ws.write(
      't.test.yaml',
      'tests:\n  - name: peeks\n    inputs:\n      - path: a.txt\n        content: "x"\n    expect:\n      files:\n        - path: /etc/hostname\n',
    );
    const expected = sluice(['test', 't.yaml'], { TMPDIR: ws.path('tmp') });
    expect(expected.code).toBe(2);
    expect(expected.stderr).toMatch(
      /^t\.test\.yaml:8:17: tests\.0\.expect\.files\.0\.path: expected path "\/etc\/hostname" is not a relative path/,
    );
  });
});
