/**
 * pgp_decrypt with the gpg engine out of Node's byte path (issue 16.6): gpg reads the listed
 * local file itself (`StepContext.openLocal`, an inherited descriptor) and, when the item goes
 * to one local sink with no step after, writes the plaintext straight into the sink's temp
 * file (`Item.writeTo` + `SinkInstance.reserveFile`). Proven with real gpg and the real local
 * source and sink, wrapped to count which path was taken:
 * - the same bytes, mtimes, summary and ledger records as the stream path;
 * - a tampered, wrong-key or wrongly signed message leaves nothing at the destination, and the
 *   temp file gpg had written into is gone;
 * - a file that grew or shrank after it was listed fails the item (SLUICE_E_CHANGED);
 * - two sinks, a byte step after pgp_decrypt, or a step that spreads the item with new bytes
 *   keep the stream path (and get those bytes).
 */
import {
  appendFileSync,
  existsSync,
  fstatSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Type } from '@sinclair/typebox';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../core/ledger/sqlite.js';
import { definePlugin, type Item, type SinkInstance, type SourceInstance } from '../../core/plugin-api.js';
import { loadPipelineFile, runPipelineFile } from '../../core/sdk.js';
import { localSink } from '../../plugins/local/sink.js';
import { localSource } from '../../plugins/local/source.js';
import { testGpgHome } from '../helpers/gpg-keys.js';
import { testRegistry } from '../helpers/test-plugins.js';
import { listFiles, makeWorkspace, sha256 } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-pgp-direct-');
const keys = testGpgHome(ws.path('gnupg'));

/** What the wrapped source and sinks saw. */
const spy = {
  /** Files gpg was handed (openFile), and streams read through Node (item.open). */
  filesOpened: 0,
  streamsOpened: 0,
  /** Sink calls: stream writes and reserved files. */
  writes: 0,
  reserved: 0,
  /** Per aborted reservation: bytes gpg had written into it, and what was left in the temp folder after. */
  aborted: [] as Array<{ bytes: number; left: string[] }>,
};
beforeEach(() => {
  Object.assign(spy, { filesOpened: 0, streamsOpened: 0, writes: 0, reserved: 0, aborted: [] });
});

/**
 * The local source, counting how items are read; `stream_source` cannot hand out files.
 * `afterOpen` runs once a file was handed out (and checked): a producer writing on after that.
 */
const spySource = (name: string, files: boolean, afterOpen?: (path: string) => void) =>
  definePlugin({
    ...localSource,
    name,
    async create(cfg, ctx) {
      const inner: SourceInstance = await localSource.create(cfg, ctx);
      const { openFile, ...rest } = inner;
      return {
        ...rest,
        async *list(signal) {
          for await (const item of inner.list(signal)) {
            yield {
              ...item,
              open: (s?: AbortSignal) => {
                spy.streamsOpened++;
                return item.open(s);
              },
            } satisfies Item;
          }
        },
        ...(files && openFile
          ? {
              openFile: async (item: Item, signal?: AbortSignal) => {
                spy.filesOpened++;
                const opened = await openFile(item, signal);
                afterOpen?.(resolve(ctx.baseDir, cfg.path!, item.path));
                return opened;
              },
            }
          : {}),
      };
    },
  });

/** The local sink, counting writes and reservations; `stream_local` cannot reserve files. */
const spySink = (name: string, files: boolean) =>
  definePlugin({
    ...localSink,
    name,
    async create(cfg, ctx) {
      const inner: SinkInstance = await localSink.create(cfg, ctx);
      const { reserveFile, ...rest } = inner;
      const temps = resolve(ctx.baseDir, cfg.path, '.sluice-tmp');
      const leftInTemp = () =>
        readdirSync(temps).flatMap((d) => readdirSync(join(temps, d)).map((f) => `${d}/${f}`));
      return {
        ...rest,
        write(req) {
          spy.writes++;
          return inner.write(req);
        },
        ...(files && reserveFile
          ? {
              async reserveFile(req: Parameters<NonNullable<SinkInstance['reserveFile']>>[0]) {
                spy.reserved++;
                const file = await reserveFile(req);
                return {
                  fd: file.fd,
                  commit: () => file.commit(),
                  async abort() {
                    const bytes = fstatSync(file.fd).size;
                    await file.abort();
                    spy.aborted.push({ bytes, left: leftInTemp() });
                  },
                };
              },
            }
          : {}),
      };
    },
  });

/** Appends `bytes` zero bytes to the listed file before it is read (a producer still writing). */
const growSource = definePlugin({
  name: 'grow_source',
  kind: 'step',
  summary: 'test: appends to the source file of each item',
  config: Type.Object({ root: Type.String(), bytes: Type.Integer() }),
  create(cfg, ctx) {
    return {
      process(item) {
        appendFileSync(resolve(ctx.baseDir, cfg.root, item.path), Buffer.alloc(cfg.bytes));
        return item;
      },
    };
  },
});

const registry = testRegistry().extend(
  [
    spySource('spy_source', true),
    spySource('stream_source', false),
    spySource('growing_source', true, (path) => appendFileSync(path, Buffer.alloc(5000))),
    spySink('spy_local', true),
    spySink('stream_local', false),
    growSource,
  ].map((plugin) => ({ plugin, origin: 'test' })),
);
const run = (file: string) => runPipelineFile(file, { registry });

/** ~3 MiB of CSV with pseudo-random values: many pipe buffers, and zlib does not shrink it to nothing. */
function csv(lines: number): Buffer {
  let x = 77;
  const rows: string[] = [];
  for (let i = 0; i < lines; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    rows.push(`${i},${x},${(x % 9973) / 7},customer ${x % 1009},row ${i}\n`);
  }
  return Buffer.from(rows.join(''));
}

const plain = csv(70_000);
const messages: Record<string, Buffer> = {};

beforeAll(() => {
  ws.write(
    'key.asc',
    keys.secretKey('o@example.com', 'Key-Type: RSA\nKey-Length: 2048\nSubkey-Type: RSA\nSubkey-Length: 2048'),
  );
  keys.secretKey(
    'other@example.com',
    'Key-Type: RSA\nKey-Length: 2048\nSubkey-Type: RSA\nSubkey-Length: 2048',
  );
  keys.secretKey('signer@example.com', 'Key-Type: RSA\nKey-Length: 2048');
  keys.secretKey('stranger@example.com', 'Key-Type: RSA\nKey-Length: 2048');
  ws.write('signer.asc', keys.gpg(['--armor', '--export', 'signer@example.com']));
  ws.write('plain.csv', plain);
  let n = 0;
  const encrypt = (args: string[]) => {
    const out = ws.path(`message-${++n}.gpg`);
    keys.gpg([...args, '-o', out, '--encrypt', ws.path('plain.csv')]);
    return readFileSync(out);
  };
  messages.none = encrypt(['-r', 'o@example.com', '--compress-algo', 'none']);
  messages.zlib = encrypt(['-r', 'o@example.com', '--compress-algo', 'zlib']);
  messages.signed = encrypt(['-r', 'o@example.com', '-u', 'signer@example.com', '--sign']);
  messages.strangerSigned = encrypt(['-r', 'o@example.com', '-u', 'stranger@example.com', '--sign']);
  messages.otherKey = encrypt(['-r', 'other@example.com', '--compress-algo', 'none']);
  const tampered = Buffer.from(messages.none);
  tampered[tampered.length - 200] ^= 0x01; // in the last bytes: gpg has written nearly all plaintext
  messages.tampered = tampered;
}, 120_000);

afterAll(() => {
  keys.close();
  ws.cleanup();
});

const LISTED_AT = new Date('2026-01-02T03:04:05.678Z');

/** A folder `name` holding `files` (name → message), and a pipeline over it. */
function setUp(
  name: string,
  files: Record<string, Buffer>,
  opts: { source?: string; sinks?: string[]; steps?: string[]; decrypt?: string } = {},
): string {
  for (const [file, bytes] of Object.entries(files)) {
    // One mtime for every copy: the ledger identities (size + mtime) of two runs then match.
    utimesSync(ws.write(`${name}/in/${file}`, bytes), LISTED_AT, LISTED_AT);
  }
  const sinks = opts.sinks ?? ['spy_local: { path: ./out }'];
  const steps = opts.steps ?? [
    `pgp_decrypt: { private_key_file: ../key.asc, engine: gpg${opts.decrypt ?? ''} }`,
  ];
  return ws.pipeline(
    [
      `name: ${name}`,
      'source:',
      `  ${opts.source ?? 'spy_source'}: { path: ./in }`,
      'steps:',
      ...steps.map((s) => `  - ${s}`),
      sinks.length === 1 ? `sink:\n  ${sinks[0]}` : `sinks:\n${sinks.map((s) => `  - ${s}`).join('\n')}`,
      'policy:\n  concurrency: 1\n  retry: { max_attempts: 1 }',
      '',
    ].join('\n'),
    `${name}/pipeline.yaml`,
  );
}

/** The pipeline's ledger records, without what names the run's folder. */
async function ledgerOf(file: string, outDir: string) {
  const def = await loadPipelineFile(file, { registry });
  const ledger = await SqliteLedger.open(def.stateDir);
  try {
    const records = await ledger.history(def.name);
    return records
      .map((r) => ({
        source: r.source,
        path: r.path,
        version: r.version,
        state: r.state,
        attempts: r.attempts,
        destinations: r.destinations.map((d) => d.replace(outDir, '<out>')),
        error: r.error,
      }))
      .sort((a, b) => a.path.localeCompare(b.path));
  } finally {
    await ledger.close();
  }
}

describe('pgp_decrypt with gpg reading and writing files itself', () => {
  it('delivers the bytes, mtimes, summary and ledger records of the stream path', async () => {
    const files = { 'a.csv.gpg': messages.none, 'b.csv.gpg': messages.zlib, 'c.csv.gpg': messages.signed };
    const verifying = ', verify_signature: { public_key_files: [../signer.asc], required: false }';
    const direct = setUp('direct', files, { decrypt: verifying });
    const stream = setUp('stream', files, {
      source: 'stream_source',
      sinks: ['stream_local: { path: ./out }'],
      decrypt: verifying,
    });
    const summaries = [];
    for (const file of [direct, stream]) {
      const s = await run(file);
      summaries.push(s);
      expect(s, JSON.stringify(s.failures)).toMatchObject({ ok: 3, failed: 0 });
      // The direct run: gpg read every file itself and wrote into a reserved temp file.
      if (file === direct)
        expect(spy).toMatchObject({ filesOpened: 3, streamsOpened: 0, reserved: 3, writes: 0 });
    }
    expect(spy).toMatchObject({ filesOpened: 3, streamsOpened: 3, reserved: 3, writes: 3 });
    const [a, b] = summaries;
    expect(a.bytesIn).toBe(b.bytesIn);
    expect(a.bytesOut).toBe(b.bytesOut);
    expect(a.filesWritten).toBe(b.filesWritten);
    for (const name of ['a.csv', 'b.csv', 'c.csv']) {
      for (const run of ['direct', 'stream']) {
        expect(sha256(readFileSync(ws.path(run, 'out', name)))).toBe(sha256(plain));
        expect(statSync(ws.path(run, 'out', name)).mtimeMs).toBe(
          statSync(ws.path(run, 'in', `${name}.gpg`)).mtimeMs,
        );
      }
    }
    expect(listFiles(ws.path('direct', 'out'))).toEqual(['a.csv', 'b.csv', 'c.csv']);
    const records = await ledgerOf(direct, ws.path('direct', 'out'));
    expect(records.map((r) => [r.path, r.state])).toEqual([
      ['a.csv.gpg', 'finalized'],
      ['b.csv.gpg', 'finalized'],
      ['c.csv.gpg', 'finalized'],
    ]);
    expect(records).toEqual(await ledgerOf(stream, ws.path('stream', 'out')));
  }, 120_000);

  it('used no Node stream for either end when the item goes to one local sink', async () => {
    const file = setUp('counted', { 'a.csv.gpg': messages.none, 'b.csv.gpg': messages.zlib });
    expect(await run(file)).toMatchObject({ ok: 2, failed: 0 });
    expect(spy).toMatchObject({ filesOpened: 2, streamsOpened: 0, reserved: 2, writes: 0 });
    const stream = setUp(
      'counted-stream',
      { 'a.csv.gpg': messages.none },
      {
        source: 'stream_source',
        sinks: ['stream_local: { path: ./out }'],
      },
    );
    expect(await run(stream)).toMatchObject({ ok: 1, failed: 0 });
    expect(spy).toMatchObject({ filesOpened: 2, streamsOpened: 1, reserved: 2, writes: 1 });
  }, 120_000);

  it('a tampered, wrong-key or wrongly signed message leaves nothing at the destination and no temp file', async () => {
    const file = setUp(
      'bad',
      {
        'tampered.csv.gpg': messages.tampered,
        'other-key.csv.gpg': messages.otherKey,
        'stranger.csv.gpg': messages.strangerSigned,
      },
      { decrypt: ', verify_signature: { public_key_files: [../signer.asc], required: true }' },
    );
    const s = await run(file);
    expect(s).toMatchObject({ ok: 0, failed: 3 });
    const failed = Object.fromEntries(s.failures.map((f) => [f.path, f]));
    expect(failed['tampered.csv.gpg'].code).toBe('SLUICE_E_BAD_DATA');
    expect(failed['other-key.csv.gpg'].code).toBe('SLUICE_E_BAD_DATA');
    expect(failed['stranger.csv.gpg'].error).toMatch(/signature/i);
    for (const f of s.failures) expect(f.error).toMatch(/^\[bad steps\[0\]\.pgp_decrypt\] item "\w+:/);
    // Each went into a reserved file, gpg wrote into two of them (the tampered message all but
    // its end, the stranger's in full before its signature was judged), and each was removed.
    expect(spy).toMatchObject({ reserved: 3, writes: 0, streamsOpened: 0, filesOpened: 3 });
    expect(spy.aborted).toHaveLength(3);
    expect(spy.aborted.filter((a) => a.bytes > plain.length / 2)).toHaveLength(2);
    for (const a of spy.aborted) expect(a.left).toEqual([]);
    expect(existsSync(ws.path('bad', 'out')) ? readdirSync(ws.path('bad', 'out')) : []).toEqual([]);
  }, 120_000);

  it('a message corrupt early (gpg stops reading it) is bad data from pgp_decrypt, not a changed file', async () => {
    const corrupt = Buffer.from(messages.zlib);
    corrupt[2000] ^= 0xff; // inside the compressed data: gpg gives up long before the end
    const file = setUp('early', { 'a.csv.gpg': corrupt });
    const s = await run(file);
    expect(s).toMatchObject({ ok: 0, failed: 1 });
    expect(s.failures[0]).toMatchObject({ code: 'SLUICE_E_BAD_DATA' });
    expect(s.failures[0]!.error).toMatch(/^\[early steps\[0\]\.pgp_decrypt\]/);
    expect(spy).toMatchObject({ filesOpened: 1, streamsOpened: 0 });
  }, 120_000);

  it('fails a file that shrank or grew after it was listed, and delivers nothing', async () => {
    const shrink = setUp(
      'shrink',
      { 'a.csv.gpg': messages.zlib },
      {
        steps: [
          'truncate_source: { root: ./in, to_bytes: 100000 }',
          'pgp_decrypt: { private_key_file: ../key.asc, engine: gpg }',
        ],
      },
    );
    const grow = setUp(
      'grow',
      { 'a.csv.gpg': messages.none },
      {
        steps: [
          'grow_source: { root: ./in, bytes: 5000 }',
          'pgp_decrypt: { private_key_file: ../key.asc, engine: gpg }',
        ],
      },
    );
    for (const file of [shrink, grow]) {
      const s = await run(file);
      expect(s).toMatchObject({ ok: 0, failed: 1 });
      expect(s.failures[0].code, s.failures[0].error).toBe('SLUICE_E_CHANGED');
      // Seen when gpg is handed the file (its size now differs) or after it read it.
      expect(s.failures[0].error).toMatch(
        /read \d+ bytes but the source listed \d+|changed since it was listed \(\d+ bytes now, \d+ listed\)/,
      );
    }
    expect(spy).toMatchObject({ filesOpened: 2, streamsOpened: 0, reserved: 2, writes: 0 });
    for (const a of spy.aborted) expect(a.left).toEqual([]);
    expect(listFiles(ws.path('shrink', 'out'))).toEqual([]);
    expect(listFiles(ws.path('grow', 'out'))).toEqual([]);
  }, 120_000);

  it('fails a file that grew while gpg read it (after it was handed out and checked), and delivers nothing', async () => {
    // Only the check once gpg exited (LocalFile.finish: the file's size and gpg's offset) sees it.
    const grew = setUp('grew', { 'a.csv.gpg': messages.none }, { source: 'growing_source' });
    const s = await run(grew);
    expect(s).toMatchObject({ ok: 0, failed: 1 });
    expect(s.failures[0].code, s.failures[0].error).toBe('SLUICE_E_CHANGED');
    expect(s.failures[0].error).toMatch(/read \d+ bytes but the source listed \d+/);
    expect(spy).toMatchObject({ filesOpened: 1, streamsOpened: 0, reserved: 1, writes: 0 });
    for (const a of spy.aborted) expect(a.left).toEqual([]);
    expect(listFiles(ws.path('grew', 'out'))).toEqual([]);
  }, 60_000);

  it('streams to two sinks, through a byte step after it, and past a step that spreads new bytes', async () => {
    const two = setUp(
      'two',
      { 'a.csv.gpg': messages.zlib },
      { sinks: ['spy_local: { path: ./out }', 'spy_local: { path: ./out2 }'] },
    );
    expect(await run(two)).toMatchObject({ ok: 1, failed: 0 });
    expect(spy).toMatchObject({ reserved: 0, writes: 2, filesOpened: 1 });
    for (const out of ['out', 'out2'])
      expect(sha256(readFileSync(ws.path('two', out, 'a.csv')))).toBe(sha256(plain));

    const compressed = setUp(
      'then-gzip',
      { 'a.csv.gpg': messages.none },
      {
        steps: ['pgp_decrypt: { private_key_file: ../key.asc, engine: gpg }', 'compress: { format: gzip }'],
      },
    );
    expect(await run(compressed)).toMatchObject({ ok: 1, failed: 0 });
    expect(spy).toMatchObject({ reserved: 0, writes: 3, filesOpened: 2 });
    expect(sha256(gunzipSync(readFileSync(ws.path('then-gzip', 'out', 'a.csv.gz'))))).toBe(sha256(plain));

    const spread = setUp(
      'then-spread',
      { 'a.csv.gpg': messages.none },
      { steps: ['pgp_decrypt: { private_key_file: ../key.asc, engine: gpg }', 'careless_upper: {}'] },
    );
    expect(await run(spread)).toMatchObject({ ok: 1, failed: 0 });
    expect(spy).toMatchObject({ reserved: 0, writes: 4 });
    expect(readFileSync(ws.path('then-spread', 'out', 'a.csv'), 'latin1')).toBe(
      plain.toString('latin1').toUpperCase(),
    );
  }, 120_000);
});
