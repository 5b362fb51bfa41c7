/** The `prefix` / `prefixes` / `match` fields of the object-store sources, declared once. */
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';

export function prefixFields(noun: 'key' | 'name', example: string) {
  return {
    prefix: Type.String({
      default: '',
      description: `Folder (${noun} prefix) to list; a trailing \`/\` is implied. Item paths are ${noun === 'key' ? 'keys' : 'blob names'} relative to it.`,
      examples: [example],
    }),
    prefixes: Type.Optional(
      Type.Array(Type.String(), {
        minItems: 1,
        description:
          'Several folders to list, in order, instead of `prefix`; each item keeps its path relative to the prefix that found it (a key under two of them is listed once), and carries that prefix as its root.',
      }),
    ),
    match: Type.Union([Type.Literal('all'), Type.Literal('first')], {
      default: 'all',
      description:
        'With `prefixes`: `all` takes every object under every prefix; `first` takes a relative path only from the first prefix that has it — the same path under a later prefix is hidden: neither processed nor tidied (the paths seen are kept in memory for the pass).',
    }),
  };
}

export function validatePrefixes(cfg: { prefix: string; prefixes?: string[] }): void {
  if (cfg.prefixes && cfg.prefix !== '') {
    throw new SluiceError('SLUICE_E_CONFIG', 'use either prefix or prefixes, not both', {
      context: { jsonPath: '/prefixes' },
    });
  }
}
