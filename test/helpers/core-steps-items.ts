/** Items and error capture for unit tests of the core item steps. */
import { Readable } from 'node:stream';
import { createItem, deriveItem } from '../../core/item.js';
import type { Item, StepInstance, StepOutput } from '../../core/plugin-api.js';
import { makeStepContext } from './context.js';

export interface TestItemFields {
  source?: string;
  size?: number;
  mtime?: Date;
  date?: Date;
  meta?: Record<string, unknown>;
  checksums?: Record<string, string>;
}

export function testItem(path: string, fields: TestItemFields = {}): Item {
  const item = createItem({
    source: fields.source ?? 'test_source',
    path,
    size: fields.size,
    mtime: fields.mtime,
    meta: fields.meta,
    checksums: fields.checksums,
    open: async () => Readable.from([Buffer.from('bytes')]),
  });
  return fields.date ? deriveItem(item, { date: fields.date }) : item;
}

/** Runs a step on one item and returns its single output item (or null when dropped). */
export async function runStep(step: StepInstance, item: Item): Promise<Item | null> {
  const output: StepOutput = await step.process(item, makeStepContext());
  if (output !== null && (Array.isArray(output) || Symbol.asyncIterator in output)) {
    throw new Error('expected a single item from an item step');
  }
  return output as Item | null;
}

/** The error a function or promise throws; fails the test when nothing is thrown. */
export async function caught(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, but nothing was thrown');
}
