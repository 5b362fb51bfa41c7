/** The core pipeline shape. Plugin configs are validated in a second pass by each plugin. */
import { type Static, Type } from '@sinclair/typebox';
import { Duration, Secret } from '../schema-fragments.js';

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

export const FailedPolicy = Type.Union(
  [
    Type.Literal('on_change'),
    Type.Literal('retry_every_pass'),
    Type.Object(
      { retry_after: Duration({ description: 'Try a parked item again once this long has passed.' }) },
      { additionalProperties: false },
    ),
  ],
  {
    default: 'on_change',
    description:
      'An item that failed for good is parked: `on_change` (default) tries it again only once its identity changes (a new version, name or content), `retry_every_pass` on every pass, `{retry_after: 6h}` once that long has passed since it failed. `sluice retry` replays parked items.',
  },
);

export const Identity = Type.Union([Type.Literal('version'), Type.Literal('name'), Type.Literal('content')], {
  default: 'version',
  description:
    'What makes two listings "the same file", done once: `version` (path + size/mtime or ETag, per connector), `name` (the path alone: a re-upload of a done name is skipped), `content` (sha256 of the bytes, computed while reading them: the same bytes under any name are done once).',
});

export const Policy = Type.Object(
  {
    concurrency: Type.Integer({ minimum: 1, default: 4, description: 'Items (files) in flight at once.' }),
    threads: Type.Optional(
      Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 64 })], {
        default: 'auto',
        description:
          'Threads that process items (`concurrency` is shared among them; each has its own connections). `auto`: from 4 cores, one per core but one (`os.availableParallelism()` − 1), started once a pass has more than 64 items, so small passes stay on one thread; below 4 cores, one thread (a pool measured slower on 2). A number starts that many threads before the first item; `1`: one thread. Listing, the ledger, the summary and progress stay on the main thread. Sources that cannot open a file by path, watching sources and dry runs always run on one thread.',
      }),
    ),
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
    failed: Type.Optional(FailedPolicy),
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
    run_at_start: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          'With `every` or `cron`: run a pass as soon as the pipeline starts (true), or wait for the first due time (false, e.g. for a nightly job). A reload of the file starts a pass at once only when it changes what the pipeline does and run_at_start is true; an edit of `description` alone (or comments, formatting) keeps the next due time. A reload while a pass runs lets it drain and goes on with a new pass at once.',
      }),
    ),
  },
  { additionalProperties: false, description: 'When passes run. Default: once.' },
);

export const AlertTarget = Type.Union(
  [
    Type.Object(
      {
        webhook: Type.Object(
          {
            url: Secret(Type.String({ description: 'Receives each alert as a JSON POST.' })),
            headers: Type.Optional(Type.Record(Type.String(), Secret(Type.String()))),
          },
          { additionalProperties: false },
        ),
      },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        slack: Type.Object(
          {
            url: Secret(Type.String({ description: 'A Slack-compatible incoming webhook (`{text}`).' })),
            channel: Type.Optional(Type.String()),
          },
          { additionalProperties: false },
        ),
      },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        email: Type.Object(
          {
            smtp: Type.Object(
              {
                host: Type.String(),
                port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
                secure: Type.Optional(
                  Type.Boolean({
                    description: 'TLS from the start (port 465); otherwise STARTTLS when offered.',
                  }),
                ),
                user: Type.Optional(Type.String()),
                password: Type.Optional(Secret(Type.String())),
              },
              { additionalProperties: false },
            ),
            from: Type.String(),
            to: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })]),
          },
          { additionalProperties: false },
        ),
      },
      { additionalProperties: false },
    ),
  ],
  { description: 'A webhook (generic JSON), a Slack-compatible webhook, or email over SMTP.' },
);

export const AlertKinds = Type.Union([
  Type.Literal('failures'),
  Type.Literal('parked'),
  Type.Literal('recovered'),
  Type.Literal('reload_rejected'),
  Type.Literal('missed_arrival'),
]);

export const Alerts = Type.Object(
  {
    targets: Type.Array(AlertTarget, { minItems: 1 }),
    on: Type.Optional(
      Type.Array(AlertKinds, {
        description:
          'Which alerts to send (default: all): `failures` (a pass with failed files), `parked` (a file set aside), `recovered` (a clean pass after failures), `reload_rejected`, `missed_arrival` (see `expect`).',
      }),
    ),
    min_interval: Type.Optional(
      Duration({ default: '1h', description: 'At most one alert of each kind per pipeline in this time.' }),
    ),
  },
  { additionalProperties: false, description: 'Who is told when a pipeline needs a human.' },
);

const DAY = '(mon|tue|wed|thu|fri|sat|sun)';

export const Expect = Type.Object(
  {
    files: Type.Optional(Type.Integer({ minimum: 1, default: 1, description: 'Files expected by then.' })),
    by: Type.String({
      pattern: '^([01]\\d|2[0-3]):[0-5]\\d(:[0-5]\\d)?$',
      description: 'Deadline, `HH:MM` (or `HH:MM:SS`) in `timezone`.',
    }),
    timezone: Type.Optional(Type.String({ description: 'IANA timezone of `by` (default UTC).' })),
    days: Type.Optional(
      Type.Array(Type.String({ pattern: `^${DAY}(-${DAY})?$` }), {
        minItems: 1,
        description: 'Days the files are expected (`mon-fri`, `sat`); default every day.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'Files expected by a deadline: fewer delivered since the previous deadline (or since the start) send a `missed_arrival` alert. Checked in the long-running modes.',
  },
);

export const Report = Type.Object(
  {
    sink: PluginEntry,
    to: Type.String({
      minLength: 1,
      description:
        'Destination of the report under the sink, a template of `{now:STRFTIME}` (when the pass started, UTC) and `{pipeline}`, e.g. `stats/{now:%Y/%m}/{pipeline}-{now:%Y%m%dT%H%M%S}.json`.',
    }),
  },
  {
    additionalProperties: false,
    description:
      "Writes each pass's summary (the JSON of `--summary-json`) through a sink once every item of the pass is finalized or failed. The sink's `if_exists` defaults to `rename` (an earlier report is never replaced); `skip` is refused.",
  },
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
    connections: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' }), PluginEntry, {
        description:
          "This file's own named connections (`name: {plugin: {...}}`), used in a block as `connection: name`; they win over sluice.config.yaml's of the same name.",
      }),
    ),
    policy: Type.Optional(Policy),
    alerts: Type.Optional(Alerts),
    expect: Type.Optional(Expect),
    report: Type.Optional(Report),
    identity: Type.Optional(Identity),
    state: Type.Optional(
      Type.Object(
        {
          dir: Type.Optional(
            Type.String({ description: 'State folder (ledger); default `.sluice/` beside the pipeline.' }),
          ),
          retention: Type.Optional(
            Duration({
              description:
                'Forget finalized records older than this (e.g. 90d); committed and failed (parked) records are kept. Default: keep all.',
            }),
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
export type FailedPolicyT = Static<typeof FailedPolicy>;
export type IdentityT = Static<typeof Identity>;
export type AlertTargetT = Static<typeof AlertTarget>;
export type AlertsT = Static<typeof Alerts>;
export type ExpectT = Static<typeof Expect>;
export type ReportT = Static<typeof Report>;
