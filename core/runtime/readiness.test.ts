import { describe, expect, it } from 'vitest';
import type { Item } from '../plugin-api.js';
import { ReadyMarker, StableFiles, temporaryNames } from './readiness.js';

describe('ReadyMarker', () => {
  it('places a per-file marker and recognises it', () => {
    const m = new ReadyMarker('{path}.done');
    expect(m.perFile).toBe(true);
    expect(m.markerFor('in/a.csv')).toBe('in/a.csv.done');
    expect(m.isMarker('in/a.csv.done')).toBe(true);
    expect(m.isMarker('in/a.csv')).toBe(false);
  });

  it('places a folder marker in the item folder, the root included', () => {
    for (const template of ['{dir}/_SUCCESS', '_SUCCESS']) {
      const m = new ReadyMarker(template);
      expect(m.perFile).toBe(false);
      expect(m.markerFor('a.csv')).toBe('_SUCCESS');
      expect(m.markerFor('day/1/a.csv')).toBe('day/1/_SUCCESS');
      expect(m.isMarker('_SUCCESS')).toBe(true);
      expect(m.isMarker('day/1/_SUCCESS')).toBe(true);
      expect(m.isMarker('day/1/a.csv')).toBe(false);
    }
  });

  it('puts {name} beside the file and keeps rooted templates at the root', () => {
    expect(new ReadyMarker('{name}.ok').markerFor('in/a.csv')).toBe('in/a.csv.ok');
    const rooted = new ReadyMarker('markers/{path}.ready');
    expect(rooted.markerFor('in/a.csv')).toBe('markers/in/a.csv.ready');
    expect(rooted.isMarker('markers/in/a.csv.ready')).toBe(true);
    expect(rooted.isMarker('in/a.csv.ready')).toBe(false);
  });

  it('refuses an unknown placeholder', () => {
    expect(() => new ReadyMarker('{stem}.done')).toThrow(/uses \{stem\}/);
  });
});

describe('temporaryNames', () => {
  it('skips the usual uploader names by default, none when off, the given ones otherwise', () => {
    const byDefault = temporaryNames(undefined);
    for (const p of ['a.part', 'd/a.filepart', 'a.tmp', '.~lock.x#', 'x.crdownload'])
      expect(byDefault(p)).toBe(true);
    expect(byDefault('a.csv')).toBe(false);
    expect(temporaryNames(false)('a.part')).toBe(false);
    const own = temporaryNames(['*.upload']);
    expect(own('a.upload')).toBe(true);
    expect(own('a.part')).toBe(false);
  });
});

describe('StableFiles', () => {
  const item = (size: number, mtime: number) => ({ path: 'a', size, mtime: new Date(mtime) }) as Item;

  it('takes a file once two looks minMs apart saw the same version', () => {
    const stable = new StableFiles(1000);
    expect(stable.isStable(item(1, 1), 0)).toBe(false);
    expect(stable.isStable(item(1, 1), 500)).toBe(false);
    expect(stable.isStable(item(1, 1), 1000)).toBe(true);
  });

  it('starts again when the file grew', () => {
    const stable = new StableFiles(1000);
    stable.isStable(item(1, 1), 0);
    expect(stable.isStable(item(2, 2), 1500)).toBe(false);
    expect(stable.isStable(item(2, 2), 2000)).toBe(false);
    expect(stable.isStable(item(2, 2), 2500)).toBe(true);
  });
});
