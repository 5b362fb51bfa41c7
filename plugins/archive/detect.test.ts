import { describe, expect, it } from 'vitest';
import { archiveStem, formatFromMagic, formatFromName, gunzippedName, restrictFormat } from './detect.js';

describe('format detection', () => {
  it.each([
    ['a.csv.gz', 'gzip'],
    ['A.TGZ', 'tar_gz'],
    ['x.tar.gz', 'tar_gz'],
    ['x.tar', 'tar'],
    ['x.zip', 'zip'],
    ['x.csv', null],
    ['gz', null],
  ])('name %s → %s', (name, format) => {
    expect(formatFromName(name)).toBe(format);
  });

  it('recognises magic bytes', () => {
    expect(formatFromMagic(Uint8Array.from([0x1f, 0x8b, 8]))).toBe('gzip');
    expect(formatFromMagic(Buffer.from('PK\x03\x04rest', 'latin1'))).toBe('zip');
    expect(formatFromMagic(Buffer.from('PK\x05\x06', 'latin1'))).toBe('zip');
    const tarHeader = Buffer.alloc(512);
    tarHeader.write('ustar', 257, 'latin1');
    expect(formatFromMagic(tarHeader)).toBe('tar');
    expect(formatFromMagic(Buffer.from('id,name\n1,a\n'))).toBeNull();
    expect(formatFromMagic(Buffer.alloc(0))).toBeNull();
  });

  it('restricts to the allowed formats', () => {
    expect(restrictFormat('tar_gz', new Set(['gzip', 'tar']))).toBe('tar_gz');
    expect(restrictFormat('tar_gz', new Set(['gzip', 'zip']))).toBe('gzip');
    expect(restrictFormat('tar_gz', new Set(['tar']))).toBeNull();
    expect(restrictFormat('zip', new Set(['gzip']))).toBeNull();
  });

  it('names gunzipped files and archive stems', () => {
    expect(gunzippedName('a.csv.gz')).toBe('a.csv');
    expect(gunzippedName('b.tgz')).toBe('b.tar');
    expect(gunzippedName('blob')).toBe('blob');
    expect(archiveStem('x.tar.gz')).toBe('x');
    expect(archiveStem('x.v2.zip')).toBe('x.v2');
    expect(archiveStem('x.tgz')).toBe('x');
  });
});
