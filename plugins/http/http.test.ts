import { describe, expect, it } from 'vitest';
import type { SluiceError } from '../../core/errors.js';
import { displayUrl, parseRetryAfter } from './client.js';
import { headersFor } from './headers.js';
import { getDotted } from './json-path.js';
import { compileUrlTemplate } from './url-template.js';

describe('getDotted', () => {
  const doc = { data: { items: [{ id: 7 }], next: null }, files: [] };
  it('walks objects and array indexes', () => {
    expect(getDotted(doc, 'data.items.0.id')).toBe(7);
    expect(getDotted(doc, 'data.next')).toBeNull();
    expect(getDotted(doc, '')).toBe(doc);
  });
  it('gives undefined for missing steps and never reaches the prototype', () => {
    expect(getDotted(doc, 'data.missing.x')).toBeUndefined();
    expect(getDotted(doc, 'files.first')).toBeUndefined();
    expect(getDotted(doc, 'constructor')).toBeUndefined();
  });
});

describe('compileUrlTemplate', () => {
  it('encodes values but keeps the slashes of {path}', () => {
    const template = compileUrlTemplate('https://api.test/files/{path}?id={meta.id}', '/url');
    const url = template.render({ meta: { id: 'a&b=c' } }, 'dir/ré port #1.csv');
    expect(url.href).toBe('https://api.test/files/dir/r%C3%A9%20port%20%231.csv?id=a%26b%3Dc');
    expect(template.usesMeta).toBe(true);
  });
  it('fills {name}', () => {
    expect(compileUrlTemplate('http://h/{name}', '/u').render({ meta: {} }, 'a/b c.txt').pathname).toBe(
      '/b%20c.txt',
    );
  });
  it('rejects an unknown placeholder and a non-URL at config time', () => {
    expect(() => compileUrlTemplate('http://h/{nmae}', '/download/url')).toThrow(/did you mean "\{name\}"/);
    const err = (() => {
      try {
        compileUrlTemplate('/api/{path}', '/download/url');
      } catch (e) {
        return e as SluiceError;
      }
    })();
    expect(err?.code).toBe('SLUICE_E_CONFIG');
    expect(err?.context.jsonPath).toBe('/download/url');
  });
  it('says which meta key is missing', () => {
    const template = compileUrlTemplate('http://h/{meta.id}', '/u');
    expect(() => template.render({ meta: {} }, 'x.csv')).toThrow(/meta "id"/);
  });
});

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    const now = Date.parse('2024-01-01T00:00:00Z');
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Sun, 31 Dec 2023 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});

describe('headersFor', () => {
  const inherited = { origin: 'https://api.test', headers: { Authorization: 'Bearer t0ken' } };
  it('sends the list headers only to the same origin, own headers win', () => {
    expect(headersFor(new URL('https://api.test/x'), { 'X-A': '1' }, inherited, { 'x-a': '2' })).toEqual({
      'x-a': '2',
      authorization: 'Bearer t0ken',
    });
    expect(headersFor(new URL('https://cdn.test/x'), undefined, inherited, undefined)).toEqual({});
  });
});

describe('displayUrl', () => {
  it('masks secret-looking query parameters', () => {
    expect(displayUrl(new URL('https://h/p?month=6&api_key=abc&token=x'))).toBe(
      'https://h/p?month=6&api_key=***&token=***',
    );
  });
  it('masks userinfo and presigned signatures (S3, GCS, Azure SAS)', () => {
    const shown = displayUrl(
      new URL(
        'https://me:pa55@h/b/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc&X-Goog-Signature=def&sv=2022&sig=ghi&page=2',
      ),
    );
    expect(shown).toBe(
      'https://***:***@h/b/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Goog-Signature=***&sv=2022&sig=***&page=2',
    );
  });
});
