/**
 * URL templates of the http plugins: `{path}`, `{name}` and `{meta.KEY}` (KEY may be dotted).
 * Substituted values are URL-encoded; `{path}` keeps its slashes and encodes each segment.
 * Small on purpose: core/template.ts did not exist yet when this was written.
 */
import { posix } from 'node:path';
import { SluiceError } from '../../core/errors.js';
import { getDotted } from './json-path.js';

export interface UrlTemplateValues {
  /** Relative POSIX path of the item (source) or its destination (sink). */
  path: string;
  meta: Readonly<Record<string, unknown>>;
}

export interface UrlTemplate {
  readonly text: string;
  /** True when the template reads `{meta.…}`: then only listed items can fill it. */
  readonly usesMeta: boolean;
  render(values: UrlTemplateValues): URL;
}

type Part = string | { kind: 'path' } | { kind: 'name' } | { kind: 'meta'; key: string };

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** Parses `text` once; an unknown placeholder or a template that cannot make a URL is a config error at `jsonPath`. */
export function compileUrlTemplate(text: string, jsonPath: string): UrlTemplate {
  const parts: Part[] = [];
  let last = 0;
  for (const match of text.matchAll(PLACEHOLDER)) {
    parts.push(text.slice(last, match.index));
    parts.push(parsePlaceholder(match[1], text, jsonPath));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  const usesMeta = parts.some((p) => typeof p !== 'string' && p.kind === 'meta');

  const render = (values: UrlTemplateValues): URL => {
    const rendered = parts.map((part) => (typeof part === 'string' ? part : renderPart(part, values, text))).join('');
    return new URL(rendered);
  };
  checkMakesUrl(parts, text, jsonPath);
  return { text, usesMeta, render };
}

function parsePlaceholder(inner: string, text: string, jsonPath: string): Part {
  if (inner === 'path') return { kind: 'path' };
  if (inner === 'name') return { kind: 'name' };
  const meta = /^meta\.([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)$/.exec(inner);
  if (meta) return { kind: 'meta', key: meta[1] };
  throw new SluiceError('SLUICE_E_CONFIG', `unknown placeholder {${inner}} in URL template "${text}"`, {
    context: { jsonPath, hint: 'use {path}, {name} or {meta.KEY}' },
  });
}

function renderPart(part: Exclude<Part, string>, values: UrlTemplateValues, text: string): string {
  switch (part.kind) {
    case 'path':
      return values.path.split('/').map(encodeURIComponent).join('/');
    case 'name':
      return encodeURIComponent(posix.basename(values.path));
    case 'meta': {
      const value = getDotted(values.meta, part.key);
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
        return encodeURIComponent(String(value));
      }
      const problem = value === undefined || value === null ? 'is missing' : 'is not a string or number';
      throw new SluiceError('SLUICE_E_TEMPLATE', `URL template "${text}": {meta.${part.key}} ${problem} for item "${values.path}"`, {
        retryable: false,
      });
    }
  }
}

function checkMakesUrl(parts: Part[], text: string, jsonPath: string): void {
  const sample = parts.map((p) => (typeof p === 'string' ? p : 'x')).join('');
  let url: URL;
  try {
    url = new URL(sample);
  } catch {
    throw new SluiceError('SLUICE_E_CONFIG', `"${text}" is not an absolute URL`, {
      context: { jsonPath, hint: 'start it with http:// or https://' },
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SluiceError('SLUICE_E_CONFIG', `"${text}" must use http or https, not ${url.protocol}`, {
      context: { jsonPath },
    });
  }
}
