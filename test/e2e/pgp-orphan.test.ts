/**
 * gpg writing the plaintext into a file itself (the local sink's temp file, issue 16.6) must
 * stop when Sluice is killed: it has no pipe to Sluice but its status channel, so without a
 * liveness signal it went on writing the whole plaintext into the temp folder (which the next
 * start sweeps, but the plaintext sat on disk until then).
 *
 * Real gpg, through the gpg engine's `decryptInto` in a process of its own that is SIGKILLed.
 * gpg writes into a FIFO that this test drains slowly, so gpg outlives its parent by many
 * seconds unless it notices: a 256 MiB plaintext of zeros (a small message) read at about
 * 12 MB/s would take 20 s; gpg must stop within a few seconds of the kill.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { testGpgHome } from '../helpers/gpg-keys.js';
import { sleep } from '../helpers/sluice-process.js';
import { makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-pgp-orphan-');
const keys = testGpgHome(ws.path('gnupg'));
const HARNESS = join(import.meta.dirname, '..', 'helpers', 'gpg-into-harness.mjs');
const PLAIN_BYTES = 256 * 1024 * 1024;

beforeAll(() => {
  // The harness runs the built code: built from older sources, this test would test those.
  const built = join(import.meta.dirname, '..', '..', 'dist', 'plugins', 'pgp', 'gpg.js');
  const source = join(import.meta.dirname, '..', '..', 'plugins', 'pgp', 'gpg.ts');
  expect(
    statSync(built).mtimeMs,
    'dist/ is older than plugins/pgp/gpg.ts: run npm run build',
  ).toBeGreaterThanOrEqual(statSync(source).mtimeMs);
  ws.write('key.asc', keys.secretKey('o@example.com', 'Key-Type: RSA\nKey-Length: 2048'));
  execFileSync('sh', [
    '-c',
    `head -c ${PLAIN_BYTES} /dev/zero | gpg --homedir "$0" --batch --trust-model always -r o@example.com --compress-algo zlib --encrypt -o "$1"`,
    ws.path('gnupg'),
    ws.path('zeros.gpg'),
  ]);
  mkdirSync(ws.path('tmp'));
}, 120_000);

afterAll(() => {
  // Whatever gpg is left (the test failed) and the harness's agent: stopped before the folder goes.
  for (const pid of gpgPids()) process.kill(pid, 'SIGKILL');
  for (const home of readdirSync(ws.path('tmp'))) {
    execFileSync('gpgconf', ['--homedir', join(ws.path('tmp'), home), '--kill', 'all']);
  }
  keys.close();
  ws.cleanup();
});

/** gpg processes working in this test's temp folder (the harness's throwaway home). */
function gpgPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return argv[0]?.endsWith('gpg') && argv.some((a) => a.startsWith(ws.path('tmp')));
      } catch {
        return false;
      }
    })
    .map(Number);
}

it('gpg writing into a file stops soon after the process that started it is killed', async () => {
  const fifo = ws.path('plaintext.fifo');
  execFileSync('mkfifo', [fifo]);
  const reader = open(fifo, 'r'); // returns once the harness opens the other end
  const harness: ChildProcess = spawn(
    process.execPath,
    [HARNESS, ws.path('key.asc'), ws.path('zeros.gpg'), fifo],
    { env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: ws.path('tmp') }, stdio: 'pipe' },
  );
  let said = '';
  harness.stdout?.on('data', (c: Buffer) => {
    said += c.toString();
  });
  harness.stderr?.on('data', (c: Buffer) => {
    said += c.toString();
  });
  const fh = await reader;
  const chunk = Buffer.alloc(64 * 1024);
  let read = 0;
  const drain = async (until: () => boolean) => {
    while (!until()) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length);
      if (bytesRead === 0) return true; // every writer is gone
      read += bytesRead;
      await sleep(5);
    }
    return false;
  };
  try {
    // gpg is writing: a few MiB have come through.
    await drain(() => read >= 8 * 1024 * 1024);
    expect(said).toContain('started');
    expect(gpgPids()).toHaveLength(1);
    const exited = new Promise((resolve) => harness.once('exit', resolve));
    harness.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    const ended = await drain(() => Date.now() - killedAt > 10_000);
    const tookMs = Date.now() - killedAt;
    expect({ ended, stoppedEarly: read < PLAIN_BYTES }).toEqual({ ended: true, stoppedEarly: true });
    expect(tookMs).toBeLessThan(6_000);
    await sleep(200);
    expect(gpgPids()).toEqual([]);
  } finally {
    await fh.close();
    if (harness.exitCode === null && harness.signalCode === null) harness.kill('SIGKILL');
  }
}, 60_000);
