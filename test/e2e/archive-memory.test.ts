/** decompress streams: gunzipping a ~300 MB file must not grow the process by the file's size. */
import { execSync } from 'node:child_process';
import { createReadStream, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createItem } from '../../core/item.js';
import type { Item } from '../../core/plugin-api.js';
import { hashStream } from '../../core/streams.js';
import { decompressPlugin } from '../../plugins/archive/decompress.js';
import { makePluginContext, makeStepContext } from '../helpers/context.js';

const MIB = 1024 * 1024;
let work: string;
let gz: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'sluice-archive-memory-'));
  gz = join(work, 'numbers.csv.gz');
  // 34 million lines of digits: ~295 MB of text.
  execSync(`seq 1 34000000 | pigz -1 > ${gz}`);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

it('gunzips ~300 MB with bounded memory', async () => {
  const step = await decompressPlugin.create({}, makePluginContext());
  const item = createItem({
    source: 'test',
    path: 'numbers.csv.gz',
    size: statSync(gz).size,
    open: async () => createReadStream(gz),
  });
  const out = (await step.process(item, makeStepContext())) as Item;
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const { size } = await hashStream(await out.open()).finally(() => clearInterval(sampler));
  peak = Math.max(peak, process.memoryUsage().rss);
  const growthMiB = (peak - before) / MIB;
  expect(size).toBeGreaterThan(290_000_000);
  expect(growthMiB).toBeLessThan(100);
});
