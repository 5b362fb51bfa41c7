import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRotation, RotatingFile } from './log.js';

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('RotatingFile', () => {
  it('rotates by size and keeps only the newest N old files', () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-log-'));
    const file = new RotatingFile(join(dir, 'app.log'), { maxBytes: 100, keep: 2 });
    for (let i = 0; i < 10; i++) file.write(`${JSON.stringify({ i, pad: 'x'.repeat(30) })}\n`);
    file.close();
    expect(readdirSync(dir).sort()).toEqual(['app.log', 'app.log.1', 'app.log.2']);
    const lines = (name: string) =>
      readFileSync(join(dir, name), 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { i: number }).i);
    // 43-byte lines, 100-byte files: two lines per file, newest in app.log.
    expect(lines('app.log')).toEqual([8, 9]);
    expect(lines('app.log.1')).toEqual([6, 7]);
    expect(lines('app.log.2')).toEqual([4, 5]);
  });

  it('appends to an existing file and ignores writes after close', () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-log-'));
    const path = join(dir, 'a.log');
    const first = new RotatingFile(path, undefined);
    first.write('one\n');
    first.close();
    first.write('lost\n');
    const second = new RotatingFile(path, undefined);
    second.write('two\n');
    second.close();
    expect(readFileSync(path, 'utf8')).toBe('one\ntwo\n');
  });
});

describe('parseRotation', () => {
  it('reads sizes and daily, with keep defaulting to 5', () => {
    expect(parseRotation('10MiB', undefined)).toEqual({ maxBytes: 10 * 1024 * 1024, keep: 5 });
    expect(parseRotation('daily', '7')).toEqual({ daily: true, keep: 7 });
    expect(parseRotation(undefined, '3')).toBeUndefined();
  });

  it('rejects nonsense with usage errors', () => {
    expect(() => parseRotation('weekly', undefined)).toThrow(
      /--log-rotate takes a size \(10MiB\) or "daily", got "weekly"/,
    );
    expect(() => parseRotation('1MiB', '0')).toThrow(/--log-keep takes a whole number ≥ 1, got "0"/);
  });
});
