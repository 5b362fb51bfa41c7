/** Regression: `run --cluster` / `worker` against a Redis that never answers used to wait forever. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeWorkspace } from '../helpers/workspace.js';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'sluice.js');
const ws = makeWorkspace('sluice-cluster-down-');
afterAll(() => ws.cleanup());

describe('cluster mode without a reachable Redis', () => {
  for (const command of ['run', 'worker']) {
    it(`${command} exits 2 with a clear message and no password`, () => {
      ws.write('in/a.txt', 'a');
      ws.pipeline(
        'name: down\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\n',
        'down.yaml',
      );
      const started = Date.now();
      const r = spawnSync(
        process.execPath,
        [bin, command, '--cluster', 'redis://:S3cret-Pass@127.0.0.1:1', 'down.yaml'],
        {
          cwd: ws.dir,
          encoding: 'utf8',
          env: { ...process.env, SLUICE_CLUSTER_CONNECT_MS: '1500' },
          timeout: 30_000,
        },
      );
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/cannot reach Redis at redis:\/\/.*127\.0\.0\.1:1 within 2s/);
      expect(r.stderr + r.stdout).not.toContain('S3cret-Pass');
      expect(Date.now() - started).toBeLessThan(20_000);
    });
  }
});
