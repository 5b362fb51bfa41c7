import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { deriveItem } from '../../core/item.js';
import { definePlugin } from '../../core/plugin-api.js';
import { compileTemplate } from '../../core/template.js';
import { checkTimezoneConfig, TimezoneField } from './timezone.js';

/** Why `path` is not a safe relative path, or undefined when it is. */
function unsafePathReason(path: string): string | undefined {
  if (path === '') return 'it is empty';
  if (path.includes('\0')) return 'it contains a NUL character';
  if (path.startsWith('/') || path.startsWith('\\') || /^[A-Za-z]:/.test(path)) return 'it is absolute';
  if (path.split(/[/\\]/).includes('..')) return 'it contains a ".." segment';
  if (path.endsWith('/')) return 'it ends with "/" (no file name)';
  return undefined;
}

export const renamePlugin = definePlugin({
  name: 'rename',
  kind: 'step',
  summary: 'Gives each item a new relative path from a template (`{dir}/{stem}-{date:%Y%m%d}.{ext}`).',
  description: [
    'The rendered text is the item’s whole new relative path: write `{dir}/` to keep its folder.',
    'Later templates (`{name}`, `{path}`…) see the new path; a `destination` already set by an',
    'earlier `segregate` is kept. A result that is empty, absolute or contains `..` fails the item',
    '(SLUICE_E_DESTINATION).',
  ].join(' '),
  config: Type.Object(
    {
      to: Type.String({ minLength: 1, description: 'Template of the new relative path.' }),
      timezone: TimezoneField,
    },
    { additionalProperties: false },
  ),
  examples: [
    { title: 'Stamp the date into the name, same folder', yaml: 'to: "{dir}/{stem}-{date:%Y%m%d}.{ext}"' },
    { title: 'Flatten into the root', yaml: 'to: "{name}"' },
  ],
  create(config) {
    checkTimezoneConfig(config.timezone);
    const template = compileTemplate(config.to, { jsonPath: '/to', relativePath: true });
    return {
      process(item) {
        const path = template.render(item, {
          now: new Date(),
          timezone: config.timezone,
          sha256: item.checksums.sha256,
        });
        const reason = unsafePathReason(path);
        if (reason) {
          throw new SluiceError(
            'SLUICE_E_DESTINATION',
            `rename of "${item.path}" with "${template.source}" gives "${path}", which is not a safe relative path: ${reason}`,
            { context: { item: item.path }, retryable: false },
          );
        }
        return deriveItem(item, { path });
      },
    };
  },
});
