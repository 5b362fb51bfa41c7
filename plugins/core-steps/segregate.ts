import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { deriveItem } from '../../core/item.js';
import { compileMatcher, type ItemMatcher, matchFields } from '../../core/item-match.js';
import { definePlugin, type Item } from '../../core/plugin-api.js';
import { type CompiledTemplate, compileTemplate } from '../../core/template.js';
import { compileDateRule, DateRule } from './date-rule.js';
import { checkTimezoneConfig, TimezoneField } from './timezone.js';

const Template = (description: string) => Type.String({ description, minLength: 1 });

const Route = Type.Object(
  {
    when: Type.Object(matchFields, {
      additionalProperties: false,
      description:
        'Conditions the item must meet (all of them): name/path globs, regex, ext, size, age, meta.',
    }),
    to: Template('Destination template for items meeting `when`.'),
  },
  { additionalProperties: false },
);

export const segregatePlugin = definePlugin({
  name: 'segregate',
  kind: 'step',
  summary:
    'Routes items into destination folders by date (parsed from the name, path, meta or mtime) and by rules.',
  description: [
    'Sets the item’s `date` and its `destination` (the relative path the sink writes to).',
    '',
    '- With `to`, every item goes there. With `routes`, the first route whose `when` matches wins;',
    '  otherwise `default`; when nothing matches and there is no `default`, the item keeps its',
    '  current destination (its own relative path, unless an earlier step set one).',
    '- Without `date`, the date is the one an earlier step set, else the mtime, else the clock.',
    '- When the `date` rule finds no date (the pattern does not match, or the text is not a valid',
    '  date such as month 13) and the chosen template uses `{date…}`, the item goes to `unmatched`;',
    '  without `unmatched` it fails with a message saying so. A chosen template that does not use',
    '  the date is rendered as usual (`documents/{name}` needs no date).',
    '- Dates are formatted (and date text is parsed) in `timezone`, UTC by default.',
    '- Named groups of a route’s `when.regex` / `regex_path` and of `date.pattern` are',
    '  `{match.NAME}` in the templates: `regex: "^(?<provider>[a-z]+)_"` → `to: "{match.provider}/{name}"`.',
  ].join('\n'),
  config: Type.Object(
    {
      date: Type.Optional(DateRule),
      to: Type.Optional(Template('Destination template for every item (instead of `routes`).')),
      routes: Type.Optional(
        Type.Array(Route, {
          description: 'Rules tried in order; the first whose `when` matches gives the destination.',
        }),
      ),
      default: Type.Optional(Template('Destination template when no route matches.')),
      unmatched: Type.Optional(
        Template(
          'Destination template for items whose date rule found no date, when the chosen template needs it.',
        ),
      ),
      timezone: TimezoneField,
    },
    { additionalProperties: false },
  ),
  examples: [
    {
      title: 'Hourly folders from CDR names, unmatched files to errors/',
      yaml: [
        'date:',
        '  from: name',
        "  pattern: '^CHARGINGCDR_.*-(\\d{8})-?(\\d{2}).*'",
        "  format: '%Y%m%d%H'",
        'to: "segregated/{date:%Y/%m/%d/%H}/{name}"',
        'unmatched: "errors/{name}"',
      ].join('\n'),
    },
    {
      title: 'By file type, with a fallback',
      yaml: [
        'routes:',
        '  - when: { name: ["*.csv", "*.tsv"] }',
        '    to: "tables/{date:%Y/%m}/{name}"',
        '  - when: { name: "*.pdf" }',
        '    to: "documents/{name}"',
        'default: "other/{name}"',
      ].join('\n'),
    },
    { title: 'By modification day', yaml: 'date: { from: mtime }\nto: "{source}/{date:%Y/%m/%d}/{path}"' },
  ],
  create(config) {
    checkTimezoneConfig(config.timezone);
    if (config.to !== undefined && (config.routes !== undefined || config.default !== undefined)) {
      const conflicting = config.routes !== undefined ? 'routes' : 'default';
      throw new SluiceError(
        'SLUICE_E_CONFIG',
        `give either \`to\` (one destination) or \`routes\` with \`default\`, not both \`to\` and \`${conflicting}\``,
        { context: { jsonPath: `/${conflicting}` } },
      );
    }
    const resolveDate = compileDateRule(config.date, config.timezone, '/date');
    const routes: { matches: ItemMatcher; to: CompiledTemplate }[] = (config.routes ?? []).map(
      (route, i) => ({
        matches: compileMatcher(route.when, `/routes/${i}/when`).match,
        to: compileTemplate(route.to, { jsonPath: `/routes/${i}/to`, relativePath: true }),
      }),
    );
    const single =
      config.to === undefined
        ? undefined
        : compileTemplate(config.to, { jsonPath: '/to', relativePath: true });
    const fallback =
      config.default === undefined
        ? undefined
        : compileTemplate(config.default, { jsonPath: '/default', relativePath: true });
    const unmatched =
      config.unmatched === undefined
        ? undefined
        : compileTemplate(config.unmatched, { jsonPath: '/unmatched', relativePath: true });

    /** The template for `item`, with the named groups of the route that chose it. */
    const chooseTemplate = (
      item: Item,
      now: Date,
    ): { template: CompiledTemplate | undefined; captures?: Record<string, string> } => {
      if (single) return { template: single };
      for (const route of routes) {
        const captures = route.matches(item, now);
        if (captures) return { template: route.to, captures };
      }
      return { template: fallback };
    };

    return {
      process(item) {
        const now = new Date();
        const outcome = resolveDate(item, now);
        const chosen = chooseTemplate(item, now);
        let template = chosen.template;
        if ('reason' in outcome && template?.needsDate) {
          if (!unmatched) {
            throw new SluiceError(
              'SLUICE_E_TEMPLATE',
              `no date for "${item.path}": ${outcome.reason}, and destination "${template.source}" uses {date}`,
              {
                context: {
                  item: item.path,
                  hint: 'add `unmatched: "<template>"` (e.g. "errors/{name}") to route such items',
                },
                retryable: false,
              },
            );
          }
          template = unmatched;
        }
        const date = 'date' in outcome ? outcome.date : undefined;
        if (!template) return date ? deriveItem(item, { date }) : item;
        const dated = date ? deriveItem(item, { date }) : item;
        const destination = template.render(dated, {
          now,
          timezone: config.timezone,
          sha256: item.checksums.sha256,
          match: { ...('captures' in outcome ? outcome.captures : {}), ...chosen.captures },
        });
        return deriveItem(dated, { destination });
      },
    };
  },
});
