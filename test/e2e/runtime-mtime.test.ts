/**
 * Timestamps kept and checked (issue 14.3) on the local connector: the sink gives each file the
 * source's mtime on every write path, reads it back, and the runtime compares it during verify.
 */
import { execFileSync } from 'node:child_process';
import { statSync, utimesSync } from 'node:fs';
import { Type } from '@sinclair/typebox';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, type SinkCommit } from '../../core/plugin-api.js';
import { runPipelineFile } from '../../core/sdk.js';
import { localSink } from '../../plugins/local/sink.js';
import { testRegistry } from '../helpers/test-plugins.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
afterEach(() => ws?.cleanup());

/** The local sink, but every commit reports a stored mtime 5 s off (a backend ignoring the time it was given). */
const skewedSink = definePlugin({
  ...localSink,
  name: 'skewed_local',
  config: Type.Object({ path: Type.String(), verify: Type.Optional(Type.String()) }),
  async create(cfg, ctx) {
    const inner = await localSink.create({ path: cfg.path }, ctx);
    const skew = (commit: SinkCommit): SinkCommit =>
      commit.mtime ? { ...commit, mtime: new Date(commit.mtime.getTime() + 5000) } : commit;
    return {
      ...inner,
      mtimePrecisionMs: 1000,
      write: async (req) => skew(await inner.write(req)),
      writeBuffer: async (req) => skew(await inner.writeBuffer!(req)),
      copy: async (...args) => {
        const commit = await inner.copy!(...args);
        return commit && skew(commit);
      },
    };
  },
});

const run = (file: string) =>
  runPipelineFile(file, {
    registry: testRegistry().extend([{ plugin: skewedSink, origin: 'test' }]),
  });

const OLD = new Date('2021-03-04T05:06:07.891Z');

function seedOld(w: Workspace, rel: string, content: string | Buffer, mtime = OLD): void {
  w.write(rel, content);
  utimesSync(w.path(rel), mtime, mtime);
}

describe('mtime kept and verified (local → local)', () => {
  it('keeps the source mtime on the copy, small-file and streaming paths', async () => {
    ws = makeWorkspace();
    seedOld(ws, 'in/small.txt', 'small file\n');
    seedOld(ws, 'in/big.bin', Buffer.alloc(3 * 1024 * 1024, 7), new Date('2020-01-02T03:04:05.678Z'));
    // No steps: kernel copy; verify sha256: readAll + writeBuffer (small) and the stream (big).
    for (const [name, extra] of [
      ['copy', ''],
      ['hashed', ', verify: sha256'],
    ]) {
      const file = ws.pipeline(
        `name: ${name}\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out-${name}${extra} }\n`,
        `${name}.yaml`,
      );
      expect(await run(file)).toMatchObject({ ok: 2, failed: 0 });
      expect(statSync(ws.path(`out-${name}/small.txt`)).mtime).toEqual(OLD);
      expect(statSync(ws.path(`out-${name}/big.bin`)).mtime).toEqual(new Date('2020-01-02T03:04:05.678Z'));
    }
  });

  it("gives a gunzipped file and a tar entry the listed file's mtime (routing by mtime does not change); the entry's own is meta.entry_mtime", async () => {
    ws = makeWorkspace();
    seedOld(ws, 'in/a.csv.gz', execFileSync('gzip', ['-c'], { input: 'a,b\n1,2\n' }));
    ws.write('pack/entry.txt', 'inside the tar\n');
    const entryTime = new Date('2019-06-07T08:09:10.000Z');
    utimesSync(ws.path('pack/entry.txt'), entryTime, entryTime);
    execFileSync('tar', ['-cf', ws.path('in/b.tar'), '-C', ws.path('pack'), 'entry.txt']);
    utimesSync(ws.path('in/b.tar'), OLD, OLD);
    const file = ws.pipeline(
      'name: unpacked\nsource:\n  local: { path: ./in }\nsteps:\n  - decompress: {}\nsink:\n  local: { path: ./out }\n',
    );
    expect(await run(file)).toMatchObject({ ok: 2, failed: 0 });
    expect(statSync(ws.path('out/a.csv')).mtime).toEqual(OLD);
    const [entry] = ws.files('out').filter((p) => p.endsWith('entry.txt'));
    // The listed archive's time, which `date: {from: mtime}` routes by; not the entry's own.
    expect(statSync(ws.path('out', entry)).mtime).toEqual(OLD);
    expect(statSync(ws.path('out', entry)).mtime).not.toEqual(entryTime);
  });

  it('writes the time of writing with preserve_mtime: false', async () => {
    ws = makeWorkspace();
    seedOld(ws, 'in/a.txt', 'a\n');
    const file = ws.pipeline(
      'name: nomtime\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out, preserve_mtime: false }\n',
    );
    const before = Date.now() - 2000;
    expect(await run(file)).toMatchObject({ ok: 1, failed: 0 });
    expect(statSync(ws.path('out/a.txt')).mtimeMs).toBeGreaterThan(before);
  });

  it('fails an item whose stored mtime differs, removing the write, and keeps the source', async () => {
    ws = makeWorkspace();
    seedOld(ws, 'in/a.txt', 'a\n');
    seedOld(ws, 'in/b.bin', Buffer.alloc(2 * 1024 * 1024, 1));
    const file = ws.pipeline(
      'name: skewed\nsource:\n  local: { path: ./in, after_success: delete }\nsink:\n  skewed_local: { path: ./out }\n',
    );
    const summary = await run(file);
    expect(summary).toMatchObject({ ok: 0, failed: 2 });
    for (const failure of summary.failures) {
      expect(failure.code).toBe('SLUICE_E_VERIFY');
      expect(failure.error).toContain(`differs from the source's ${OLD.toISOString()}`);
      expect(failure.error).toContain('2021-03-04T05:06:12.891Z');
      expect(failure.error).toContain(ws.path('out'));
    }
    expect(ws.files('out')).toEqual([]);
    expect(ws.files('in')).toEqual(['a.txt', 'b.bin']);
  });

  it('does not compare mtimes with verify: none', async () => {
    ws = makeWorkspace();
    seedOld(ws, 'in/a.txt', 'a\n');
    const file = ws.pipeline(
      'name: unchecked\nsource:\n  local: { path: ./in }\nsink:\n  skewed_local: { path: ./out, verify: none }\n',
    );
    expect(await run(file)).toMatchObject({ ok: 1, failed: 0 });
  });
});
