/**
 * Pipeline versions published in Redis. The lister stores the pipeline file's text under its
 * hash; a worker meeting a job of a version it has not loaded fetches that text and loads it
 * against its own copy of the file's folder (relative paths, `.env`, environment variables
 * resolve on the worker: the text in Redis holds `${VAR}` placeholders, not their values).
 */
import type { Redis } from 'ioredis';
import type { PipelineDefinition } from '../config/load.js';
import { pipelineKey } from './connection.js';

/** Published versions outlive any job that may still reference them (jobs are kept ≤ 7 days). */
const CONFIG_TTL_SECONDS = 30 * 24 * 3600;

export function configKey(pipeline: string, hash: string): string {
  return pipelineKey(pipeline, 'config', hash);
}

/** Publishes the exact text `def` was loaded from (the file may have changed since). */
export async function publishPipeline(redis: Redis, def: PipelineDefinition): Promise<void> {
  await redis.set(configKey(def.name, def.hash), def.text, 'EX', CONFIG_TTL_SECONDS);
}

export async function fetchPipelineText(
  redis: Redis,
  pipeline: string,
  hash: string,
): Promise<string | null> {
  return redis.get(configKey(pipeline, hash));
}
