/**
 * The control API, served by the status server (`--metrics-port`) of `watch` and `run`: list the
 * pipelines, start a run of one (with variables, `force`, `dry_run`), follow it (`GET`, or
 * Server-Sent Events), cancel it. Every route is in ROUTES, and every route is described in
 * `openapi.ts` (a test holds them together).
 *
 * A run goes through the pipeline's supervisor (`requestPass`): runs of one pipeline queue in
 * one loop with its scheduled passes, so nothing overlaps, and each run has its own runner (the
 * file loaded with the run's variables) under the pipeline's lock and ledger.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { PipelineSupervisor } from '../runtime/supervisor.js';
import { ApiAuth } from './auth.js';
import { streamRunEvents } from './events.js';
import { HttpError } from './http-error.js';
import { OPENAPI_DOCUMENT } from './openapi.js';
import { parseRetryBody, reopenForRetry } from './retry.js';
import { type RunRecord, RunStore, RunTracker } from './runs.js';

export interface ControlApiOptions {
  /** The pipelines of this process (the host's supervisors, as they are now). */
  supervisors: () => readonly PipelineSupervisor[];
  token: string | undefined;
  /** The server binds loopback only: GETs need no token then. */
  loopback: boolean;
  log: Logger;
}

type Params = Record<string, string>;
interface Route {
  method: 'GET' | 'POST';
  /** As in the OpenAPI document: `{name}` is one path segment. */
  path: string;
  handle(
    api: ControlApi,
    req: IncomingMessage,
    res: ServerResponse,
    params: Params,
    query: URLSearchParams,
  ): void | Promise<void>;
}

const MAX_BODY = 64 * 1024;
const MAX_LISTED = 100;

export { HttpError };

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, `the request body is over ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `the request body is not JSON: ${(err as Error).message}`);
  }
}

/** `{"vars": {...}, "force": false, "dry_run": false}`, every key optional, nothing else. */
export function parseRunBody(body: unknown): {
  vars: Record<string, string>;
  force: boolean;
  dryRun: boolean;
} {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new HttpError(
      400,
      'the request body must be a JSON object: {"vars": {...}, "force": false, "dry_run": false}',
    );
  const { vars = {}, force = false, dry_run: dryRun = false, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    throw new HttpError(
      400,
      `unknown key(s) in the request body: ${unknown.join(', ')} (known: vars, force, dry_run)`,
    );
  if (vars === null || typeof vars !== 'object' || Array.isArray(vars))
    throw new HttpError(400, '"vars" must be an object of strings, like {"PROVIDER": "beta"}');
  for (const [k, v] of Object.entries(vars)) {
    if (typeof v !== 'string')
      throw new HttpError(400, `vars.${k} must be a string, got ${JSON.stringify(v)}`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new HttpError(400, `"${k}" is not a variable name`);
  }
  if (typeof force !== 'boolean') throw new HttpError(400, '"force" must be true or false');
  if (typeof dryRun !== 'boolean') throw new HttpError(400, '"dry_run" must be true or false');
  return { vars: vars as Record<string, string>, force, dryRun };
}

export const ROUTES: Route[] = [
  {
    method: 'GET',
    path: '/api/openapi.json',
    handle: (_api, _req, res) => sendJson(res, 200, OPENAPI_DOCUMENT),
  },
  {
    method: 'GET',
    path: '/api/pipelines',
    handle: (api, _req, res) => sendJson(res, 200, { pipelines: api.pipelines() }),
  },
  {
    method: 'POST',
    path: '/api/pipelines/{name}/runs',
    handle: async (api, req, res, params) => {
      const run = await api.startRun(params.name, parseRunBody(await readJson(req)));
      sendJson(res, 202, api.accepted(run));
    },
  },
  {
    method: 'POST',
    path: '/api/pipelines/{name}/retry',
    handle: async (api, req, res, params) => {
      const which = parseRetryBody(await readJson(req));
      const reopened = await reopenForRetry(api.supervisor(params.name), which);
      const run = await api.startRun(params.name, { vars: {}, force: false, dryRun: false });
      sendJson(res, 202, { ...api.accepted(run), reopened });
    },
  },
  {
    method: 'GET',
    path: '/api/runs',
    handle: (api, _req, res, _params, query) => {
      const limit = Number(query.get('limit') ?? 50);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LISTED)
        throw new HttpError(400, `limit is a whole number from 1 to ${MAX_LISTED}`);
      sendJson(res, 200, { runs: api.runs(query.get('pipeline') ?? undefined).slice(0, limit) });
    },
  },
  {
    method: 'GET',
    path: '/api/runs/{id}',
    handle: (api, _req, res, params) => sendJson(res, 200, api.run(params.id)),
  },
  {
    method: 'GET',
    path: '/api/runs/{id}/events',
    handle: (api, req, res, params) => {
      const run = api.live(params.id);
      if (run) return streamRunEvents(run, req, res);
      // A run of an earlier process: it ended; its record is all there is to send.
      const record = api.run(params.id);
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`event: summary\ndata: ${JSON.stringify(record)}\n\n`);
    },
  },
  {
    method: 'POST',
    path: '/api/runs/{id}/cancel',
    handle: (api, _req, res, params) => {
      const run = api.live(params.id);
      if (!run) {
        api.run(params.id); // 404 when unknown
        throw new HttpError(409, `run ${params.id} has ended already`);
      }
      if (run.ended) throw new HttpError(409, `run ${params.id} has ended already (${run.state})`);
      run.requestCancel();
      api.persist(run);
      sendJson(res, 202, { run_id: run.id, state: run.snapshot().state, cancel_requested: true });
    },
  },
];

const compiled = ROUTES.map((r) => ({
  route: r,
  pattern: new RegExp(`^${r.path.replace(/\{(\w+)\}/g, '(?<$1>[^/]+)')}$`),
}));

export class ControlApi {
  private readonly auth: ApiAuth;
  /** Runs of this process, by id (they are also in their state folder's store). */
  private readonly liveRuns = new Map<string, RunTracker>();
  private readonly stores = new Map<string, RunStore>();

  constructor(private readonly options: ControlApiOptions) {
    this.auth = new ApiAuth(options.token, options.loopback);
  }

  /**
   * The status server's first look at every request: answers 401/403 when the token is needed
   * and missing, and every `/api/` route. Returns false for what the status server serves itself.
   */
  handle = (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): boolean => {
    const auth = this.auth.check(req, path);
    if (!auth.ok) {
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'cache-control': 'no-store',
      };
      if (auth.status === 401) headers['www-authenticate'] = 'Bearer realm="sluice"';
      res.writeHead(auth.status, headers);
      res.end(`${JSON.stringify({ error: auth.message })}\n`);
      return true;
    }
    if (!path.startsWith('/api/')) return false;
    const methodOk = compiled.filter((c) => c.pattern.test(path));
    const match = methodOk.find(
      (c) => c.route.method === req.method || (req.method === 'HEAD' && c.route.method === 'GET'),
    );
    const fail = (err: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (err instanceof HttpError)
        return sendJson(res, err.status, {
          error: err.message,
          ...(err.details ? { details: err.details } : {}),
        });
      this.options.log.error({ path, err: errorMessage(err) }, 'control API: unexpected error');
      sendJson(res, 500, { error: errorMessage(err) });
    };
    if (!match) {
      if (methodOk.length > 0) {
        res.setHeader('allow', [...new Set(methodOk.map((c) => c.route.method))].join(', '));
        fail(new HttpError(405, `${req.method} is not allowed on ${path}`));
      } else fail(new HttpError(404, `no such API route: ${path} (see /api/openapi.json)`));
      return true;
    }
    const params = Object.fromEntries(
      Object.entries(match.pattern.exec(path)?.groups ?? {}).map(([k, v]) => [k, decodeURIComponent(v)]),
    );
    try {
      Promise.resolve(match.route.handle(this, req, res, params, query)).catch(fail);
    } catch (err) {
      fail(err);
    }
    return true;
  };

  pipelines() {
    return this.options.supervisors().map((s) => {
      const status = s.status();
      return {
        name: status.name,
        file: status.file,
        version: status.hash,
        trigger: status.trigger,
        state: status.state,
        next_pass_at: status.nextPassAt,
        queued_runs: status.queuedRuns,
        current_pass: status.currentPass,
        last_pass: status.lastPass,
        last_error: status.lastError,
        runs_href: `/api/runs?pipeline=${encodeURIComponent(status.name)}`,
      };
    });
  }

  async startRun(
    name: string,
    body: { vars: Record<string, string>; force: boolean; dryRun: boolean },
  ): Promise<RunTracker> {
    const supervisor = this.supervisor(name);
    if (!supervisor.definition)
      throw new HttpError(
        409,
        `pipeline "${name}" has no valid version running (${supervisor.state})${supervisor.lastReload?.error ? `: ${supervisor.lastReload.error}` : ''}`,
      );
    let def: Awaited<ReturnType<PipelineSupervisor['loadWith']>>;
    try {
      def = await supervisor.loadWith(body.vars);
    } catch (err) {
      // The lines `sluice validate --var …` prints, one problem each, with file:line:col.
      throw new HttpError(
        400,
        `pipeline "${name}" is invalid with these vars`,
        errorMessage(err).split('\n'),
      );
    }
    const watching = def.sources.some((s) => s.config.watch === true);
    if (watching)
      throw new HttpError(
        409,
        `pipeline "${name}" watches its source: its pass never ends, so a run would never start (it picks up new files by itself)`,
      );
    const run = new RunTracker(
      { pipeline: def.name, file: supervisor.file, vars: body.vars, force: body.force, dryRun: body.dryRun },
      def.stateDir,
    );
    this.liveRuns.set(run.id, run);
    this.persist(run);
    run.subscribe((e) => {
      if (e.type === 'state') this.persist(run);
    });
    supervisor
      .requestPass({
        vars: body.vars,
        def,
        runId: run.id,
        force: body.force,
        dryRun: body.dryRun,
        events: run.events,
        signal: run.cancel.signal,
        onStart: (pass) => run.begin(pass, false),
      })
      .then(
        (summary) => run.finish(summary),
        (err) => run.fail(err),
      );
    this.options.log.info(
      { pipeline: def.name, run: run.id, vars: Object.keys(body.vars), queued: supervisor.queuedPasses },
      'run requested through the API',
    );
    return run;
  }

  /** The supervisor of pipeline `name`; 404 when none is loaded. */
  supervisor(name: string): PipelineSupervisor {
    const all = this.options.supervisors();
    const supervisor = all.find((s) => s.name === name);
    if (supervisor) return supervisor;
    throw new HttpError(
      404,
      `no pipeline "${name}" is loaded (loaded: ${all.map((s) => s.name).join(', ') || 'none'})`,
    );
  }

  /** The 202 answer to a run asked for. */
  accepted(run: RunTracker) {
    const href = `/api/runs/${run.id}`;
    return { run_id: run.id, state: run.snapshot().state, queue_position: this.queuePosition(run), href };
  }

  /** Where a queued run stands in its pipeline's queue (1 = next); null once it started. */
  queuePosition(run: RunTracker): number | null {
    if (run.state !== 'queued') return null;
    const queued = [...this.liveRuns.values()].filter(
      (r) => r.state === 'queued' && r.snapshot().pipeline === run.snapshot().pipeline,
    );
    return queued.indexOf(run) + 1;
  }

  live(id: string): RunTracker | undefined {
    return this.liveRuns.get(id);
  }

  run(id: string): RunRecord & { queue_position: number | null } {
    const live = this.liveRuns.get(id);
    if (live) return { ...live.snapshot(), queue_position: this.queuePosition(live) };
    const stored = this.stored().find((r) => r.id === id);
    if (!stored) throw new HttpError(404, `no run ${id} (runs are kept per state folder: see /api/runs)`);
    return { ...stored, queue_position: null };
  }

  /** Recent runs, newest first: this process's and the ones kept in the state folders. */
  runs(pipeline?: string): RunRecord[] {
    const live = [...this.liveRuns.values()].map((r) => r.snapshot());
    const ids = new Set(live.map((r) => r.id));
    const all = [...live, ...this.stored().filter((r) => !ids.has(r.id))];
    return all
      .filter((r) => pipeline === undefined || r.pipeline === pipeline)
      .sort((a, b) => b.requested_at.localeCompare(a.requested_at));
  }

  persist(run: RunTracker): void {
    try {
      this.store(run.stateDir).save(run.snapshot());
    } catch (err) {
      this.options.log.warn(
        { run: run.id, stateDir: run.stateDir, err: errorMessage(err) },
        'control API: cannot record the run in the state folder (it is still served from memory)',
      );
    }
  }

  private store(stateDir: string): RunStore {
    let store = this.stores.get(stateDir);
    if (!store) {
      store = new RunStore(stateDir);
      this.stores.set(stateDir, store);
    }
    return store;
  }

  /** Runs kept in the state folders of the pipelines loaded now. */
  private stored(): RunRecord[] {
    const dirs = new Set<string>();
    for (const s of this.options.supervisors()) if (s.definition) dirs.add(s.definition.stateDir);
    for (const r of this.liveRuns.values()) dirs.add(r.stateDir);
    return [...dirs].flatMap((d) => this.store(d).load((id) => this.liveRuns.has(id)));
  }
}
