/**
 * The ledger is on disk before a source file is deleted or moved. A process SIGKILLed right
 * after after_success must not lose the item's `committed` record with the unwritten batch: the
 * file is gone, so no later run would correct a ledger that still calls it `seen` (found by the
 * sftp → s3 chaos test). The source below reads the ledger file through its own connection at
 * the very moment the runtime asks it to delete or move an item.
 */
import { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createItem } from '../../core/item.js';
import { definePlugin } from '../../core/plugin-api.js';
import { builtinRegistry, runPipelineFile } from '../../core/sdk.js';
import { makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-ledger-change-');
afterAll(() => ws.cleanup());

/** State of each item in the ledger file when its source change was asked for. */
const onDiskAtChange = new Map<string, string | undefined>();

function stateOnDisk(pipeline: string, path: string): string | undefined {
  const db = new Database(ws.path('.sluice', 'ledger.sqlite'), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT state FROM items WHERE pipeline = ? AND path = ?').get(pipeline, path) as
      | { state: string }
      | undefined;
    return row?.state;
  } finally {
    db.close();
  }
}

const probeSource = definePlugin({
  name: 'ledger_probe',
  kind: 'source',
  summary: 'test: lists in-memory files, reads the ledger file when asked to delete or move one',
  config: Type.Object({
    count: Type.Integer(),
    after_success: Type.Optional(Type.Unknown()),
  }),
  create(cfg) {
    return {
      async *list() {
        for (let i = 0; i < cfg.count; i++) {
          const body = Buffer.from(`file ${i}\n`);
          yield createItem({
            source: 'ledger_probe',
            path: `f-${i}.txt`,
            size: body.length,
            mtime: new Date(0),
            open: async () => Readable.from([body]),
          });
        }
      },
      async remove(item) {
        onDiskAtChange.set(`delete ${item.path}`, stateOnDisk('probe-delete', item.path));
      },
      async move(item) {
        onDiskAtChange.set(`move ${item.path}`, stateOnDisk('probe-move', item.path));
      },
    };
  },
});

describe('ledger before a source change', () => {
  it.each([
    ['delete', 'delete'],
    ['move', '{ move_to: /done }'],
  ])('the committed record is in the ledger file before the source %s', async (action, afterSuccess) => {
    const file = ws.pipeline(
      // One pipeline per case: the second would otherwise redo the first one's finalized items,
      // whose records never go back to committed.
      `name: probe-${action}\nsource:\n  ledger_probe: { count: 20, after_success: ${afterSuccess} }\nsink:\n  local: { path: ./out-${action} }\npolicy:\n  concurrency: 4\n`,
      `probe-${action}.yaml`,
    );
    const summary = await runPipelineFile(file, {
      registry: builtinRegistry().extend([{ plugin: probeSource, origin: 'test' }]),
      force: true,
    });
    expect(summary).toMatchObject({ ok: 20, failed: 0 });
    const states = [...onDiskAtChange]
      .filter(([key]) => key.startsWith(`${action} `))
      .map(([, state]) => state);
    expect(states).toEqual(Array.from({ length: 20 }, () => 'committed'));
  });
});
