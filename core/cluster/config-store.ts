/**
 * Pipeline versions published in Redis. The lister stores the pipeline file's text under its
 * hash; a worker meeting a job of a version it has not loaded fetches that text and loads it
 * against its own copy of the file's folder (relative paths, `.env`, environment variables
 * resolve on the worker: the text in Redis holds `${VAR}` placeholders, not their values).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { PipelineDefinition } from '../config/load.js';
import { SluiceError } from '../errors.js';
import { pipelineKey } from './connection.js';

/** Published versions outlive any job that may still reference them (jobs are kept ≤ 7 days). */
const CONFIG_TTL_SECONDS = 30 * 24 * 3600;

export function configKey(pipeline: string, hash: string): string {
  return pipelineKey(pipeline, 'config', hash);
}

function textHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** Publishes the exact text `def` was loaded from. */
export async function publishPipeline(redis: Redis, def: PipelineDefinition): Promise<void> {
  const text = readFileSync(def.file, 'utf8');
  if (textHash(text) !== def.hash) {
    throw new SluiceError('SLUICE_E_CONFIG', `${def.file} changed while it was being loaded; run again`);
  }
  await redis.set(configKey(def.name, def.hash), text, 'EX', CONFIG_TTL_SECONDS);
}

export async function fetchPipelineText(redis: Redis, pipeline: string, hash: string): Promise<string | null> {
  return redis.get(configKey(pipeline, hash));
}
