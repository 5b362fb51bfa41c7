/**
 * The SFTP channel's receive window (plugins/sftp/window.ts) against a real sshd: a file read
 * with its READs in flight never finds the window below what those READs can ask for (ssh2's own
 * 2 MiB window, topped up only at 1 MiB, held the server back every round trip), and the bytes
 * arrive as they are on the server. Throughput itself is measured in bench/, never here.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSftpPool, sftpSettings } from '../../plugins/sftp/client.js';
import { grownRequestsInFlight, SFTP_READ_CHUNK } from '../../plugins/sftp/pipelined-read.js';
import { receiveWindowFor } from '../../plugins/sftp/window.js';
import { makePluginContext } from '../helpers/context.js';
import { randomData, sha256 } from '../helpers/remote-fs-fixtures.js';
import { type SshdHandle, startSshd } from '../servers/sshd.js';

const MiB = 1024 * 1024;

let server: SshdHandle;
let dir: string;
const body = randomData(12 * MiB + 5);

beforeAll(async () => {
  server = await startSshd('sluice-sftpwin');
  const uid = Number(execFileSync('id', ['-u', server.username]).toString());
  const gid = Number(execFileSync('id', ['-g', server.username]).toString());
  dir = join(server.rootDir, 'window');
  mkdirSync(dir);
  chownSync(dir, uid, gid);
  writeFileSync(join(dir, 'big.bin'), body);
  chownSync(join(dir, 'big.bin'), uid, gid);
});

afterAll(async () => {
  await server?.stop();
});

/** ssh2's SFTP channel inside a pooled connection: the receive window it grants the server. */
function receiveWindow(connection: unknown): number {
  return (connection as { sftp: { incoming: { window: number } } }).sftp.incoming.window;
}

describe('sftp: the receive window follows the reads in flight', () => {
  it.each([64, 256])(
    'never falls below what %i READs in flight ask for, and the file arrives byte for byte',
    async (inFlight) => {
      const settings = await sftpSettings(
        { ...server.sftpConfig(), path: dir, max_connections: 1, requests_in_flight: inFlight } as never,
        makePluginContext(),
        'SLUICE_E_SOURCE',
      );
      const pool = await createSftpPool(settings, 1);
      try {
        const { connection } = await pool.acquire();
        // Room for the READs a read may grow to (pipelined-read.ts), not only the first ones.
        const granted = receiveWindowFor(grownRequestsInFlight(inFlight), SFTP_READ_CHUNK);
        expect(settings.readRequestsMax).toBe(Math.max(inFlight, Math.min(4 * inFlight, 128)));
        // At least twice the READs' answers (headers included), so topping up at half still
        // leaves them all room.
        expect(granted).toBeGreaterThan(2 * inFlight * SFTP_READ_CHUNK);
        expect(receiveWindow(connection)).toBe(granted);
        let lowest = Number.POSITIVE_INFINITY;
        const chunks: Buffer[] = [];
        const stream = await connection.openRead(join(dir, 'big.bin'), () => {});
        for await (const chunk of stream) {
          chunks.push(chunk as Buffer);
          lowest = Math.min(lowest, receiveWindow(connection));
        }
        const got = Buffer.concat(chunks);
        expect(got.length).toBe(body.length);
        expect(sha256(got)).toBe(sha256(body));
        expect(lowest).toBeGreaterThanOrEqual(granted / 2);
        pool.release(connection);
      } finally {
        await pool.close();
      }
    },
  );
});
