/**
 * `GET /api/runs/{id}/events`: a run as Server-Sent Events, for any HTTP client (curl -N,
 * EventSource). Each item event as it happens (`started`, `done`, `failed`, `retry`), the run's
 * `state` changes, a `progress` event (the `GET /api/runs/{id}` record) every second, and
 * `summary` (the ended record) last; then the stream ends. Item and state events carry an `id`:
 * a client connecting late gets the ones it missed (the newest 5,000), and one reconnecting with
 * `Last-Event-ID` gets those after it. After the run ended: the kept events, then `summary`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RunTracker } from './runs.js';

const TICK_MS = 1000;

export function streamRunEvents(run: RunTracker, req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    // Proxies such as nginx buffer responses unless told not to.
    'x-accel-buffering': 'no',
  });
  const send = (event: string, data: unknown, id?: number) => {
    res.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const after = Number(req.headers['last-event-id'] ?? 0) || 0;
  send('progress', run.snapshot());
  let tick: NodeJS.Timeout | undefined;
  let unsubscribe: () => void = () => undefined;
  let replaying = true;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearInterval(tick);
    unsubscribe();
    send('progress', run.snapshot());
    send('summary', run.snapshot());
    res.end();
  };
  unsubscribe = run.subscribe((event, seq) => {
    send(event.type, event.data, seq);
    if (!replaying && run.ended) finish();
  }, after);
  replaying = false;
  if (run.ended) {
    finish();
    return;
  }
  tick = setInterval(() => send('progress', run.snapshot()), TICK_MS);
  req.on('close', () => {
    clearInterval(tick);
    unsubscribe();
  });
}
