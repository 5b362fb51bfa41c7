/** The core pipeline shape. Plugin configs are validated in a second pass by each plugin. */
import { type Static, Type } from '@sinclair/typebox';
import { Duration } from '../schema-fragments.js';

/** `{plugin_name: config}` — a single-key map; the value is checked by the plugin's schema. */
export const PluginEntry = Type.Record(Type.String(), Type.Any(), {
  minProperties: 1,
  maxProperties: 1,
  description: 'A plugin as a single-key map: `{plugin_name: config}`.',
});

export const RetryPolicy = Type.Object(
  {
    max_attempts: Type.Integer({
      minimum: 1,
      default: 3,
      description: 'Attempts per item, the first included.',
    }),
    initial_delay: Duration({ default: '1s', description: 'Delay before the first retry.' }),
    max_delay: Duration({ default: '60s', description: 'Upper bound of any delay.' }),
    multiplier: Type.Number({ minimum: 1, default: 2, description: 'Growth of the delay per attempt.' }),
    jitter: Type.Union([Type.Literal('full'), Type.Literal('none')], {
      default: 'full',
      description: 'Full jitter: each delay is uniform in [0, computed delay] (AWS architecture blog).',
    }),
  },
  {
    additionalProperties: false,
    description: 'Retry of failed items: exponential backoff with full jitter.',
  },
);

export const Policy = Type.Object(
  {
    concurrency: Type.Integer({ minimum: 1, default: 4, description: 'Items (files) in flight at once.' }),
    rate_limit: Type.Optional(
      Type.Object(
        {
          per_second: Type.Number({ exclusiveMinimum: 0, description: 'Items started per second at most.' }),
        },
        { additionalProperties: false },
      ),
    ),
    retry: Type.Optional(RetryPolicy),
    drain_timeout: Type.Optional(
      Duration({
        default: '30s',
        description: 'On stop/reload: how long in-flight items may finish before they are aborted.',
      }),
    ),
  },
  { additionalProperties: false },
);

export const Trigger = Type.Object(
  {
    every: Type.Optional(Duration({ description: 'Run a pass at this interval.' })),
    cron: Type.Optional(
      Type.String({ description: 'Cron expression (5 or 6 fields) for when passes start.' }),
    ),
    timezone: Type.Optional(
      Type.String({ description: 'IANA timezone of the cron expression (default UTC).' }),
    ),
  },
  { additionalProperties: false, description: 'When passes run. Default: once.' },
);

export const PipelineShape = Type.Object(
  {
    name: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$',
      description: 'Pipeline name (ledger key, logs).',
    }),
    description: Type.Optional(Type.String()),
    plugins: Type.Optional(
      Type.Array(Type.String(), {
        description: 'Third-party plugin modules: npm package names or paths relative to this file.',
      }),
    ),
    trigger: Type.Optional(Trigger),
    source: Type.Optional(PluginEntry),
    sources: Type.Optional(Type.Array(PluginEntry, { minItems: 1 })),
    steps: Type.Optional(Type.Array(PluginEntry)),
    sink: Type.Optional(PluginEntry),
    sinks: Type.Optional(
      Type.Array(PluginEntry, { minItems: 1, description: 'Fan-out: every item is committed to each.' }),
    ),
    on_error: Type.Optional(PluginEntry),
    policy: Type.Optional(Policy),
    state: Type.Optional(
      Type.Object(
        {
          dir: Type.Optional(
            Type.String({ description: 'State folder (ledger); default `.sluice/` beside the pipeline.' }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type PipelineShapeT = Static<typeof PipelineShape>;
export type PolicyT = Static<typeof Policy>;
export type RetryPolicyT = Static<typeof RetryPolicy>;
export type TriggerT = Static<typeof Trigger>;
