/**
 * pgp_decrypt / pgp_encrypt against real GnuPG: keys (RSA 2048 and ed25519/cv25519) and
 * messages are made by `gpg` at test time in a throwaway GNUPGHOME. Every behaviour is checked
 * for both engines (gpg child process, openpgp.js), and decryption also for the gpg engine's
 * small messages, which openpgp.js decrypts in-process first.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createItem } from '../../core/item.js';
import type { Item, StepInstance } from '../../core/plugin-api.js';
import { pgpDecryptPlugin } from '../../plugins/pgp/decrypt.js';
import { pgpEncryptPlugin } from '../../plugins/pgp/encrypt.js';
import { makePluginContext, makeStepContext } from '../helpers/context.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-pgp-'));
const home = join(dir, 'gnupg');
const RSA_PASSPHRASE = 'rsa-secret-passphrase';
const SIGNER_PASSPHRASE = 'signer-secret-passphrase';
const file = (name: string) => join(dir, name);

function gpg(args: string[], input?: Buffer | string): Buffer {
  return execFileSync('gpg', ['--homedir', home, '--batch', '--yes', '--trust-model', 'always', ...args], {
    input,
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
}

function genKey(params: string): void {
  writeFileSync(file('params'), params);
  // The passphrase on the command line as well, as test/helpers/gpg-keys.ts does (see secrets.test.ts).
  const passphrase = /^Passphrase: (.*)$/m.exec(params)?.[1] ?? '';
  gpg(['--pinentry-mode', 'loopback', '--passphrase', passphrase, '--gen-key', file('params')]);
}

function tamper(source: string, target: string, at: (length: number) => number): void {
  const bytes = readFileSync(file(source));
  bytes[at(bytes.length)] ^= 0x01;
  writeFileSync(file(target), bytes);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
let plaintext: Buffer;

beforeAll(() => {
  mkdirSync(home, { mode: 0o700 });
  genKey(
    `Key-Type: RSA\nKey-Length: 2048\nSubkey-Type: RSA\nSubkey-Length: 2048\nName-Real: Rsa\nName-Email: rsa@example.com\nPassphrase: ${RSA_PASSPHRASE}\nExpire-Date: 0\n%commit\n`,
  );
  genKey(
    '%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nSubkey-Type: ecdh\nSubkey-Curve: cv25519\nName-Real: Ecc\nName-Email: ecc@example.com\nExpire-Date: 0\n%commit\n',
  );
  genKey(
    `Key-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: Signer\nName-Email: signer@example.com\nPassphrase: ${SIGNER_PASSPHRASE}\nExpire-Date: 0\n%commit\n`,
  );
  const exportSecret = (who: string, pass: string, armor: boolean) =>
    gpg([
      '--pinentry-mode',
      'loopback',
      '--passphrase',
      pass,
      ...(armor ? ['--armor'] : []),
      '--export-secret-keys',
      who,
    ]);
  writeFileSync(file('rsa.sec.asc'), exportSecret('rsa@example.com', RSA_PASSPHRASE, true));
  writeFileSync(file('ecc.sec.gpg'), exportSecret('ecc@example.com', '', false));
  writeFileSync(file('signer.sec.asc'), exportSecret('signer@example.com', SIGNER_PASSPHRASE, true));
  for (const who of ['rsa', 'ecc', 'signer'])
    writeFileSync(file(`${who}.pub.asc`), gpg(['--armor', '--export', `${who}@example.com`]));

  // 1 MiB: compressible CSV lines with random values in them.
  const lines: string[] = [];
  for (let i = 0, size = 0; size < 1024 * 1024; i++) {
    lines.push(`${i},${Math.random().toString(36)},row ${i}\n`);
    size += lines[i].length;
  }
  plaintext = Buffer.from(lines.join(''));
  writeFileSync(file('data.csv'), plaintext);

  const encrypt = (out: string, extra: string[]) => gpg(['-o', file(out), ...extra, '-e', file('data.csv')]);
  const signArgs = [
    '--pinentry-mode',
    'loopback',
    '--passphrase',
    SIGNER_PASSPHRASE,
    '-u',
    'signer@example.com',
  ];
  encrypt('rsa-zlib.csv.gpg', ['-r', 'rsa@example.com']);
  encrypt('rsa-plain.csv.gpg', ['-r', 'rsa@example.com', '--compress-algo', 'none']);
  encrypt('rsa-armored.csv.asc', ['-r', 'rsa@example.com', '--armor']);
  encrypt('ecc.csv.pgp', ['-r', 'ecc@example.com']);
  encrypt('signed.csv.gpg', ['-r', 'rsa@example.com', ...signArgs, '-s']);
  encrypt('stranger-signed.csv.gpg', ['-r', 'rsa@example.com', '-u', 'ecc@example.com', '-s']);
  gpg([...signArgs, '--detach-sign', '-o', file('detached.sig'), file('rsa-zlib.csv.gpg')]);
  gpg([...signArgs, '--armor', '--detach-sign', '-o', file('detached.asc'), file('rsa-zlib.csv.gpg')]);
  gpg([...signArgs, '--detach-sign', '-o', file('other-file.sig'), file('rsa-plain.csv.gpg')]);
  tamper('rsa-plain.csv.gpg', 'tampered-middle-plain.csv.gpg', (n) => Math.floor(n / 2));
  tamper('rsa-zlib.csv.gpg', 'tampered-middle-zlib.csv.gpg', (n) => Math.floor(n / 2));
  tamper('rsa-plain.csv.gpg', 'tampered-end-plain.csv.gpg', (n) => n - 5);
  tamper('rsa-zlib.csv.gpg', 'tampered-end-zlib.csv.gpg', (n) => n - 5);
}, 60_000);

afterAll(() => {
  execFileSync('gpgconf', ['--homedir', home, '--kill', 'all']);
  rmSync(dir, { recursive: true, force: true });
});

/** An item of the file `name`; `sized`: with its size, as a listing gives it. */
function itemOf(name: string, sized = false): Item {
  return createItem({
    source: 'sftp',
    path: `in/${name}`,
    ...(sized ? { size: statSync(file(name)).size } : {}),
    open: async () => createReadStream(file(name)),
  });
}

/** Reads a stream to its end, noting whether it ended cleanly. */
async function consume(
  stream: Readable,
): Promise<{ digest: string; ended: boolean; error?: Error & { code?: string } }> {
  const hash = createHash('sha256');
  let ended = false;
  stream.on('end', () => {
    ended = true;
  });
  try {
    for await (const chunk of stream) hash.update(chunk as Buffer);
    return { digest: hash.digest('hex'), ended };
  } catch (error) {
    return { digest: '', ended, error: error as Error & { code?: string } };
  }
}

const siblingsOf = (names: Record<string, string>) =>
  Object.fromEntries(
    Object.entries(names).map(([sibling, real]) => [sibling, () => createReadStream(file(real))]),
  );

// Items of a listed size within in_process_max take the gpg engine's in-process path first
// (in-process.ts); items without a size go through gpg itself.
describe.each([
  ['gpg', false],
  ['gpg', true],
  ['openpgp', false],
] as const)('pgp_decrypt with engine %s (listed size: %s)', (engine, sized) => {
  // One step per distinct config: each gpg-engine step starts its own gpg-agent.
  const steps = new Map<string, Promise<StepInstance>>();
  function decryptor(config: Record<string, unknown>): Promise<StepInstance> {
    const key = JSON.stringify(config);
    if (!steps.has(key)) {
      steps.set(
        key,
        Promise.resolve(
          pgpDecryptPlugin.create({ engine, ...config } as never, makePluginContext({ baseDir: dir })),
        ),
      );
    }
    return steps.get(key)!;
  }
  const rsaKey = { private_key_file: 'rsa.sec.asc', passphrase: RSA_PASSPHRASE };
  const verifyConfig = { public_key_files: ['signer.pub.asc'], required: true };

  async function decrypt(step: StepInstance, name: string, siblings: Record<string, string> = {}) {
    const out = (await step.process(
      itemOf(name, sized),
      makeStepContext({ siblings: siblingsOf(siblings) }),
    )) as Item;
    return { out, ...(await consume(await out.open())) };
  }

  afterAll(async () => {
    for (const step of steps.values()) await (await step).close?.();
  });

  it('decrypts binary (zlib and uncompressed) and armored messages with a protected RSA key', async () => {
    const step = await decryptor(rsaKey);
    for (const name of ['rsa-zlib.csv.gpg', 'rsa-plain.csv.gpg', 'rsa-armored.csv.asc']) {
      const result = await decrypt(step, name);
      expect(result.error).toBeUndefined();
      expect(result.digest).toBe(sha256(plaintext));
      expect(result.out.path).toBe(`in/${name.replace(/\.(gpg|asc)$/, '')}`);
    }
  });

  it('decrypts with an unprotected binary ed25519/cv25519 key from an environment variable', async () => {
    process.env.SLUICE_TEST_ECC_KEY = gpg(['--armor', '--export-secret-keys', 'ecc@example.com']).toString();
    const step = await decryptor({ private_key_env: 'SLUICE_TEST_ECC_KEY' });
    const result = await decrypt(step, 'ecc.csv.pgp');
    expect(result.digest).toBe(sha256(plaintext));
    expect(result.out.path).toBe('in/ecc.csv');
    const binaryKeyStep = await decryptor({ private_key_file: 'ecc.sec.gpg' });
    expect((await decrypt(binaryKeyStep, 'ecc.csv.pgp')).digest).toBe(sha256(plaintext));
  });

  it.each([
    'tampered-middle-plain.csv.gpg',
    'tampered-middle-zlib.csv.gpg',
    'tampered-end-plain.csv.gpg',
    'tampered-end-zlib.csv.gpg',
  ])('errors the stream before its end on a tampered message (%s)', async (name) => {
    const step = await decryptor(rsaKey);
    const result = await decrypt(step, name);
    expect(result.ended).toBe(false);
    expect(result.error).toMatchObject({ code: 'SLUICE_E_BAD_DATA', retryable: false });
    // A sink writing to a file sees the error, not a clean end: pipeline rejects.
    const out = (await step.process(itemOf(name, sized), makeStepContext())) as Item;
    await expect(
      pipeline(await out.open(), createWriteStream(file(`sink-${engine}-${name}`))),
    ).rejects.toThrow();
  });

  it('fails clearly, without retries and without secrets, when the key does not fit', async () => {
    const step = await decryptor({ private_key_file: 'ecc.sec.gpg' });
    const result = await decrypt(step, 'rsa-zlib.csv.gpg');
    expect(result.ended).toBe(false);
    expect(result.error).toMatchObject({ code: 'SLUICE_E_BAD_DATA', retryable: false });
    expect(result.error?.message).toMatch(/decrypt|secret key|session key/i);
    expect(result.error?.message).not.toContain(RSA_PASSPHRASE);
  });

  it('accepts a required inline signature by a configured key', async () => {
    const step = await decryptor({ ...rsaKey, verify_signature: verifyConfig });
    const result = await decrypt(step, 'signed.csv.gpg');
    expect(result.error).toBeUndefined();
    expect(result.digest).toBe(sha256(plaintext));
  });

  it('fails a required signature that is missing or by an unknown key', async () => {
    const step = await decryptor({ ...rsaKey, verify_signature: verifyConfig });
    for (const name of ['rsa-zlib.csv.gpg', 'stranger-signed.csv.gpg']) {
      const result = await decrypt(step, name);
      expect(result.ended).toBe(false);
      expect(result.error).toMatchObject({ code: 'SLUICE_E_BAD_DATA' });
      expect(result.error?.message).toMatch(/no valid PGP signature/);
    }
    const optional = await decryptor({ ...rsaKey, verify_signature: { ...verifyConfig, required: false } });
    expect((await decrypt(optional, 'stranger-signed.csv.gpg')).digest).toBe(sha256(plaintext));
  });

  it('verifies detached .sig and armored .asc signatures over the encrypted file while streaming', async () => {
    const step = await decryptor({ ...rsaKey, verify_signature: verifyConfig });
    for (const sibling of ['rsa-zlib.csv.gpg.sig', 'rsa-zlib.csv.gpg.asc']) {
      const real = sibling.endsWith('.sig') ? 'detached.sig' : 'detached.asc';
      const result = await decrypt(step, 'rsa-zlib.csv.gpg', { [sibling]: real });
      expect(result.error).toBeUndefined();
      expect(result.digest).toBe(sha256(plaintext));
    }
    expect(step.isCompanion?.('in/x.csv.gpg.sig')).toBe(true);
    expect(step.isCompanion?.('in/x.csv.gpg.asc')).toBe(true);
    expect(step.isCompanion?.('in/x.csv.asc')).toBe(false);
  });

  it('fails on a detached signature that does not match the file', async () => {
    const step = await decryptor({ ...rsaKey, verify_signature: verifyConfig });
    const result = await decrypt(step, 'rsa-zlib.csv.gpg', { 'rsa-zlib.csv.gpg.sig': 'other-file.sig' });
    expect(result.ended).toBe(false);
    expect(result.error).toMatchObject({ code: 'SLUICE_E_BAD_DATA' });
    expect(result.error?.message).toMatch(/bad PGP signature/);
  });
});

describe.each(['gpg', 'openpgp'] as const)('pgp_encrypt with engine %s', (engine) => {
  it.each([false, true])('round-trips through gpg --decrypt (armor %s, signed)', async (armor) => {
    const step = await pgpEncryptPlugin.create(
      {
        engine,
        armor,
        public_key_files: ['rsa.pub.asc', 'ecc.pub.asc'],
        signing_key_file: 'signer.sec.asc',
        passphrase: SIGNER_PASSPHRASE,
      } as never,
      makePluginContext({ baseDir: dir }),
    );
    try {
      const out = (await step.process(itemOf('data.csv'), makeStepContext())) as Item;
      expect(out.path).toBe(armor ? 'in/data.csv.asc' : 'in/data.csv.gpg');
      const chunks: Buffer[] = [];
      for await (const chunk of await out.open()) chunks.push(chunk as Buffer);
      const message = Buffer.concat(chunks);
      expect(message.subarray(0, 27).toString() === '-----BEGIN PGP MESSAGE-----').toBe(armor);
      writeFileSync(file(`encrypted-${engine}-${armor}`), message);
      const status = join(dir, `status-${engine}-${armor}`);
      const decrypted = gpg([
        '--pinentry-mode',
        'loopback',
        '--passphrase',
        RSA_PASSPHRASE,
        '--status-file',
        status,
        '--decrypt',
        file(`encrypted-${engine}-${armor}`),
      ]);
      expect(sha256(decrypted)).toBe(sha256(plaintext));
      expect(readFileSync(status, 'utf8')).toMatch(/GOODSIG .* Signer/);
    } finally {
      await step.close?.();
    }
  });

  it('decrypts what it encrypted with pgp_decrypt (the other engine included)', async () => {
    const encryptor = await pgpEncryptPlugin.create(
      { engine, armor: false, public_keys: [readFileSync(file('ecc.pub.asc'), 'utf8')] } as never,
      makePluginContext({ baseDir: dir }),
    );
    const other = engine === 'gpg' ? 'openpgp' : 'gpg';
    const decryptor = await pgpDecryptPlugin.create(
      { engine: other, private_key_file: 'ecc.sec.gpg' } as never,
      makePluginContext({ baseDir: dir }),
    );
    try {
      const encrypted = (await encryptor.process(itemOf('data.csv'), makeStepContext())) as Item;
      const decrypted = (await decryptor.process(encrypted, makeStepContext())) as Item;
      expect(decrypted.path).toBe('in/data.csv');
      expect((await consume(await decrypted.open())).digest).toBe(sha256(plaintext));
    } finally {
      await encryptor.close?.();
      await decryptor.close?.();
    }
  });
});

it('reads a stream that is empty as bad data', async () => {
  const step = await pgpDecryptPlugin.create(
    { engine: 'openpgp', private_key_file: 'ecc.sec.gpg' } as never,
    makePluginContext({ baseDir: dir }),
  );
  const empty = createItem({ source: 's', path: 'e.gpg', open: async () => Readable.from([]) });
  const out = (await step.process(empty, makeStepContext())) as Item;
  const result = await consume(await out.open());
  expect(result.error).toMatchObject({ code: 'SLUICE_E_BAD_DATA' });
});
