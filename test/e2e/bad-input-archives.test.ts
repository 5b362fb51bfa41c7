/**
 * Reliability corpus, part 1: broken, hostile and huge compressed files and archives, made by
 * real gzip, GNU tar, Info-ZIP zip and python3 (zipfile/tarfile) at test time, all in one real
 * run of a local → decompress → local pipeline with `after_success: delete`, beside good files.
 * Each case asserts the item's error code and message, that nothing of it reached the sink,
 * that its source file is still there, and that the good files of the same run went through.
 * Listed case by case in docs/reliability.md.
 */
import { execFileSync, execSync } from 'node:child_process';
import { createReadStream, mkdirSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../core/runtime/runner.js';
import { runPipelineFile } from '../../core/sdk.js';
import { hashStream } from '../../core/streams.js';
import { listFiles, makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-bad-archives-');
afterAll(() => ws.cleanup());

const sh = (command: string, cwd = ws.dir) =>
  execSync(command, { cwd, stdio: ['ignore', 'ignore', 'pipe'], shell: '/bin/bash' });
const python = (script: string) =>
  execFileSync('python3', ['-c', script], { cwd: ws.path('in'), stdio: ['ignore', 'ignore', 'pipe'] });

interface BadCase {
  /** Test name (the input as docs/reliability.md lists it). */
  name: string;
  /** Source file, relative to in/. */
  file: string;
  code: 'SLUICE_E_BAD_DATA' | 'SLUICE_E_LIMIT';
  message: RegExp;
}

const BAD: BadCase[] = [
  {
    name: 'corrupt gzip (bytes overwritten mid-stream)',
    file: 'gz/corrupt.csv.gz',
    code: 'SLUICE_E_BAD_DATA',
    message:
      /"gz\/corrupt\.csv\.gz": not a valid gzip file \(invalid (distance too far back|block type|stored block lengths|code lengths set)/,
  },
  {
    name: 'truncated gzip',
    file: 'gz/truncated.csv.gz',
    code: 'SLUICE_E_BAD_DATA',
    message: /"gz\/truncated\.csv\.gz": not a valid gzip file \(unexpected end of file\)/,
  },
  {
    name: 'plain text named .gz',
    file: 'gz/fake.csv.gz',
    code: 'SLUICE_E_BAD_DATA',
    message: /"gz\/fake\.csv\.gz": not a valid gzip file \(incorrect header check\)/,
  },
  {
    name: 'empty (0-byte) .gz',
    file: 'gz/empty.csv.gz',
    code: 'SLUICE_E_BAD_DATA',
    message: /"gz\/empty\.csv\.gz": not a valid gzip file \(unexpected end of file\)/,
  },
  {
    name: 'gzip bomb (2.5 MB of zeros in ~2.5 KB, max_ratio 200)',
    file: 'gz/bomb.bin.gz',
    code: 'SLUICE_E_LIMIT',
    message: /archive "gz\/bomb\.bin\.gz": expands more than 200× .*max_ratio\): likely a decompression bomb/,
  },
  {
    name: 'corrupt tar (header overwritten)',
    file: 'tar-corrupt/corrupt.tar',
    code: 'SLUICE_E_BAD_DATA',
    message: /"tar-corrupt\/corrupt\.tar": not a valid tar archive \(Invalid tar header/,
  },
  {
    name: 'truncated tar (cut inside the 3rd entry)',
    file: 'tar-truncated/truncated.tar',
    code: 'SLUICE_E_BAD_DATA',
    message: /"tar-truncated\/truncated\.tar": not a valid tar archive \(Unexpected end of data\)/,
  },
  {
    name: 'truncated tar.gz',
    file: 'tgz-truncated/truncated.tar.gz',
    code: 'SLUICE_E_BAD_DATA',
    message:
      /"tgz-truncated\/truncated\.tar\.gz": not a valid (tar\.gz archive|gzip file) \(unexpected end of file\)/,
  },
  {
    name: 'tar with a symbolic link (after a good entry)',
    file: 'tar-symlink/symlink.tar',
    code: 'SLUICE_E_LIMIT',
    message: /archive "tar-symlink\/symlink\.tar": entry "link" is a symbolic link; links are refused/,
  },
  {
    name: 'tar with a ../ entry (after a good entry)',
    file: 'tar-dotdot/dotdot.tar',
    code: 'SLUICE_E_LIMIT',
    message: /archive "tar-dotdot\/dotdot\.tar": entry "\.\.\/evil\.txt" escapes the archive folder/,
  },
  {
    name: 'tar with an absolute entry',
    file: 'tar-abs/abs.tar',
    code: 'SLUICE_E_LIMIT',
    message: /archive "tar-abs\/abs\.tar": entry "\/tmp\/evil\.txt" is an absolute path/,
  },
  {
    name: 'corrupt zip (deflate data overwritten)',
    file: 'zip-corrupt/corrupt.zip',
    code: 'SLUICE_E_BAD_DATA',
    message: /"zip-corrupt\/corrupt\.zip": not a valid zip archive/,
  },
  {
    name: 'truncated zip (no central directory)',
    file: 'zip-truncated/truncated.zip',
    code: 'SLUICE_E_BAD_DATA',
    message:
      /"zip-truncated\/truncated\.zip": not a valid zip \(no end of central directory record; truncated\?\)/,
  },
  {
    name: 'empty (0-byte) .zip',
    file: 'zip-empty/empty.zip',
    code: 'SLUICE_E_BAD_DATA',
    message: /"zip-empty\/empty\.zip": not a valid zip \(no end of central directory record/,
  },
  {
    name: 'zip entry ../evil',
    file: 'zip-dotdot/dotdot.zip',
    code: 'SLUICE_E_LIMIT',
    message: /archive "zip-dotdot\/dotdot\.zip": entry "\.\.\/evil" escapes the archive folder/,
  },
  {
    name: 'zip entry /abs',
    file: 'zip-abs/abs.zip',
    code: 'SLUICE_E_LIMIT',
    message: /archive "zip-abs\/abs\.zip": entry "\/abs" is an absolute path/,
  },
  {
    name: 'zip entry ..\\win',
    file: 'zip-win/win.zip',
    code: 'SLUICE_E_LIMIT',
    message: /archive "zip-win\/win\.zip": entry "\.\.\\win" escapes the archive folder/,
  },
  {
    name: 'zip entry C:x',
    file: 'zip-drive/drive.zip',
    code: 'SLUICE_E_LIMIT',
    message: /archive "zip-drive\/drive\.zip": entry "C:x" starts with a drive letter/,
  },
  {
    name: 'zip bomb (2.5 MB of zeros deflated to ~2.5 KB)',
    file: 'zip-bomb/bomb.zip',
    code: 'SLUICE_E_LIMIT',
    message: /archive "zip-bomb\/bomb\.zip": expands more than 200× .*likely a decompression bomb/,
  },
  {
    name: 'zip with too many entries (30 > max_entries 20)',
    file: 'zip-many/many.zip',
    code: 'SLUICE_E_LIMIT',
    message: /archive "zip-many\/many\.zip": holds 30 entries, more than 20 \(max_entries\)/,
  },
  {
    name: 'zip with an encrypted entry (zip -P)',
    file: 'zip-encrypted/encrypted.zip',
    code: 'SLUICE_E_BAD_DATA',
    message: /"zip-encrypted\/encrypted\.zip": entry "plain\.txt" is encrypted \(not supported\)/,
  },
  {
    name: 'zip over max_total_size (4 × 1 MiB, limit 3 MiB)',
    file: 'zip-total/total.zip',
    code: 'SLUICE_E_LIMIT',
    message: /"zip-total\/total\.zip".*(max_total_size)/,
  },
];

/** Good inputs of the same run, and the files they must leave in the sink. */
const GOOD_OUTPUT = [
  'good/plain.txt',
  'good/plain.csv',
  'good/a.txt',
  'good/b.txt',
  'good/empty.txt',
  'nested/n2.tar.gz',
].sort();

let summary: RunSummary;
const failureOf = (file: string) => summary.failures.find((f) => f.path === file);

beforeAll(async () => {
  for (const d of ['gz', 'good/src', 'nested/src', 'tarsrc', 'zipsrc'])
    mkdirSync(ws.path('in', d), { recursive: true });
  // Inputs made by the real tools.
  sh('seq 1 20000 > plain.txt', ws.path('in'));
  sh(
    `gzip -c plain.txt > gz/corrupt.csv.gz && printf '\\xff\\xff\\xff\\xff\\x00\\x00\\xff\\xff' | dd of=gz/corrupt.csv.gz bs=1 seek=2000 conv=notrunc status=none`,
    ws.path('in'),
  );
  sh('gzip -c plain.txt > gz/truncated.csv.gz && truncate -s 3000 gz/truncated.csv.gz', ws.path('in'));
  sh("printf 'this is not gzip' > gz/fake.csv.gz && : > gz/empty.csv.gz", ws.path('in'));
  sh('head -c 2500000 /dev/zero | gzip -9 > gz/bomb.bin.gz', ws.path('in'));
  sh('rm plain.txt', ws.path('in'));
  // tar: a.txt, b.txt, then a big third entry.
  sh('echo a > tarsrc/a.txt && echo b > tarsrc/b.txt && seq 1 50000 > tarsrc/big.txt', ws.path('in'));
  sh(
    'mkdir tar-corrupt tar-truncated tgz-truncated tar-symlink && tar -cf tar-corrupt/corrupt.tar -C tarsrc . && printf "garbage!garbage!" | dd of=tar-corrupt/corrupt.tar bs=1 seek=100 conv=notrunc status=none',
    ws.path('in'),
  );
  sh(
    'tar -cf tar-truncated/truncated.tar -C tarsrc a.txt b.txt big.txt && truncate -s 20000 tar-truncated/truncated.tar',
    ws.path('in'),
  );
  sh(
    'tar -czf tgz-truncated/truncated.tar.gz -C tarsrc a.txt b.txt big.txt && truncate -s 20000 tgz-truncated/truncated.tar.gz',
    ws.path('in'),
  );
  sh(
    'ln -s /etc/passwd tarsrc/link && tar -cf tar-symlink/symlink.tar -C tarsrc a.txt link && rm tarsrc/link',
    ws.path('in'),
  );
  // zip
  sh(
    'mkdir zip-corrupt zip-truncated zip-encrypted zip-empty && zip -q zip-corrupt/corrupt.zip tarsrc/big.txt && printf garbagegarbage | dd of=zip-corrupt/corrupt.zip bs=1 seek=2000 conv=notrunc status=none',
    ws.path('in'),
  );
  sh(
    'zip -q -j zip-truncated/truncated.zip tarsrc/big.txt tarsrc/a.txt && truncate -s 30000 zip-truncated/truncated.zip && : > zip-empty/empty.zip',
    ws.path('in'),
  );
  sh(
    'seq 1 1000 > plain.txt && zip -q -P s3cretZip zip-encrypted/encrypted.zip plain.txt && rm plain.txt',
    ws.path('in'),
  );
  python(`
import io, os, tarfile, zipfile
def tar(name, entries):
    os.makedirs(os.path.dirname(name), exist_ok=True)
    with tarfile.open(name, 'w') as t:
        for n, d in entries:
            info = tarfile.TarInfo(n); info.size = len(d); t.addfile(info, io.BytesIO(d))
def zipped(name, entries, **kw):
    os.makedirs(os.path.dirname(name), exist_ok=True)
    with zipfile.ZipFile(name, 'w', **kw) as z:
        for n, d in entries: z.writestr(n, d)
tar('tar-dotdot/dotdot.tar', [('first.txt', b'first'), ('../evil.txt', b'evil')])
tar('tar-abs/abs.tar', [('first.txt', b'first'), ('/tmp/evil.txt', b'evil')])
zipped('zip-dotdot/dotdot.zip', [('first.txt', 'first'), ('../evil', 'evil')])
zipped('zip-abs/abs.zip', [('first.txt', 'first'), ('/abs', 'evil')])
zipped('zip-win/win.zip', [('first.txt', 'first'), ('..\\\\win', 'evil')])
zipped('zip-drive/drive.zip', [('first.txt', 'first'), ('C:x', 'evil')])
zipped('zip-bomb/bomb.zip', [('first.txt', 'first'), ('zeros.bin', b'\\0' * 2_500_000)], compression=zipfile.ZIP_DEFLATED)
zipped('zip-many/many.zip', [('f%02d.txt' % i, 'x') for i in range(30)])
zipped('zip-total/total.zip', [('part%d.txt' % i, os.urandom(1024 * 1024)) for i in range(4)])
zipped('good/ok.zip', [('a.txt', 'a'), ('b.txt', 'b')])
`);
  // Good inputs: a gzip file, a plain file, an empty plain file, a zip.
  sh(
    'seq 1 100 > good/src/plain.csv && gzip -c good/src/plain.csv > good/plain.csv.gz && mv good/src/plain.csv good/src/../plain.txt && rmdir good/src && : > good/empty.txt',
    ws.path('in'),
  );
  // Nested: n4.zip ⊃ n3.zip ⊃ n2.tar.gz ⊃ x.txt; with max_depth 1 the tar.gz comes out whole.
  sh(
    'echo deep > nested/src/x.txt && tar -czf nested/src/n2.tar.gz -C nested/src x.txt && (cd nested/src && zip -q n3.zip n2.tar.gz && zip -q ../n4.zip n3.zip) && rm -r nested/src',
    ws.path('in'),
  );
  sh('rm -r tarsrc zipsrc', ws.path('in'));

  const file = ws.pipeline(`name: bad-archives
source:
  local: { path: ./in, after_success: delete }
steps:
  - decompress: { max_entries: 20, max_total_size: 3MiB, recursive: true, max_depth: 1 }
sink:
  local: { path: ./out }
`);
  summary = await runPipelineFile(file);
}, 120_000);

describe('bad archives and compressed files, one run beside good files', () => {
  for (const c of BAD) {
    it(c.name, () => {
      const failure = failureOf(c.file);
      expect(
        failure,
        `no failure recorded for ${c.file}; failures: ${JSON.stringify(summary.failures, null, 1)}`,
      ).toBeDefined();
      expect(failure?.code).toBe(c.code);
      expect(failure?.error).toMatch(c.message);
      expect(failure?.error).not.toMatch(/\n\s+at /); // no stack trace
      // Nothing of the bad item was committed: nothing under its folder in the sink.
      const folder = c.file.split('/')[0];
      expect(listFiles(ws.path('out', folder))).toEqual([]);
      // Its source is kept (after_success: delete applies to finalized items only).
      expect(statSync(ws.path('in', c.file)).isFile()).toBe(true);
    });
  }

  it('fails exactly the bad items, and the good ones still succeed (and are deleted at the source)', () => {
    expect(summary.failed).toBe(BAD.length);
    expect(summary.failures.map((f) => f.path).sort()).toEqual(BAD.map((c) => c.file).sort());
    expect(summary.ok).toBe(5); // plain.txt, plain.csv.gz, empty.txt, ok.zip, n4.zip
    const out = listFiles(ws.path('out'));
    expect(out).toEqual(GOOD_OUTPUT);
    expect(ws.read('out/good/a.txt')).toBe('a');
    expect(ws.read('out/good/plain.csv').split('\n')[99]).toBe('100');
    expect(listFiles(ws.path('in'))).toEqual(BAD.map((c) => c.file).sort());
  });

  it('leaves no temp file in the sink and no spool in the state folder', () => {
    expect(listFiles(ws.path('out', '.sluice-tmp'))).toEqual([]);
    expect(listFiles(ws.path('.sluice', 'tmp'))).toEqual([]);
  });

  it('nested archives deeper than max_depth come out whole (documented), not unpacked', () => {
    // n4.zip (top) → n3.zip (depth 1, unpacked) → n2.tar.gz (beyond max_depth: passed on as a file).
    expect(listFiles(ws.path('out', 'nested'))).toEqual(['n2.tar.gz']);
    sh(`tar -tzf ${ws.path('out', 'nested', 'n2.tar.gz')}`);
  });
});

describe('a large file', () => {
  it('200 MiB of zeros through compress → decompress: same bytes out, memory flat', async () => {
    const big = ws.path('big', 'in', 'zeros.bin');
    mkdirSync(ws.path('big', 'in'), { recursive: true });
    const size = 200 * 1024 * 1024;
    sh(`truncate -s ${size} ${big}`); // sparse: no disk used by the input
    const file = ws.pipeline(
      `name: big
source:
  local: { path: ./in }
steps:
  - compress: { format: gzip, level: 1 }
  - decompress: { max_ratio: 5000 }
sink:
  local: { path: ./out }
`,
      'big/pipeline.yaml',
    );
    const expected = await hashStream(createReadStream(big));
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    let s: RunSummary;
    try {
      s = await runPipelineFile(file);
    } finally {
      clearInterval(sampler);
    }
    expect(s.failures).toEqual([]);
    expect(s.ok).toBe(1);
    expect(s.compression.bytesIn).toBe(size);
    expect(s.compression.bytesOut).toBeLessThan(size / 100);
    const out = await hashStream(createReadStream(ws.path('big', 'out', 'zeros.bin')));
    expect(out).toEqual(expected);
    // Streaming: memory must not grow with the file (200 MiB); a few MiB-sized buffers are fine.
    expect(peak - baseline).toBeLessThan(120 * 1024 * 1024);
  }, 120_000);
});
