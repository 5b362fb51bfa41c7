import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SluiceError } from './errors.js';
import { createItem, deriveItem } from './item.js';
import type { Item } from './plugin-api.js';
import { compileTemplate, TemplateError } from './template.js';

const NOW = new Date(Date.UTC(2025, 0, 2, 3, 4, 5));

function item(path: string, extra: { mtime?: Date; date?: Date; meta?: Record<string, unknown> } = {}): Item {
  const base = createItem({
    source: 'sftp_a',
    path,
    size: 10,
    mtime: extra.mtime,
    meta: extra.meta,
    open: async () => Readable.from([]),
  });
  return extra.date ? deriveItem(base, { date: extra.date }) : base;
}

const render = (
  template: string,
  it: Item,
  scope: Partial<{ sha256: string; md5: string; size: number; timezone: string }> = {},
) => compileTemplate(template).render(it, { now: NOW, ...scope });

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('compileTemplate: rendering', () => {
  const csv = item('in/2024/x.report.csv', {
    mtime: new Date(Date.UTC(2023, 5, 7, 8, 9, 10)),
    meta: { provider: 'acme', count: 3, flag: false, when: new Date(Date.UTC(2020, 0, 1)), tags: ['a', 'b'] },
  });

  it.each([
    ['{name}', 'x.report.csv'],
    ['{stem}', 'x.report'],
    ['{ext}', 'csv'],
    ['{dir}', 'in/2024'],
    ['{path}', 'in/2024/x.report.csv'],
    ['{source}', 'sftp_a'],
    ['{meta.provider}/{name}', 'acme/x.report.csv'],
    ['{meta.count}-{meta.flag}', '3-false'],
    ['{meta.when}', '2020-01-01T00:00:00.000Z'],
    ['{meta.tags}', '["a","b"]'],
    ['{date:%Y/%m/%d}/{name}', '2023/06/07/x.report.csv'],
    ['{date}', '2023-06-07'],
    ['{now:%Y-%m-%dT%H:%M:%SZ}', '2025-01-02T03:04:05Z'],
    ['{now}', '2025-01-02'],
    ['{{literal}} {name}', '{literal} x.report.csv'],
    ['a}}b{{c', 'a}b{c'],
    ['plain/text', 'plain/text'],
    ['', ''],
  ])('renders %j', (template, expected) => {
    expect(render(template, csv)).toBe(expected);
  });

  it('renders {sha256} from the scope', () => {
    expect(render('{sha256}.bin', csv, { sha256: 'ab12' })).toBe('ab12.bin');
  });

  it('renders {md5} and {sha256} from the scope, else from the checksums the item carries', () => {
    expect(render('{md5}/{sha256}', csv, { md5: 'cd34', sha256: 'ab12' })).toBe('cd34/ab12');
    const summed = { ...csv, checksums: { md5: 'fe', sha256: 'dc' } };
    expect(render('{md5}-{sha256}', summed)).toBe('fe-dc');
    expect(render('{md5}', summed, { md5: 'aa' })).toBe('aa');
  });

  it('renders {size} from the item, or the size the caller knows', () => {
    expect(render('{stem}-{size}.{ext}', csv)).toBe('x.report-10.csv');
    expect(render('{size}', csv, { size: 0 })).toBe('0');
  });

  it('renders {mtime:…} from the item mtime, not its date, in the scope timezone', () => {
    const dated = item('x', {
      date: new Date(Date.UTC(2001, 1, 3)),
      mtime: new Date(Date.UTC(2002, 11, 31, 23, 30)),
    });
    expect(render('{mtime:%Y/%m}/{date:%Y/%m}', dated)).toBe('2002/12/2001/02');
    expect(render('{mtime}', dated)).toBe('2002-12-31');
    expect(render('{mtime:%Y-%m-%d %H:%M}', dated, { timezone: 'Europe/Paris' })).toBe('2003-01-01 00:30');
  });

  it('prefers item.date, then mtime, then now for {date:…}', () => {
    const dated = item('x', { date: new Date(Date.UTC(2001, 1, 3)), mtime: new Date(Date.UTC(2002, 0, 1)) });
    expect(render('{date:%Y%m%d}', dated)).toBe('20010203');
    expect(render('{date:%Y%m%d}', item('x', { mtime: new Date(Date.UTC(2002, 0, 1)) }))).toBe('20020101');
    expect(render('{date:%Y%m%d}', item('x'))).toBe('20250102');
  });

  it('formats dates in the scope timezone', () => {
    const late = item('x', { date: new Date(Date.UTC(2023, 11, 31, 23, 30)) });
    expect(render('{date:%Y/%m/%d/%H}', late)).toBe('2023/12/31/23');
    expect(render('{date:%Y/%m/%d/%H}', late, { timezone: 'Europe/Paris' })).toBe('2024/01/01/00');
  });

  it('never expands a substituted value again', () => {
    const tricky = item('{meta.x}%Y{{}}.csv', { meta: { x: 'X', evil: '{name}' } });
    expect(render('{name}', tricky)).toBe('{meta.x}%Y{{}}.csv');
    expect(render('{meta.evil}/{stem}', tricky)).toBe('{name}/{meta.x}%Y{{}}');
  });

  it('drops the slash after an empty placeholder so root items get no leading slash', () => {
    const root = item('x.csv');
    expect(render('{dir}/{name}', root)).toBe('x.csv');
    expect(render('out/{dir}/{name}', root)).toBe('out/x.csv');
    expect(render('{dir}/{ext}/{name}', item('noext'))).toBe('noext');
    expect(render('{dir}/{name}', item('a/x.csv'))).toBe('a/x.csv');
    // Slashes written in the template are kept otherwise (URLs).
    expect(render('https://host/api/{path}', root)).toBe('https://host/api/x.csv');
  });

  it('applies escape to substituted values only', () => {
    const spaced = item('my dir/a b.csv');
    const url = compileTemplate('https://h/files/{path}?x={{y}}').render(spaced, {
      now: NOW,
      escape: encodeURIComponent,
    });
    expect(url).toBe('https://h/files/my%20dir%2Fa%20b.csv?x={y}');
  });

  it('reports what the template needs', () => {
    expect(compileTemplate('{date:%Y}/{name}')).toMatchObject({ needsDate: true, needsSha256: false });
    expect(compileTemplate('{date}/{sha256}')).toMatchObject({ needsDate: true, needsSha256: true });
    expect(compileTemplate('{md5}/{name}')).toMatchObject({ digests: ['md5'], needsSha256: false });
    expect(compileTemplate('{md5}/{sha256}/{md5}').digests).toEqual(['md5', 'sha256']);
    expect(compileTemplate('{mtime:%Y}/{size}')).toMatchObject({ digests: [], needsDate: false });
    expect(compileTemplate('{now:%Y}/{name}')).toMatchObject({
      needsDate: false,
      needsSha256: false,
      source: '{now:%Y}/{name}',
    });
  });
});

describe('compileTemplate: render errors', () => {
  it('names the missing meta key, the item and the known keys', () => {
    const err = thrown(() =>
      render('data/{meta.provider}/{name}', item('a/x.csv', { meta: { kind: 'csv' } })),
    );
    expect(err).toBeInstanceOf(SluiceError);
    expect((err as SluiceError).code).toBe('SLUICE_E_TEMPLATE');
    expect((err as SluiceError).message).toBe(
      'template "data/{meta.provider}/{name}" uses {meta.provider} but item "a/x.csv" has no meta "provider" (meta keys: kind)',
    );
    expect((err as SluiceError).context.item).toBe('a/x.csv');
  });

  it('fails {sha256} when the caller gave none', () => {
    const err = thrown(() => render('{sha256}', item('x.csv')));
    expect((err as SluiceError).code).toBe('SLUICE_E_TEMPLATE');
    expect((err as SluiceError).message).toBe(
      'template "{sha256}" uses {sha256} but no sha256 is known for item "x.csv"',
    );
  });
});

describe('compileTemplate: values an item may lack', () => {
  it.each([
    ['{md5}', 'md5'],
    ['{mtime:%Y}', 'mtime'],
  ])('fails %s for an item without it, naming it', (template, what) => {
    const err = thrown(() => render(template, item('x.csv'))) as SluiceError;
    expect(err.code).toBe('SLUICE_E_TEMPLATE');
    expect(err.message).toBe(
      `template "${template}" uses {${what}} but no ${what} is known for item "x.csv"`,
    );
  });

  it('fails {size} for an item whose size a step left unknown', () => {
    const decrypted = deriveItem(item('x.csv'), { open: async () => Readable.from([]) });
    const err = thrown(() => render('{size}', decrypted)) as SluiceError;
    expect(err.message).toBe('template "{size}" uses {size} but no size is known for item "x.csv"');
    expect(err.context.hint).toContain('changes bytes');
  });

  it('rejects a misspelt {mtime…} with a suggestion keeping the format', () => {
    const err = thrown(() => compileTemplate('{mtim:%Y}')) as TemplateError;
    expect(err.message).toContain('did you mean "{mtime:%Y}"?');
    expect(err.context.hint).toContain('{mtime}');
    expect(err.context.hint).toContain('{md5}');
    expect(err.context.hint).toContain('{size}');
  });

  it('rejects moment-style formats in {mtime:…}', () => {
    const err = thrown(() => compileTemplate('{mtime:YYYY}')) as TemplateError;
    expect(err.context.hint).toBe('write {mtime:%Y}');
  });
});

describe('compileTemplate: syntax errors', () => {
  it('suggests the nearest placeholder for a typo', () => {
    const err = thrown(() => compileTemplate('out/{nmae}', { jsonPath: '/to' })) as TemplateError;
    expect(err).toBeInstanceOf(TemplateError);
    expect(err.code).toBe('SLUICE_E_CONFIG');
    expect(err.offset).toBe(4);
    expect(err.message).toBe(
      'unknown placeholder "{nmae}" at offset 4 in template "out/{nmae}": did you mean "{name}"?',
    );
    expect(err.context.jsonPath).toBe('/to');
    expect(err.context.hint).toContain('{meta.KEY}');
  });

  it.each([
    ['{Name}', 'name'],
    ['{stme}', 'stem'],
    ['{sha265}', 'sha256'],
    ['{dat:%Y}', 'date:%Y'],
    ['{meta}', 'meta.KEY'],
    ['{sorce}', 'source'],
  ])('suggests for %s', (template, suggestion) => {
    expect(() => compileTemplate(template)).toThrow(`did you mean "{${suggestion}}"?`);
  });

  it('does not suggest anything for a far-off name', () => {
    const err = thrown(() => compileTemplate('{completely_unrelated}')) as TemplateError;
    expect(err.message).toBe(
      'unknown placeholder "{completely_unrelated}" at offset 0 in template "{completely_unrelated}"',
    );
  });

  it('reports an unclosed brace', () => {
    const err = thrown(() => compileTemplate('a/{name')) as TemplateError;
    expect(err.offset).toBe(2);
    expect(err.message).toBe('unclosed "{" at offset 2 in template "a/{name"');
    expect(() => compileTemplate('{dir/{name}')).toThrow('unclosed "{" at offset 0');
  });

  it('reports an unmatched closing brace', () => {
    const err = thrown(() => compileTemplate('a}b')) as TemplateError;
    expect(err.offset).toBe(1);
    expect(err.message).toBe('unmatched "}" at offset 1 in template "a}b"');
    expect(err.context.hint).toBe('write "}}" for a literal brace');
  });

  it('reports a bad strftime token at its offset in the template', () => {
    const err = thrown(() => compileTemplate('x/{date:%Y/%Q}/{name}')) as TemplateError;
    expect(err.offset).toBe(11);
    expect(err.message).toMatch(
      /^bad date format in \{date:%Y\/%Q\} at offset 11 in template .*unknown format token "%Q"/,
    );
    expect(() => compileTemplate('{now:%}')).toThrow('lone "%"');
  });

  it('rejects an empty placeholder and an empty meta key', () => {
    expect(() => compileTemplate('{}')).toThrow('unknown placeholder "{}" at offset 0');
    expect(() => compileTemplate('{meta.}')).toThrow('did you mean "{meta.KEY}"?');
  });
});
