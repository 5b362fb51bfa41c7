/**
 * `{mtime:…}`, `{size}` and `{md5}` (issue 14.3) end to end: destinations from the item's own
 * mtime and size, and a sink that needs the md5 before writing gets it from the runtime on the
 * small-file and the streaming path.
 */
import { createHash } from 'node:crypto';
import { utimesSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { localSink } from '../../plugins/local/sink.js';
import { testRegistry } from '../helpers/test-plugins.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
afterEach(() => ws?.cleanup());

/** The local sink, needing the md5 before writing (as `{md5}` in object-store metadata does): it names the file by it. */
const md5NamedSink = definePlugin({
  ...localSink,
  name: 'md5_named_local',
  async create(cfg, ctx) {
    const inner = await localSink.create(cfg, ctx);
    const named = (destination: string, md5: string | undefined) => {
      if (md5 === undefined) throw new Error(`no md5 given for ${destination}`);
      return `${destination}.${md5}`;
    };
    return {
      ...inner,
      needsDigests: ['md5'] as const,
      copy: undefined,
      write: (req) => inner.write({ ...req, destination: named(req.destination, req.md5) }),
      writeBuffer: (req) => inner.writeBuffer!({ ...req, destination: named(req.destination, req.md5) }),
    };
  },
});

const run = (file: string) =>
  runPipelineFile(file, { registry: testRegistry().extend([{ plugin: md5NamedSink, origin: 'test' }]) });

const md5 = (data: string | Buffer) => createHash('md5').update(data).digest('hex');

describe('{mtime}, {size} and {md5}', () => {
  it('routes by the item mtime and size (rename to: "{mtime:%Y/%m}/{stem}-{size}.{ext}")', async () => {
    ws = makeWorkspace();
    ws.write('in/a.csv', 'x,y\n1,2\n');
    ws.write('in/b.csv', 'x\n');
    const jan = new Date('2024-01-31T23:30:00Z');
    const feb = new Date('2024-02-01T00:30:00Z');
    utimesSync(ws.path('in/a.csv'), jan, jan);
    utimesSync(ws.path('in/b.csv'), feb, feb);
    const file = ws.pipeline(`name: placed
source:
  local: { path: ./in }
steps:
  - rename: { to: "{mtime:%Y/%m}/{stem}-{size}.{ext}" }
sink:
  local: { path: ./out }
`);
    expect(await run(file)).toMatchObject({ ok: 2, failed: 0 });
    expect(ws.files('out')).toEqual(['2024/01/a-8.csv', '2024/02/b-2.csv']);
  });

  it('follows the pipeline timezone for {mtime:…}', async () => {
    ws = makeWorkspace();
    ws.write('in/a.csv', 'a\n');
    const lateUtc = new Date('2024-01-31T23:30:00Z');
    utimesSync(ws.path('in/a.csv'), lateUtc, lateUtc);
    const file = ws.pipeline(`name: zoned
source:
  local: { path: ./in }
steps:
  - rename: { to: "{mtime:%Y-%m-%d}/{name}", timezone: Europe/Paris }
sink:
  local: { path: ./out }
`);
    expect(await run(file)).toMatchObject({ ok: 1 });
    expect(ws.files('out')).toEqual(['2024-02-01/a.csv']);
  });

  it('hashes md5 before writing for a sink that needs it, small and streamed', async () => {
    ws = makeWorkspace();
    const big = Buffer.alloc(2 * 1024 * 1024 + 5, 3);
    ws.write('in/small.txt', 'small\n');
    ws.write('in/big.bin', big);
    const file = ws.pipeline(
      'name: md5\nsource:\n  local: { path: ./in }\nsink:\n  md5_named_local: { path: ./out }\n',
    );
    expect(await run(file)).toMatchObject({ ok: 2, failed: 0 });
    expect(ws.files('out')).toEqual([`big.bin.${md5(big)}`, `small.txt.${md5('small\n')}`].sort());
  });

  it('fails an item whose size a step left unknown, naming {size}', async () => {
    ws = makeWorkspace();
    ws.write('in/a.txt', 'abc\n');
    const file = ws.pipeline(`name: unsized
source:
  local: { path: ./in }
steps:
  - compress: { format: gzip }
  - rename: { to: "{size}/{name}" }
sink:
  local: { path: ./out }
`);
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 0, failed: 1 });
    expect(summary.failures[0]).toMatchObject({ code: 'SLUICE_E_TEMPLATE', path: 'a.txt' });
    expect(summary.failures[0].error).toContain('uses {size} but no size is known for item "a.txt.gz"');
    expect(ws.files('out')).toEqual([]);
  });
});
