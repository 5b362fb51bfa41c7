/**
 * Log levels and the lines people read (issue 15), with the real binary: --log-level, -v/-q,
 * SLUICE_LOG_LEVEL and log_level in sluice.config.yaml in that order; a line per finished and
 * per failed file at info; the summary in the log file even under --quiet; pretty log files.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { SLUICE_BIN } from '../helpers/sluice-process.js';
import { makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-logs-');
afterAll(() => ws.cleanup());

ws.pipeline(`name: logs
source:
  local:
    path: ./in
steps:
  - compress: { format: gzip }
sink:
  local:
    path: ./out
policy:
  retry: { max_attempts: 1 }
`);

beforeEach(() => {
  for (const d of ['in', 'out', '.sluice', 'app.log', 'sluice.config.yaml'])
    rmSync(ws.path(d), { recursive: true, force: true });
  ws.write('in/a.csv', 'id,value\n'.repeat(200));
});

function sluice(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [SLUICE_BIN, ...args], {
    cwd: ws.dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const jsonLines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('log levels', () => {
  it('info: one line per finished file with where it went, the sizes, the ratio and the time', () => {
    const r = sluice(['run', 'pipeline.yaml', '--log-format', 'json']);
    expect(r.code).toBe(0);
    const done = jsonLines(r.stderr).filter((l) => String(l.msg).startsWith('done '));
    expect(done).toHaveLength(1);
    expect(done[0]).toMatchObject({ level: 30, item: 'local:a.csv', bytesIn: 1800 });
    expect(done[0].to).toEqual([expect.stringMatching(/out\/a\.csv\.gz$/)]);
    expect(done[0].ratio as number).toBeLessThan(0.5);
    expect(typeof done[0].ms).toBe('number');
    expect(String(done[0].msg)).toMatch(/^done a\.csv → .*a\.csv\.gz \(1\.8 KiB → \d+ B, \d+%, \d+ms\)$/);
  });

  it('a failed file has its line too', () => {
    ws.write('in/b.csv', 'x');
    ws.write('out/b.csv.gz', 'already there');
    ws.pipeline(
      `name: fails\nsource:\n  local: { path: ./in, include: ["b.csv"] }\nsteps:\n  - compress: { format: gzip }\nsink:\n  local: { path: ./out, if_exists: fail }\npolicy:\n  retry: { max_attempts: 1 }\n`,
      'fails.yaml',
    );
    const r = sluice(['run', 'fails.yaml', '--log-format', 'json']);
    expect(r.code).toBe(1);
    const failed = jsonLines(r.stderr).filter((l) => l.level === 50 && l.item === 'local:b.csv');
    expect(failed).toHaveLength(1);
  });

  it('-q and --log-level warn drop the info lines; the summary still reaches the log file', () => {
    for (const flags of [['-q'], ['--log-level', 'warn'], ['--quiet']]) {
      rmSync(ws.path('.sluice'), { recursive: true, force: true });
      rmSync(ws.path('app.log'), { force: true });
      const r = sluice(['run', 'pipeline.yaml', '--log-format', 'json', '--log-file', 'app.log', ...flags]);
      expect(r.code).toBe(0);
      expect(jsonLines(r.stderr).filter((l) => l.level === 30)).toEqual([]);
      const file = jsonLines(ws.read('app.log'));
      expect(file.map((l) => l.msg)).toEqual(['pass finished']);
      expect(file[0]).toMatchObject({ pipeline: 'logs', summary: { ok: 1 } });
    }
  });

  it('a pretty terminal run writes its summary into the log file too', () => {
    const r = sluice(['run', 'pipeline.yaml', '--log-format', 'pretty', '--log-file', 'app.log']);
    expect(r.stdout).toMatch(/^logs: 1 ok/);
    expect(jsonLines(ws.read('app.log')).map((l) => l.msg)).toEqual([
      expect.stringMatching(/^done /),
      'pass finished',
    ]);
  });

  it('log files in pretty lines', () => {
    sluice([
      'run',
      'pipeline.yaml',
      '--log-format',
      'json',
      '--log-file',
      'app.log',
      '--log-file-format',
      'pretty',
    ]);
    const lines = ws.read('app.log').trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d INFO {2}done a\.csv → /);
    expect(lines.at(-1)).toMatch(/^\d\d:\d\d:\d\d INFO {2}pass finished /);
  });

  it('flag > -v/-q > SLUICE_LOG_LEVEL > log_level of sluice.config.yaml', () => {
    const infoLines = (r: { stderr: string }) => jsonLines(r.stderr).filter((l) => l.level === 30).length;
    const run = (args: string[], env: Record<string, string> = {}) => {
      rmSync(ws.path('.sluice'), { recursive: true, force: true });
      return sluice(['run', 'pipeline.yaml', '--log-format', 'json', ...args], env);
    };
    expect(infoLines(run([], { SLUICE_LOG_LEVEL: 'error' }))).toBe(0);
    expect(infoLines(run(['--log-level', 'info'], { SLUICE_LOG_LEVEL: 'error' }))).toBeGreaterThan(0);
    expect(infoLines(run(['-v'], { SLUICE_LOG_LEVEL: 'error' }))).toBeGreaterThan(0);
    ws.write(
      'sluice.config.yaml',
      'log_level: warn\nlog_rotate: 10MiB\nlog_keep: 3\nlog_file_format: json\n',
    );
    expect(infoLines(run([]))).toBe(0);
    expect(infoLines(run([], { SLUICE_LOG_LEVEL: 'info' }))).toBeGreaterThan(0);
    expect(infoLines(run(['-v']))).toBeGreaterThan(0);
  });

  it('refuses an unknown level wherever it comes from', () => {
    const flag = sluice(['run', 'pipeline.yaml', '--log-level', 'loud']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('--log-level is one of trace, debug, info, warn, error, got "loud"');
    const env = sluice(['run', 'pipeline.yaml'], { SLUICE_LOG_LEVEL: 'chatty' });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('SLUICE_LOG_LEVEL is one of trace, debug, info, warn, error, got "chatty"');
    ws.write('sluice.config.yaml', 'log_level: verbose\n');
    const file = sluice(['run', 'pipeline.yaml']);
    expect(file.code).toBe(2);
    expect(file.stderr).toMatch(
      /^sluice\.config\.yaml:1:12: log_level is one of trace, debug, info, warn, error/,
    );
  });

  it('-V prints the version', () => {
    expect(sluice(['-V']).stdout).toMatch(/^sluice\/\d+\.\d+\.\d+/);
  });
});
