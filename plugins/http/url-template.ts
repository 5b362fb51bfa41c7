/**
 * URL templates of the http plugins, on top of core/template.ts: `{path}`, `{name}`,
 * `{meta.KEY}`, `{date:%Y}`… with every substituted value URL-encoded segment by segment, so
 * `{path}` keeps its slashes while `?`, `#`, `&`, spaces and non-ASCII are escaped. (A `/`
 * inside a meta value therefore stays a path separator: core's `escape` hook does not say
 * which placeholder a value came from.)
 */
import { SluiceError } from '../../core/errors.js';
import type { Item } from '../../core/plugin-api.js';
import { compileTemplate } from '../../core/template.js';

export interface UrlTemplate {
  readonly text: string;
  /** True when the template reads `{meta.…}`: then only listed items can fill it. */
  readonly usesMeta: boolean;
  /** Renders for `item`, with `{path}`/`{name}` taken from `path` (e.g. a sink's destination). */
  render(item: Pick<Item, 'meta'> & Partial<Item>, path: string): URL;
}

const encodeSegments = (value: string) => value.split('/').map(encodeURIComponent).join('/');

/** Parses `text` once; a bad placeholder or a template not starting with http(s):// is a config error at `jsonPath`. */
export function compileUrlTemplate(text: string, jsonPath: string): UrlTemplate {
  if (!/^https?:\/\/[^/{]/i.test(text)) {
    throw new SluiceError(
      'SLUICE_E_CONFIG',
      `URL template "${text}" must start with http:// or https:// and a host`,
      {
        context: { jsonPath },
      },
    );
  }
  const template = compileTemplate(text, { jsonPath });
  return {
    text,
    usesMeta: /\{meta\./.test(text),
    render(item, path) {
      const target = { source: '', checksums: {}, ...item, path } as Item;
      const rendered = template.render(target, { now: new Date(), escape: encodeSegments });
      try {
        return new URL(rendered);
      } catch {
        throw new SluiceError(
          'SLUICE_E_TEMPLATE',
          `URL template "${text}" gave an invalid URL for "${path}"`,
          {
            retryable: false,
          },
        );
      }
    },
  };
}
