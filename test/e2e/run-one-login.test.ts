/**
 * The start check's plugin instances are the run's (issue 16): one `sluice run` of an SFTP
 * source logs in once on a real sshd (it logged in twice: the check's instance, then the run's),
 * and a scheduled run over several passes and `sluice watch` with a reload still close each
 * instance once, at the end of its version (counted by a test sink's closes.log).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listTree, writeTree } from '../helpers/remote-fs-fixtures.js';
import { killSluice, type SluiceProcess, startSluice } from '../helpers/sluice-process.js';
import { runCli } from '../helpers/workflows.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { type SshdHandle, startSshd } from '../servers/sshd.js';

const PLUGINS = join(import.meta.dirname, '..', 'helpers', 'check-plugins.mjs');
let sshd: SshdHandle;
let uid: number;
let gid: number;
let ws: Workspace | undefined;
let proc: SluiceProcess | undefined;

beforeAll(async () => {
  sshd = await startSshd();
  uid = Number(execFileSync('id', ['-u', sshd.username]).toString());
  gid = Number(execFileSync('id', ['-g', sshd.username]).toString());
}, 60_000);

afterAll(async () => {
  await sshd?.stop();
});

afterEach(async () => {
  await killSluice(proc);
  proc = undefined;
  ws?.cleanup();
  ws = undefined;
});

/** SSH logins the server accepted so far (one `Accepted …` line each). */
const logins = () =>
  readFileSync(sshd.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Accepted ')).length;

/** A folder of the server with these files, owned by its user. */
function remoteFolder(name: string, files: string[]): string {
  const dir = join(sshd.rootDir, name);
  writeTree(dir, Object.fromEntries(files.map((f) => [f, Buffer.from(`bytes of ${f}\n`)])), uid, gid);
  return dir;
}

function sftpSource(dir: string): string[] {
  // One pooled session: what a run opens beyond the check's login is counted, not raced for.
  return ['source:', '  sftp:', ...sshd.sftpYaml(), `    path: ${dir}`, '    max_connections: 1'];
}

/**
 * One thread, whatever the suite forces: a thread pool gives each thread its own instances (and
 * logins), which is not what is counted here.
 */
const ONE_THREAD = { SLUICE_THREADS: '1' };

const passesFinished = (p: SluiceProcess) => p.logs.filter((l) => l.msg === 'pass finished').length;

async function passes(p: SluiceProcess, n: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (passesFinished(p) < n) {
    if (Date.now() > deadline || p.child.exitCode !== null)
      throw new Error(`${passesFinished(p)} of ${n} passes; stderr:\n${p.stderr().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const closes = (w: Workspace, folder: string) =>
  existsSync(w.path(folder, 'closes.log'))
    ? readFileSync(w.path(folder, 'closes.log'), 'utf8').split('\n').filter(Boolean).length
    : 0;

describe('the start check and the run share their plugin instances', () => {
  it('one sluice run of an SFTP source logs in once', async () => {
    const dir = remoteFolder('once', ['a.csv', 'b.csv', 'c.csv']);
    const w = makeWorkspace('sluice-one-login-');
    ws = w;
    w.pipeline(
      ['name: once', ...sftpSource(dir), 'sink:', '  local: { path: ./out }', ''].join('\n'),
      'once.yaml',
    );
    const before = logins();
    const r = await runCli(['run', 'once.yaml', '--log-format', 'json'], w.dir, ONE_THREAD);
    expect(r.code, r.stderr).toBe(0);
    expect(w.files('out')).toEqual(['a.csv', 'b.csv', 'c.csv']);
    // The check logged in, and the run used that login: one, where there were two.
    expect(logins() - before).toBe(1);
    // The check's temp folder went with the instance: nothing is left under the state folder.
    expect(existsSync(w.path('.sluice', 'tmp')) ? w.files('.sluice/tmp') : []).toEqual([]);
  });

  it('a scheduled run keeps the one login over several passes and closes each instance once, at the end', async () => {
    const dir = remoteFolder('scheduled', ['a.csv']);
    const w = makeWorkspace('sluice-one-login-');
    ws = w;
    w.pipeline(
      [
        'name: scheduled',
        `plugins: ["${PLUGINS}"]`,
        'trigger: { every: 1s }',
        ...sftpSource(dir),
        'sink:',
        '  probe_sink: { path: ./sched/out, create_ms: 1 }',
        '',
      ].join('\n'),
      'scheduled.yaml',
    );
    const before = logins();
    proc = startSluice(['run', 'scheduled.yaml', '--log-format', 'json'], w.dir, ONE_THREAD);
    await passes(proc, 2);
    // A file that arrives between passes is taken by a later one, through the same instances.
    writeTree(dir, { 'b.csv': Buffer.from('bytes of b.csv\n') }, uid, gid);
    await passes(proc, 4);
    expect(closes(w, 'sched')).toBe(0);
    proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    expect(listTree(w.path('sched/out'))).toEqual(['a.csv', 'b.csv']);
    expect(logins() - before).toBe(1);
    // The sink the check made is the run's: closed once, when the run ended.
    expect(closes(w, 'sched')).toBe(1);
  });

  it('sluice watch: each version (the first, then the reloaded one) logs in once and is closed once', async () => {
    const dir = remoteFolder('watched', ['a.csv']);
    const w = makeWorkspace('sluice-one-login-');
    ws = w;
    const text = (version: number) =>
      [
        'name: watched',
        `description: version ${version}`,
        `plugins: ["${PLUGINS}"]`,
        'trigger: { every: 1s }',
        ...sftpSource(dir),
        'sink:',
        '  probe_sink: { path: ./watched/out, create_ms: 1 }',
        '',
      ].join('\n');
    w.pipeline(text(1), 'watched.yaml');
    const before = logins();
    proc = startSluice(
      ['watch', 'watched.yaml', '--log-format', 'json', '--debounce', '50'],
      w.dir,
      ONE_THREAD,
    );
    await passes(proc, 2);
    expect(logins() - before).toBe(1);
    writeFileSync(w.path('watched.yaml'), text(2));
    await proc.waitForLog((l) => l.msg === 'pipeline reloaded', 20_000, 'the reload');
    const after = passesFinished(proc);
    await passes(proc, after + 2);
    // The old version's instances were closed as it retired; the new one's are open.
    expect(closes(w, 'watched')).toBe(1);
    proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    expect(listTree(w.path('watched/out'))).toEqual(['a.csv']);
    expect(logins() - before).toBe(2);
    expect(closes(w, 'watched')).toBe(2);
  });
});
