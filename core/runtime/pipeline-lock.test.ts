/**
 * One process per pipeline and state folder (issue 11, #7): the lock refuses a second holder —
 * in this process naming the other file, in another process naming its pid and host — and a
 * holder that dies (SIGKILL) leaves nothing to wait for.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PipelineLock } from './pipeline-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-lock-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const locked = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected SLUICE_E_LOCKED');
    },
    (err: { code?: string; toUserString(): string }) => {
      expect(err.code).toBe('SLUICE_E_LOCKED');
      return err.toUserString();
    },
  );

describe('PipelineLock', () => {
  it('refuses a second holder in this process, naming the file that holds it; one spelling of the folder or another', async () => {
    const stateDir = join(dir, 'state-a');
    const lock = await PipelineLock.acquire({ name: 'p', stateDir, file: '/x/first.yaml' });
    symlinkSync(stateDir, join(dir, 'state-a-link'));
    expect(
      await locked(
        PipelineLock.acquire({ name: 'p', stateDir: join(dir, 'state-a-link'), file: '/x/second.yaml' }),
      ),
    ).toMatch(
      /pipeline "p" is locked \(SLUICE_E_LOCKED\): .*state-a-link by \/x\/first\.yaml in this process; \/x\/second\.yaml was not run/,
    );
    // Another pipeline name on the same folder is another lock.
    const other = await PipelineLock.acquire({ name: 'q', stateDir, file: '/x/q.yaml' });
    other.release();
    lock.release();
    (await PipelineLock.acquire({ name: 'p', stateDir, file: '/x/second.yaml' })).release();
  });

  it('refuses while another process holds it (pid and host named), and is free as soon as that process is killed', async () => {
    const stateDir = join(dir, 'state-b');
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    // Makes the folders; the child then takes the lock as the module does (an exclusive SQLite
    // transaction on the lock file), writes its note and waits to be killed.
    (await PipelineLock.acquire({ name: 'p', stateDir, file: '/x/holder.yaml' })).release();
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const D = require(${JSON.stringify(sqlite)}); const fs = require('fs');
         const db = new D(${JSON.stringify(join(stateDir, 'locks', 'p.lock'))}); db.pragma('busy_timeout = 0'); db.pragma('journal_mode = MEMORY'); db.exec('BEGIN EXCLUSIVE');
         fs.writeFileSync(${JSON.stringify(join(stateDir, 'locks', 'p.holder.json'))}, JSON.stringify({ pid: process.pid, host: require('os').hostname(), file: '/x/holder.yaml', since: 'then' }));
         process.stdout.write('held\\n'); setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    expect(await locked(PipelineLock.acquire({ name: 'p', stateDir, file: '/x/second.yaml' }))).toContain(
      `by pid ${child.pid} on ${hostname()} (/x/holder.yaml, since then)`,
    );
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const lock = await PipelineLock.acquire({ name: 'p', stateDir, file: '/x/second.yaml' });
    lock.release();
  });
});
