/**
 * decompress against archives made at test time by real tools: gzip, GNU tar, Info-ZIP zip
 * (piped for data descriptors, stored, zip64, unicode and CP437 names) and python3's zipfile
 * and tarfile for traversal, bomb and lying-header cases.
 */
import { execFileSync, execSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceError } from '../../core/errors.js';
import { createItem } from '../../core/item.js';
import type { Item, StepOutput } from '../../core/plugin-api.js';
import { hashStream } from '../../core/streams.js';
import { type DecompressConfig, decompressPlugin } from '../../plugins/archive/decompress.js';
import { makePluginContext, makeStepContext } from '../helpers/context.js';

let work: string;
let src: string;
/** sha256 of every file under `src`, by relative path. */
const originals = new Map<string, string>();
// CP437 names are a zip notion; tar names are bytes in the writer's locale (UTF-8 assumed).
const TAR_NO_CP437 = "--exclude='caf*.txt'";
const notCp437 = (rel: string) => rel !== 'café.txt';
const LONG_NAME = `${'long-directory-name-'.repeat(3)}/${'a-very-long-file-name-'.repeat(5)}.csv`;

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function sh(command: string, cwd = work): void {
  execSync(command, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function python(script: string, cwd = work): void {
  execFileSync('python3', ['-c', script], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function writeSource(rel: string, data: Buffer | string): void {
  const path = join(src, rel);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, data);
  originals.set(rel, sha256(data));
}

function csv(rows: number): string {
  let out = 'id,name,amount,date\n';
  for (let i = 0; i < rows; i++)
    out += `${i},customer-${i % 977},${(i * 7.31).toFixed(2)},2024-05-${(i % 28) + 1}\n`;
  return out;
}

/** An item for a file in `work`, listed under `listedAs` (default: its name). */
function fileItem(file: string, listedAs = file): Item {
  const path = join(work, file);
  return createItem({
    source: 'test',
    path: listedAs,
    size: statSync(path).size,
    open: async () => createReadStream(path),
  });
}

interface Unpacked {
  path: string;
  sha256: string;
  size: number;
  item: Item;
}

/** Runs decompress on `item` and reads every yielded item to its end before pulling the next. */
async function unpack(item: Item, config: DecompressConfig = {}, tempDir?: string): Promise<Unpacked[]> {
  const pluginCtx = makePluginContext(tempDir ? { tempDir } : {});
  const step = await decompressPlugin.create(config, pluginCtx);
  const output: StepOutput = await step.process(item, makeStepContext({ tempDir: pluginCtx.tempDir }));
  const items: AsyncIterable<Item> | Item[] =
    output === null
      ? []
      : Array.isArray(output)
        ? output
        : Symbol.asyncIterator in output
          ? output
          : [output as Item];
  const results: Unpacked[] = [];
  for await (const produced of items) {
    const { digest, size } = await hashStream(await produced.open());
    results.push({ path: produced.path, sha256: digest, size, item: produced });
  }
  return results;
}

/** Like `unpack`, but records entries yielded before the failure and returns the error. */
async function unpackFailure(
  item: Item,
  config: DecompressConfig = {},
  tempDir?: string,
): Promise<{ error: unknown; yielded: string[] }> {
  const yielded: string[] = [];
  const step = await decompressPlugin.create(config, makePluginContext(tempDir ? { tempDir } : {}));
  try {
    const output = await step.process(item, makeStepContext());
    const items = output && Symbol.asyncIterator in output ? output : [output as Item];
    for await (const produced of items as AsyncIterable<Item>) {
      yielded.push(produced.path);
      await hashStream(await produced.open());
    }
  } catch (error) {
    return { error, yielded };
  }
  throw new Error(`expected ${item.path} to fail, got ${yielded.join(', ')}`);
}

function expectSluiceError(error: unknown, code: string, text?: string): void {
  expect(error).toBeInstanceOf(SluiceError);
  expect((error as SluiceError).code).toBe(code);
  expect((error as SluiceError).retryable).toBe(false);
  if (text) expect((error as SluiceError).message).toContain(text);
}

/** Asserts that `results` are exactly the source files, placed under `prefix`. */
function expectAllOriginals(results: Unpacked[], prefix: string, only?: (rel: string) => boolean): void {
  const expected = [...originals]
    .filter(([rel]) => !only || only(rel))
    .map(([rel, digest]) => [prefix + rel, digest]);
  const got = results.map((r) => [r.path, r.sha256]);
  expect(got.sort()).toEqual(expected.sort());
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'sluice-archive-e2e-'));
  src = join(work, 'src');
  writeSource('a.csv', csv(50_000)); // ~2 MB: several 1 MiB chunks
  writeSource('sub/b.bin', randomBytes(300_000));
  writeSource('empty.txt', '');
  writeSource('ünïcödé/日本語.txt', 'unicode name\n');
  writeSource(LONG_NAME, csv(10));
  // A name whose bytes are CP437 (0x82 = é), not UTF-8, as old DOS/Windows zips have them.
  execFileSync('python3', ['-c', `open(b'${join(src, 'caf')}\\x82.txt', 'wb').write(b'cp437 name')`]);
  originals.set('café.txt', sha256('cp437 name'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('gzip', () => {
  it('gunzips a .gz file to the name without .gz', async () => {
    sh('mkdir -p gz && gzip -c src/a.csv > gz/a.csv.gz');
    const results = await unpack(fileItem('gz/a.csv.gz', 'drop/a.csv.gz'));
    expect(results.map((r) => [r.path, r.sha256])).toEqual([['drop/a.csv', originals.get('a.csv')]]);
    expect(results[0].item.size).toBeUndefined();
  });

  it('reads every member of a multi-member gzip', async () => {
    sh('mkdir -p gz && gzip -c src/a.csv > gz/multi.csv.gz && gzip -c src/sub/b.bin >> gz/multi.csv.gz');
    const [result] = await unpack(fileItem('gz/multi.csv.gz'));
    const whole = Buffer.concat([readFileSync(join(src, 'a.csv')), readFileSync(join(src, 'sub/b.bin'))]);
    expect(result.sha256).toBe(sha256(whole));
  });

  it('recognises gzip by magic bytes when the name says nothing, and keeps the name', async () => {
    sh('mkdir -p gz && gzip -c src/a.csv > gz/blob');
    const results = await unpack(fileItem('gz/blob'));
    expect(results.map((r) => [r.path, r.sha256])).toEqual([['gz/blob', originals.get('a.csv')]]);
  });

  it('passes a plain file through as the very same item', async () => {
    const item = fileItem('src/a.csv', 'a.csv');
    const step = await decompressPlugin.create({}, makePluginContext());
    expect(await step.process(item, makeStepContext())).toBe(item);
  });

  it('leaves formats that are not listed alone', async () => {
    sh('mkdir -p gz && gzip -c src/a.csv > gz/a2.csv.gz');
    const item = fileItem('gz/a2.csv.gz');
    const step = await decompressPlugin.create({ formats: ['zip'] }, makePluginContext());
    expect(await step.process(item, makeStepContext())).toBe(item);
  });

  it('fails a truncated gzip with SLUICE_E_BAD_DATA as a stream error', async () => {
    sh('mkdir -p gz && gzip -c src/a.csv > gz/full.gz && head -c 20000 gz/full.gz > gz/truncated.csv.gz');
    const { error } = await unpackFailure(fileItem('gz/truncated.csv.gz'));
    expectSluiceError(error, 'SLUICE_E_BAD_DATA', 'gz/truncated.csv.gz');
  });

  it('fails a corrupted gzip with SLUICE_E_BAD_DATA', async () => {
    sh('mkdir -p gz && gzip -c src/a.csv > gz/corrupt.csv.gz');
    python(
      "p='gz/corrupt.csv.gz'; b=bytearray(open(p,'rb').read()); b[5000:5100]=bytes(100); open(p,'wb').write(b)",
    );
    const { error } = await unpackFailure(fileItem('gz/corrupt.csv.gz'));
    expectSluiceError(error, 'SLUICE_E_BAD_DATA', 'gz/corrupt.csv.gz');
  });

  it('stops a gzip bomb with SLUICE_E_LIMIT while streaming', async () => {
    sh('mkdir -p gz && head -c 30000000 /dev/zero | gzip -9 > gz/zeros.gz');
    const { error } = await unpackFailure(fileItem('gz/zeros.gz'), { max_ratio: 200 });
    expectSluiceError(error, 'SLUICE_E_LIMIT', 'max_ratio');
  });

  it('enforces max_total_size on the bytes produced', async () => {
    const { error } = await unpackFailure(fileItem('gz/a.csv.gz'), { max_total_size: '100KiB' });
    expectSluiceError(error, 'SLUICE_E_LIMIT', 'max_total_size');
  });

  it('leaves a failure of the source itself unclassified, so it can be retried', async () => {
    const gz = readFileSync(join(work, 'gz/a.csv.gz'));
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const item = createItem({
      source: 'test',
      path: 'flaky.csv.gz',
      open: async () =>
        Readable.from(
          (async function* () {
            yield gz.subarray(0, 10_000);
            throw reset;
          })(),
        ),
    });
    const { error } = await unpackFailure(item);
    expect(error).toBe(reset);
  });
});

describe('tar', () => {
  it('unpacks a GNU tar with long names beside the archive', async () => {
    sh(`tar --format=gnu -cf gnu.tar ${TAR_NO_CP437} -C src .`);
    const tempDir = join(work, 'spool-gnu');
    const results = await unpack(fileItem('gnu.tar', 'drop/gnu.tar'), {}, tempDir);
    expect(readdirSync(tempDir)).toEqual([]);
    expectAllOriginals(results, 'drop/', notCp437);
    expect(results.some((r) => r.path === `drop/${LONG_NAME}`)).toBe(true);
    const entry = results.find((r) => r.path === 'drop/a.csv')!.item;
    expect(entry.size).toBe(statSync(join(src, 'a.csv')).size);
    expect(entry.meta.archive).toBe('drop/gnu.tar');
    expect(typeof entry.meta.entry_mtime).toBe('string');
  });

  it('unpacks a pax tar.gz (.tgz) in one go, nested under the archive stem', async () => {
    sh(`tar --format=pax -czf x.tgz ${TAR_NO_CP437} -C src .`);
    const results = await unpack(fileItem('x.tgz', 'in/x.tgz'), { layout: 'nest' });
    expectAllOriginals(results, 'in/x/', notCp437);
  });

  it('streams a tar.gz without the prescan, and flattens', async () => {
    sh('tar -czf flat.tar.gz -C src sub a.csv');
    const results = await unpack(fileItem('flat.tar.gz'), { layout: 'flatten', tar_prescan: false });
    expect(results.map((r) => [r.path, r.sha256]).sort()).toEqual([
      ['a.csv', originals.get('a.csv')],
      ['b.bin', originals.get('sub/b.bin')],
    ]);
  });

  it('recognises a tar by magic bytes', async () => {
    sh('tar -cf tar-without-extension -C src sub');
    const results = await unpack(fileItem('tar-without-extension'));
    expect(results.map((r) => r.path)).toEqual(['sub/b.bin']);
  });

  it.each([
    ['symlink', 'ln -s a.csv link.csv', 'symbolic link'],
    ['hardlink', 'ln a.csv hard.csv', 'hard link'],
  ])('refuses a tar holding a %s before yielding anything', async (kind, command, text) => {
    sh(
      `rm -rf ${kind} && mkdir ${kind} && cp src/a.csv ${kind}/ && cd ${kind} && ${command} && tar -cf ../${kind}.tar a.csv ${command.split(' ').at(-1)}`,
    );
    const { error, yielded } = await unpackFailure(fileItem(`${kind}.tar`));
    expectSluiceError(error, 'SLUICE_E_LIMIT', text);
    expect(yielded).toEqual([]);
  });

  it('without the prescan, fails at the bad entry (entries before it were handed on)', async () => {
    const { error, yielded } = await unpackFailure(fileItem('symlink.tar'), { tar_prescan: false });
    expectSluiceError(error, 'SLUICE_E_LIMIT', 'symbolic link');
    expect(yielded).toEqual(['a.csv']);
  });

  it.each([['../evil.txt'], ['a/../../x'], ['/abs']])('refuses the traversal entry %j', async (name) => {
    python(
      `import tarfile, io
t = tarfile.open('trav.tar', 'w')
for n, d in [('good.txt', b'ok'), (${JSON.stringify(name)}, b'evil')]:
    i = tarfile.TarInfo(n); i.size = len(d); t.addfile(i, io.BytesIO(d))
t.close()`,
    );
    const { error, yielded } = await unpackFailure(fileItem('trav.tar'));
    expectSluiceError(error, 'SLUICE_E_LIMIT', name);
    expect(yielded).toEqual([]);
  });

  it('fails a truncated tar with SLUICE_E_BAD_DATA', async () => {
    sh('tar -cf whole.tar -C src . && head -c 700000 whole.tar > truncated.tar');
    const tempDir = join(work, 'spool-truncated');
    for (const tar_prescan of [true, false]) {
      const { error } = await unpackFailure(fileItem('truncated.tar'), { tar_prescan }, tempDir);
      expectSluiceError(error, 'SLUICE_E_BAD_DATA', 'truncated.tar');
    }
    expect(readdirSync(tempDir)).toEqual([]);
  });

  it('fails a truncated tar.gz with SLUICE_E_BAD_DATA, with and without prescan', async () => {
    sh('tar -czf whole.tgz -C src . && head -c 30000 whole.tgz > truncated.tgz');
    for (const tar_prescan of [true, false]) {
      const { error } = await unpackFailure(fileItem('truncated.tgz'), { tar_prescan });
      expectSluiceError(error, 'SLUICE_E_BAD_DATA', 'truncated.tgz');
    }
  });

  it('stops a tar.gz bomb with SLUICE_E_LIMIT', async () => {
    sh(
      'mkdir -p bomb && head -c 30000000 /dev/zero > bomb/zeros && tar -czf bomb.tgz -C bomb zeros && rm bomb/zeros',
    );
    for (const tar_prescan of [true, false]) {
      const { error, yielded } = await unpackFailure(fileItem('bomb.tgz'), { max_ratio: 200, tar_prescan });
      expectSluiceError(error, 'SLUICE_E_LIMIT', 'max_ratio');
      if (tar_prescan) expect(yielded).toEqual([]);
    }
  });

  it('enforces max_entries', async () => {
    const { error } = await unpackFailure(fileItem('gnu.tar'), { max_entries: 3 });
    expectSluiceError(error, 'SLUICE_E_LIMIT', 'max_entries');
  });
});

describe('zip', () => {
  it('unpacks a zip written to a pipe (data descriptors) with UTF-8 and CP437 names, and removes its spool', async () => {
    sh('zip -q -r - . | cat > ../piped.zip', src);
    const tempDir = join(work, 'spool-piped');
    const results = await unpack(fileItem('piped.zip', 'drop/piped.zip'), {}, tempDir);
    expectAllOriginals(results, 'drop/');
    expect(existsSync(tempDir) ? readdirSync(tempDir) : []).toEqual([]);
  });

  it('unpacks stored entries (zip -0) written to a pipe', async () => {
    sh('zip -q -0 -r - . | cat > ../stored.zip', src);
    expectAllOriginals(await unpack(fileItem('stored.zip')), '');
  });

  it('unpacks a zip64 archive (zip -fz)', async () => {
    sh('zip -q -fz -r - . | cat > ../z64.zip', src);
    expectAllOriginals(await unpack(fileItem('z64.zip')), '');
  });

  it('unpacks a zip with a long archive comment', async () => {
    sh(
      `cp piped.zip commented.zip && printf '${'a long archive comment '.repeat(20)}' | zip -q -z commented.zip`,
    );
    expectAllOriginals(await unpack(fileItem('commented.zip')), '');
  });

  it('unpacks a zip with data prepended (self-extractor), offsets not adjusted', async () => {
    sh('head -c 5000 /dev/urandom > sfx.zip && cat piped.zip >> sfx.zip');
    expectAllOriginals(await unpack(fileItem('sfx.zip')), '');
  });

  it('unpacks a python zipfile with flagged UTF-8 names, nested by layout', async () => {
    python(`import zipfile
z = zipfile.ZipFile('py.zip', 'w', zipfile.ZIP_DEFLATED)
z.writestr('dir/ünï 日本.txt', 'hello')
z.writestr('empty/', '')
z.close()`);
    const results = await unpack(fileItem('py.zip', 'a/py.zip'), { layout: 'nest' });
    expect(results.map((r) => [r.path, r.sha256])).toEqual([['a/py/dir/ünï 日本.txt', sha256('hello')]]);
  });

  it('recognises a zip by magic bytes', async () => {
    sh('cp piped.zip zip-without-extension');
    expectAllOriginals(await unpack(fileItem('zip-without-extension')), '');
  });

  it.each([['../evil.txt'], ['a/../../x'], ['/abs'], ['..\\win'], ['C:/x']])(
    'refuses the traversal entry %j before yielding anything, and removes its spool',
    async (name) => {
      python(`import zipfile
z = zipfile.ZipFile('trav.zip', 'w')
z.writestr('good.txt', 'ok')
z.writestr(zipfile.ZipInfo(${JSON.stringify(name)}), 'evil')
z.close()`);
      const tempDir = join(work, 'spool-trav');
      const step = await decompressPlugin.create({}, makePluginContext({ tempDir }));
      const output = (await step.process(fileItem('trav.zip'), makeStepContext())) as AsyncIterable<Item>;
      const yielded: string[] = [];
      const error = await (async () => {
        for await (const item of output) yielded.push(item.path);
      })().catch((err: unknown) => err);
      expectSluiceError(error, 'SLUICE_E_LIMIT', `"${name}"`);
      expect(yielded).toEqual([]);
      expect(readdirSync(tempDir)).toEqual([]);
    },
  );

  it('refuses a symlink entry', async () => {
    sh('rm -rf zl && mkdir zl && cd zl && echo x > t && ln -s t l && zip -q -y ../link.zip t l');
    const { error, yielded } = await unpackFailure(fileItem('link.zip'));
    expectSluiceError(error, 'SLUICE_E_LIMIT', '"l"');
    expect(yielded).toEqual([]);
  });

  it('stops a zip bomb by its declared sizes before yielding anything', async () => {
    python(`import zipfile
z = zipfile.ZipFile('bomb.zip', 'w', zipfile.ZIP_DEFLATED, compresslevel=9)
z.writestr('small.txt', 'ok')
z.writestr('zeros.bin', bytes(30_000_000))
z.close()`);
    const { error, yielded } = await unpackFailure(fileItem('bomb.zip'), { max_ratio: 200 });
    expectSluiceError(error, 'SLUICE_E_LIMIT', 'max_ratio');
    expect(yielded).toEqual([]);
  });

  it('catches an entry that holds more bytes than its central directory declares', async () => {
    python(`import zipfile, struct
z = zipfile.ZipFile('liar.zip', 'w', zipfile.ZIP_DEFLATED)
z.writestr('big.bin', bytes(3_000_000))
z.close()
b = bytearray(open('liar.zip', 'rb').read())
cd = b.index(b'PK\\x01\\x02')
struct.pack_into('<I', b, cd + 24, 1000)
open('liar.zip', 'wb').write(b)`);
    const { error } = await unpackFailure(fileItem('liar.zip'));
    expectSluiceError(error, 'SLUICE_E_BAD_DATA', 'declared 1000');
  });

  it('enforces max_entries and max_entry_size from the central directory', async () => {
    expectSluiceError(
      (await unpackFailure(fileItem('piped.zip'), { max_entries: 2 })).error,
      'SLUICE_E_LIMIT',
      'max_entries',
    );
    expectSluiceError(
      (await unpackFailure(fileItem('piped.zip'), { max_entry_size: '1KiB' })).error,
      'SLUICE_E_LIMIT',
      'max_entry_size',
    );
  });

  it('fails a truncated zip with SLUICE_E_BAD_DATA', async () => {
    sh('head -c 100000 piped.zip > truncated.zip');
    const { error, yielded } = await unpackFailure(fileItem('truncated.zip'));
    expectSluiceError(error, 'SLUICE_E_BAD_DATA', 'truncated.zip');
    expect(yielded).toEqual([]);
  });

  it('fails a zip whose entry data is corrupted with SLUICE_E_BAD_DATA', async () => {
    python(`import zipfile, os
z = zipfile.ZipFile('corrupt.zip', 'w', zipfile.ZIP_STORED)
z.writestr('data.bin', os.urandom(200_000))
z.close()
b = bytearray(open('corrupt.zip', 'rb').read())
b[1000:1010] = bytes(10)
open('corrupt.zip', 'wb').write(b)`);
    const { error } = await unpackFailure(fileItem('corrupt.zip'));
    expectSluiceError(error, 'SLUICE_E_BAD_DATA', 'CRC-32');
  });

  it('hands on a nested .gz and zip as they are, or unpacks them with recursive', async () => {
    sh(
      'rm -rf nest && mkdir -p nest/in && gzip -c src/a.csv > nest/a.csv.gz && cp py.zip nest/in/inner.zip && cd nest && zip -q -r ../outer.zip .',
    );
    const flat = await unpack(fileItem('outer.zip'));
    expect(flat.map((r) => r.path).sort()).toEqual(['a.csv.gz', 'in/inner.zip']);
    const deep = await unpack(fileItem('outer.zip'), { recursive: true });
    expect(deep.map((r) => [r.path, r.sha256]).sort()).toEqual([
      ['a.csv', originals.get('a.csv')],
      ['in/dir/ünï 日本.txt', sha256('hello')],
    ]);
  });

  it('unpacks archives nested in tars with recursive, up to max_depth levels', async () => {
    sh(
      'tar -czf inner.tgz -C src sub && rm -rf tn && mkdir -p tn/1 tn/2 && cp inner.tgz tn/1/ && tar -cf tn/2/middle.tar -C tn/1 inner.tgz && tar -cf outer.tar -C tn/2 middle.tar',
    );
    const deep = await unpack(fileItem('outer.tar'), { recursive: true });
    expect(deep.map((r) => [r.path, r.sha256])).toEqual([['sub/b.bin', originals.get('sub/b.bin')]]);
    const shallow = await unpack(fileItem('outer.tar'), { recursive: true, max_depth: 1 });
    expect(shallow.map((r) => r.path)).toEqual(['inner.tgz']);
  });
});
