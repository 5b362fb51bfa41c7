import { describe, expect, it } from 'vitest';
import { numberedName as numberedPath } from '../../core/if-exists.js';
import { isTempName, joinRemote, tempPathFor } from './paths.js';

describe('remote paths', () => {
  it('joins roots and relative paths', () => {
    expect(joinRemote('/outgoing', 'a/b.csv')).toBe('/outgoing/a/b.csv');
    expect(joinRemote('.', 'x.gpg')).toBe('x.gpg');
    expect(joinRemote('', '')).toBe('.');
    expect(joinRemote('/out/', '')).toBe('/out/');
  });

  it('makes hidden temp names in the same folder that sources recognise', () => {
    const temp = tempPathFor('/in/dir/my file #1.csv');
    expect(temp).toMatch(/^\/in\/dir\/\.my file #1\.csv\.sluice-tmp-[0-9a-f]{12}$/);
    expect(isTempName(temp.split('/').pop()!)).toBe(true);
    expect(isTempName('.hidden.csv')).toBe(false);
    expect(isTempName('report.sluice-tmp-abc.csv')).toBe(false);
  });

  it('numbers colliding names before the extension', () => {
    expect(numberedPath('a/report.csv', 1)).toBe('a/report (1).csv');
    expect(numberedPath('noext', 2)).toBe('noext (2)');
    expect(numberedPath('.env', 3)).toBe('.env (3)');
  });
});
