/**
 * Issue 17's "done means", on a real sshd: a nightly SFTP job with one tampered file runs green
 * from the second night (the file parked, its dead letter written once), and the file is taken
 * once the partner replaces it.
 */
import { chownSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipelineFile } from '../../core/sdk.js';
import { listFiles, makeWorkspace } from '../helpers/workspace.js';
import { type SshdHandle, startSshd } from '../servers/sshd.js';

const ws = makeWorkspace('sluice-parking-sftp-');
let sshd: SshdHandle;
let owner: { uid: number; gid: number };

beforeAll(async () => {
  sshd = await startSshd('sluice-parking');
  const st = statSync(sshd.rootDir);
  owner = { uid: st.uid, gid: st.gid };
});
afterAll(async () => {
  await sshd?.stop();
  ws.cleanup();
});

/** Writes a file the partner uploaded: owned by the SFTP user, with its own mtime. */
function upload(name: string, body: Buffer, mtime = new Date()): void {
  const dir = join(sshd.rootDir, 'outbox');
  mkdirSync(dir, { recursive: true });
  chownSync(dir, owner.uid, owner.gid);
  const abs = join(dir, name);
  writeFileSync(abs, body);
  chownSync(abs, owner.uid, owner.gid);
  utimesSync(abs, mtime, mtime);
}

describe('nightly SFTP job with a tampered file', () => {
  it('fails it once, parks it on later nights (green), takes it once replaced', async () => {
    const bad = gzipSync('b,2\n');
    bad[bad.length - 8] ^= 0xff;
    upload('a.csv.gz', gzipSync('a,1\n'));
    upload('bad.csv.gz', bad, new Date(Date.now() - 3600_000));
    const file = ws.pipeline(
      [
        'name: nightly-sftp',
        'source:',
        '  sftp:',
        ...sshd.sftpYaml(),
        `    path: "${join(sshd.rootDir, 'outbox')}"`,
        '    after_success: delete',
        'steps:',
        '  - decompress: {}',
        'sink:',
        '  local: { path: ./out }',
        'on_error:',
        '  local: { path: ./err }',
        'policy:',
        '  retry: { max_attempts: 1 }',
        '',
      ].join('\n'),
      'nightly.yaml',
    );

    expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 1, parked: 0 });
    const letter = ws.path('err', 'sftp', 'bad.csv.gz.error.json');
    const written = statSync(letter).mtimeMs;

    upload('c.csv.gz', gzipSync('c,3\n'));
    for (let night = 2; night <= 3; night++) {
      const summary = await runPipelineFile(file);
      expect(summary).toMatchObject({ failed: 0, parked: 1 });
      expect(summary.parkedItems).toEqual([
        expect.objectContaining({ source: 'sftp', path: 'bad.csv.gz', error: expect.stringMatching(/./) }),
      ]);
    }
    expect(statSync(letter).mtimeMs).toBe(written);
    expect(readdirSync(join(sshd.rootDir, 'outbox'))).toEqual(['bad.csv.gz']);

    upload('bad.csv.gz', gzipSync('b,2 fixed\n'));
    expect(await runPipelineFile(file)).toMatchObject({ ok: 1, failed: 0, parked: 0 });
    expect(listFiles(ws.path('out'))).toEqual(['a.csv', 'bad.csv', 'c.csv']);
    expect(ws.read('out/bad.csv')).toBe('b,2 fixed\n');
    expect(readdirSync(join(sshd.rootDir, 'outbox'))).toEqual([]);
  });
});
