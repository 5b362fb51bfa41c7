/** checksum against companions written by the real coreutils tools (sha256sum, md5sum, sha1sum). */
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createItem } from '../../core/item.js';
import type { Item } from '../../core/plugin-api.js';
import { checksumPlugin } from '../../plugins/checksum/checksum.js';
import { makePluginContext, makeStepContext } from '../helpers/context.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-checksum-'));
const dataPath = join(dir, 'data.csv');
writeFileSync(dataPath, Buffer.alloc(3 * 1024 * 1024 + 17, 'id,value\n1,2\n'));
const tool = (name: string, file = 'data.csv') => execFileSync(name, [file], { cwd: dir }).toString();
const digestOf = (name: string) => tool(name).split(' ')[0];

function item(checksums: Record<string, string> = {}): Item {
  return createItem({
    source: 'local',
    path: 'in/data.csv',
    checksums,
    open: async () => createReadStream(dataPath),
  });
}

async function drain(stream: Readable): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  return bytes;
}

async function run(
  config: Record<string, unknown>,
  siblings: Record<string, () => Readable> = {},
  input = item(),
) {
  const step = await checksumPlugin.create(config as never, makePluginContext());
  const out = (await step.process(input, makeStepContext({ siblings }))) as Item;
  return { step, out, bytes: () => out.open().then(drain) };
}

const text = (s: string) => () => Readable.from([Buffer.from(s)]);

describe('checksum', () => {
  it('passes bytes unchanged when the per-file companion (sha256sum output) matches', async () => {
    const { out, bytes, step } = await run(
      { algorithm: 'sha256', expect: 'companion', required: true },
      {
        'data.csv.sha256': text(tool('sha256sum')),
      },
    );
    expect(out.checksums.sha256).toBe(digestOf('sha256sum'));
    expect(await bytes()).toBe(3 * 1024 * 1024 + 17);
    expect(step.isCompanion?.('in/data.csv.sha256')).toBe(true);
    expect(step.isCompanion?.('in/MD5SUMS')).toBe(true);
  });

  it('finds the file in an MD5SUMS listing and in a SHA1 BSD-tag companion', async () => {
    const md5 = await run(
      { algorithm: 'md5', expect: 'companion', required: true },
      {
        MD5SUMS: text(`${'0'.repeat(32)}  other.csv\n${tool('md5sum')}`),
      },
    );
    expect(await md5.bytes()).toBeGreaterThan(0);
    const sha1 = await run(
      { algorithm: 'sha1', expect: 'companion', required: true },
      {
        'data.csv.sha1': text(execFileSync('sha1sum', ['--tag', 'data.csv'], { cwd: dir }).toString()),
      },
    );
    expect(sha1.out.checksums.sha1).toBe(digestOf('sha1sum'));
    expect(await sha1.bytes()).toBeGreaterThan(0);
  });

  it('errors the stream before it ends on a mismatch', async () => {
    const wrong = `${'f'.repeat(64)}  data.csv\n`;
    const { out } = await run(
      { algorithm: 'sha256', expect: 'companion', required: true },
      { 'data.csv.sha256': text(wrong) },
    );
    const stream = await out.open();
    let ended = false;
    stream.on('end', () => {
      ended = true;
    });
    await expect(drain(stream)).rejects.toMatchObject({ code: 'SLUICE_E_BAD_DATA', retryable: false });
    expect(ended).toBe(false);
  });

  it('compares with the source metadata and with a literal value', async () => {
    const md5 = digestOf('md5sum');
    const meta = await run({ algorithm: 'md5', expect: 'metadata', required: true }, {}, item({ md5 }));
    expect(await meta.bytes()).toBeGreaterThan(0);
    const badMeta = await run(
      { algorithm: 'md5', expect: 'metadata', required: true },
      {},
      item({ md5: '0'.repeat(32) }),
    );
    await expect(badMeta.bytes()).rejects.toThrow(/md5 mismatch/);
    const literal = await run({
      algorithm: 'sha256',
      expect: digestOf('sha256sum').toUpperCase(),
      required: true,
    });
    expect(await literal.bytes()).toBeGreaterThan(0);
  });

  it('fails a missing expectation only when required', async () => {
    await expect(run({ algorithm: 'sha256', expect: 'companion', required: true })).rejects.toThrow(
      /no companion/,
    );
    const optional = await run({ algorithm: 'crc32c', expect: 'companion', required: false });
    expect(optional.out.checksums.crc32c).toBeUndefined();
    expect(await optional.bytes()).toBe(3 * 1024 * 1024 + 17);
  });

  it('rejects a literal of the wrong length at create()', async () => {
    await expect(run({ algorithm: 'sha256', expect: 'abcdef12', required: true })).rejects.toMatchObject({
      code: 'SLUICE_E_CONFIG',
      context: { jsonPath: '/expect' },
    });
  });
});
