/**
 * bin/sluice.js turns on Node's compile cache (Node 22.1+) in the user's cache folder, and a
 * cache folder that cannot be used never fails or slows the CLI into a hang. On a Node without
 * `module.enableCompileCache` (20) the CLI writes no cache at all. Timings are measured by
 * bench/startup.mjs, never here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import module from 'node:module';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeWorkspace } from '../helpers/workspace.js';

const root = join(import.meta.dirname, '..', '..');
const ws = makeWorkspace('sluice-perf-startup-');
afterAll(() => ws.cleanup());
const hasCompileCache = typeof (module as { enableCompileCache?: unknown }).enableCompileCache === 'function';

ws.write('in/.keep', '');
ws.write('home/.keep', '');
const pipeline = ws.pipeline(
  'name: start\nsource:\n  local: { path: ./in }\nsteps:\n  - filter: { include: "*.csv" }\nsink:\n  local: { path: ./out }\n',
);

function validate(env: Record<string, string>) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'sluice.js'), 'validate', pipeline], {
    cwd: ws.dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: ws.path('home'), ...env },
    timeout: 30_000,
  });
  expect(r.error).toBeUndefined(); // a hang is killed by the timeout and reported here
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/^ok {2}/);
  expect(r.status).toBe(0);
}

/** The files Node wrote under a compile-cache folder (one sub-folder per Node version). */
function cacheEntries(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);
}

describe('CLI compile cache', () => {
  it(`is kept under $XDG_CACHE_HOME/sluice/compile-cache ${hasCompileCache ? '(this Node has one)' : '(not on this Node: nothing written)'}`, () => {
    const cache = ws.path('xdg');
    validate({ XDG_CACHE_HOME: cache });
    const entries = cacheEntries(join(cache, 'sluice', 'compile-cache'));
    if (hasCompileCache) expect(entries.length).toBeGreaterThan(0);
    else expect(existsSync(cache)).toBe(false);
    validate({ XDG_CACHE_HOME: cache }); // and the second start reads it
  });

  it('falls back to ~/.cache when XDG_CACHE_HOME is unset or relative', () => {
    validate({ XDG_CACHE_HOME: 'relative/cache' });
    expect(existsSync(ws.path('relative'))).toBe(false);
    expect(cacheEntries(ws.path('home', '.cache', 'sluice', 'compile-cache')).length > 0).toBe(
      hasCompileCache,
    );
  });

  it('runs without a cache where the folder cannot be made (a file in the way, a missing parent, /proc)', () => {
    const file = ws.write('not-a-folder', 'x');
    validate({ XDG_CACHE_HOME: file });
    validate({ XDG_CACHE_HOME: ws.path('missing', 'deep', 'cache') });
    expect(existsSync(ws.path('missing'))).toBe(false);
    // mkdir answers ENOENT under an existing folder here: Node's recursive mkdir spins forever.
    validate({ XDG_CACHE_HOME: '/proc/self' });
  });

  it('is off with NODE_DISABLE_COMPILE_CACHE=1', () => {
    const cache = ws.path('disabled');
    validate({ XDG_CACHE_HOME: cache, NODE_DISABLE_COMPILE_CACHE: '1' });
    expect(existsSync(cache)).toBe(false);
  });
});
