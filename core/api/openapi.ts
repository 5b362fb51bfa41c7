/**
 * The OpenAPI 3.1 document served at `/api/openapi.json`: every route of the status server and
 * the control API (test/e2e/control-api.test.ts checks that each route served is described).
 */

const error = { $ref: '#/components/schemas/Error' };
const json = (schema: unknown) => ({ 'application/json': { schema } });
const errors = {
  '401': { description: 'A token is needed and was missing or wrong', content: json(error) },
  '403': {
    description: 'No API token is configured (--api-token-file or $SLUICE_API_TOKEN)',
    content: json(error),
  },
};
const runId = { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };

export const OPENAPI_DOCUMENT = {
  openapi: '3.1.0',
  info: {
    title: 'Sluice control API',
    version: '1',
    description:
      'Served by `sluice watch` and `sluice run` with `--metrics-port`. Every POST needs `Authorization: Bearer <token>` (the token from --api-token-file or $SLUICE_API_TOKEN); when the server binds anything but loopback, every request but /healthz and / does too. Without a configured token the control endpoints answer 403.',
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Error: {
        type: 'object',
        required: ['error'],
        properties: {
          error: { type: 'string' },
          details: {
            type: 'array',
            items: { type: 'string' },
            description: 'For an invalid pipeline: the `file:line:col: …` lines `sluice validate` prints',
          },
        },
      },
      RunRequest: {
        type: 'object',
        additionalProperties: false,
        properties: {
          vars: {
            type: 'object',
            additionalProperties: { type: 'string' },
            description: '${VAR} values for this run, on top of the server’s --var (validated like --var)',
          },
          force: { type: 'boolean', default: false, description: 'Process items the ledger has done' },
          dry_run: { type: 'boolean', default: false, description: 'Write nothing, touch no source' },
        },
      },
      Failure: {
        type: 'object',
        properties: {
          source: { type: 'string' },
          path: { type: 'string' },
          code: { type: 'string', description: 'SLUICE_E_… (docs/errors.md)' },
          reason: { type: 'string' },
        },
      },
      Run: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          pipeline: { type: 'string' },
          file: { type: 'string' },
          state: { enum: ['queued', 'listing', 'running', 'succeeded', 'failed', 'cancelled'] },
          queue_position: {
            type: ['integer', 'null'],
            description: 'While queued: 1 = runs after the pass in progress',
          },
          vars: { type: 'object', additionalProperties: { type: 'string' } },
          force: { type: 'boolean' },
          dry_run: { type: 'boolean' },
          cancel_requested: { type: 'boolean' },
          requested_at: { type: 'string', format: 'date-time' },
          started_at: { type: ['string', 'null'], format: 'date-time' },
          ended_at: { type: ['string', 'null'], format: 'date-time' },
          total: { type: ['integer', 'null'], description: 'Items listed; null until the listing has ended' },
          done: { type: 'integer' },
          failed: { type: 'integer' },
          skipped: { type: 'integer' },
          percent: {
            type: 'number',
            minimum: 0,
            maximum: 100,
            description: 'Never goes back; 100 once ended',
          },
          bytes_in: { type: 'integer' },
          bytes_out: { type: 'integer' },
          bytes_per_second: { type: 'integer' },
          items_per_second: { type: 'number' },
          eta_seconds: { type: ['integer', 'null'] },
          failures: { type: 'array', items: { $ref: '#/components/schemas/Failure' } },
          error: { type: ['string', 'null'], description: 'Why the run could not run (or was interrupted)' },
          summary: { type: ['object', 'null'], description: 'The pass summary, once ended' },
        },
      },
    },
  },
  paths: {
    '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'ok' } } } },
    '/': { get: { summary: 'The status page (HTML)', responses: { '200': { description: 'HTML' } } } },
    '/status': {
      get: {
        summary: 'Every pipeline’s state, counters, pass in progress and recent failures',
        security: [{}, { bearer: [] }],
        responses: { '200': { description: 'Status', content: json({ type: 'object' }) }, ...errors },
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus metrics',
        security: [{}, { bearer: [] }],
        responses: { '200': { description: 'Prometheus text format' }, ...errors },
      },
    },
    '/api/openapi.json': {
      get: {
        summary: 'This document',
        security: [{}, { bearer: [] }],
        responses: { '200': { description: 'OpenAPI 3.1', content: json({ type: 'object' }) }, ...errors },
      },
    },
    '/api/pipelines': {
      get: {
        summary: 'Every loaded pipeline: name, file, version (hash), trigger, state, last pass',
        security: [{}, { bearer: [] }],
        responses: {
          '200': {
            description: 'Pipelines',
            content: json({
              type: 'object',
              properties: { pipelines: { type: 'array', items: { type: 'object' } } },
            }),
          },
          ...errors,
        },
      },
    },
    '/api/pipelines/{name}/runs': {
      post: {
        summary: 'Start a run (queued behind the pass in progress, never overlapping it)',
        security: [{ bearer: [] }],
        parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: { required: false, content: json({ $ref: '#/components/schemas/RunRequest' }) },
        responses: {
          '202': {
            description: 'Accepted',
            content: json({
              type: 'object',
              properties: {
                run_id: { type: 'string' },
                state: { type: 'string' },
                queue_position: { type: ['integer', 'null'] },
                href: { type: 'string' },
              },
            }),
          },
          '400': {
            description: 'Bad body, or the pipeline is invalid with these vars',
            content: json(error),
          },
          '404': { description: 'No such pipeline', content: json(error) },
          '409': {
            description: 'The pipeline has no valid version, or watches its source',
            content: json(error),
          },
          ...errors,
        },
      },
    },
    '/api/pipelines/{name}/retry': {
      post: {
        summary:
          'Replay parked (failed, dead-lettered) items: re-open their ledger records and start a run, as `sluice retry` does',
        description:
          'The run is queued like POST /api/pipelines/{name}/runs (same run record, followed the same way). Embedded mode only: with --cluster, use `sluice retry --cluster` (409).',
        security: [{ bearer: [] }],
        parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: json({
            oneOf: [
              {
                type: 'object',
                additionalProperties: false,
                required: ['paths'],
                properties: {
                  paths: {
                    type: 'array',
                    minItems: 1,
                    items: { type: 'string' },
                    description: 'Paths as `sluice history` shows them (`path` or `source:path`)',
                  },
                },
              },
              {
                type: 'object',
                additionalProperties: false,
                required: ['all'],
                properties: { all: { const: true } },
              },
            ],
          }),
        },
        responses: {
          '202': {
            description: 'Records re-opened, run accepted',
            content: json({
              type: 'object',
              properties: {
                run_id: { type: 'string' },
                state: { type: 'string' },
                queue_position: { type: ['integer', 'null'] },
                href: { type: 'string' },
                reopened: { type: 'array', items: { type: 'string' }, description: '`source:path` of each' },
              },
            }),
          },
          '400': {
            description:
              'Bad body, or a path has no parked record (named in details); nothing is re-opened then',
            content: json(error),
          },
          '404': { description: 'No such pipeline', content: json(error) },
          '409': {
            description:
              'Cluster mode (use `sluice retry --cluster`), a dry run, no running version, or a watching source',
            content: json(error),
          },
          ...errors,
        },
      },
    },
    '/api/runs': {
      get: {
        summary: 'Recent runs, newest first (kept in the state folders: they survive a restart)',
        security: [{}, { bearer: [] }],
        parameters: [
          { name: 'pipeline', in: 'query', schema: { type: 'string' } },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 50 } },
        ],
        responses: {
          '200': {
            description: 'Runs',
            content: json({
              type: 'object',
              properties: { runs: { type: 'array', items: { $ref: '#/components/schemas/Run' } } },
            }),
          },
          ...errors,
        },
      },
    },
    '/api/runs/{id}': {
      get: {
        summary: 'One run: state, progress, failures, the summary once ended',
        security: [{}, { bearer: [] }],
        parameters: [runId],
        responses: {
          '200': { description: 'The run', content: json({ $ref: '#/components/schemas/Run' }) },
          '404': { description: 'No such run', content: json(error) },
          ...errors,
        },
      },
    },
    '/api/runs/{id}/events': {
      get: {
        summary:
          'Server-Sent Events: started, done, failed, retry (items), state, progress (the Run, every second), then summary (the ended Run); the stream ends after summary',
        security: [{}, { bearer: [] }],
        parameters: [runId],
        responses: {
          '200': {
            description: 'An event stream',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          '404': { description: 'No such run', content: json(error) },
          ...errors,
        },
      },
    },
    '/api/runs/{id}/cancel': {
      post: {
        summary: 'Cancel: a queued run never starts; a running one drains like SIGTERM',
        security: [{ bearer: [] }],
        parameters: [runId],
        responses: {
          '202': { description: 'Cancel requested', content: json({ type: 'object' }) },
          '404': { description: 'No such run', content: json(error) },
          '409': { description: 'The run has ended', content: json(error) },
          ...errors,
        },
      },
    },
  },
} as const;
