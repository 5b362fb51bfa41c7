/**
 * zstd through the `zstd` command: Node 20's zlib has no zstd (it arrived in 22.15/23.8) and
 * the npm bindings need a native build, so one engine that behaves the same on Node 20/22/24
 * is the CLI (also the fastest measured here: ~190 MB/s at -3), with streamed stdin/stdout.
 */
import { spawn, spawnSync } from 'node:child_process';
import { Duplex, PassThrough } from 'node:stream';
import { SluiceError } from '../../core/errors.js';
import { STREAM_CHUNK } from '../../core/streams.js';

const STDERR_KEPT = 2000;

/** The zstd version string, or null when the command is not installed. */
export function zstdVersion(command = 'zstd'): string | null {
  const result = spawnSync(command, ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}

/**
 * A Duplex that compresses what is written to it. Its readable side ends only after zstd
 * exited with 0; a non-zero exit or a signal becomes a stream error, so the sink aborts.
 */
export function zstdCompressStream(level: number, command = 'zstd'): Duplex {
  const child = spawn(command, ['-c', '-q', `-${level}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  const output = new PassThrough({ highWaterMark: STREAM_CHUNK });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    stderr = (stderr + text).slice(-STDERR_KEPT);
  });
  child.stdout.pipe(output, { end: false });
  child.on('error', (err) => output.destroy(err));
  child.on('close', (code, signal) => {
    if (code === 0) output.end();
    else {
      const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      output.destroy(new SluiceError('SLUICE_E_PLUGIN', `zstd ${why}${stderr ? `: ${stderr.trim()}` : ''}`));
    }
  });
  const duplex = Duplex.from({ writable: child.stdin, readable: output });
  duplex.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  });
  return duplex;
}
