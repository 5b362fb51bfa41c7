/**
 * What every scale-out test file sets up: a real redis-server, a workspace, and `sluice`
 * processes that are all killed (and Redis stopped, the workspace removed) after the file.
 */
import { afterAll, beforeAll } from 'vitest';
import { type RedisHandle, startRedis } from '../servers/redis.js';
import { clusterEnv, type SluiceProcess, spawnSluice } from './cluster.js';
import { makeWorkspace, type Workspace } from './workspace.js';

export interface ClusterSuite {
  readonly ws: Workspace;
  /** Available once the file's beforeAll ran. */
  readonly redis: RedisHandle;
  /** Spawns `sluice` in the workspace with the fast cluster timings (plus `extraEnv`), killed after the file. */
  start(args: string[], extraEnv?: Record<string, string>): SluiceProcess;
}

export function clusterSuite(
  prefix: string,
  options: { persistent?: boolean; env?: () => Record<string, string> } = {},
): ClusterSuite {
  const ws = makeWorkspace(prefix);
  const processes: SluiceProcess[] = [];
  let redis: RedisHandle | undefined;
  beforeAll(async () => {
    redis = await startRedis({ persistent: options.persistent });
  });
  afterAll(async () => {
    await Promise.allSettled(processes.map((p) => p.kill()));
    await redis?.stop();
    ws.cleanup();
  });
  return {
    ws,
    get redis() {
      if (!redis) throw new Error('redis is started in beforeAll');
      return redis;
    },
    start(args, extraEnv = {}) {
      const p = spawnSluice(args, ws.dir, clusterEnv({ ...options.env?.(), ...extraEnv }));
      processes.push(p);
      return p;
    },
  };
}
