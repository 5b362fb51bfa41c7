/**
 * The HTTP side of a long-running Sluice: `/metrics` (Prometheus), `/healthz`, `/status`
 * (JSON) and `/` (a status page that polls `/status`; plain HTML + script, no build step).
 * Binds 127.0.0.1 unless told otherwise: the status names files and paths. The control API
 * (core/api, injected by the CLI as `intercept`) sees every request first: it checks the token
 * and serves `/api/`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorMessage } from '../errors.js';
import type { SluiceMetrics } from './metrics.js';
import { STATUS_PAGE_HTML } from './status-page.js';

export interface StatusServerOptions {
  host?: string;
  port: number;
  metrics: SluiceMetrics;
  /** The `/status` document. */
  status: () => unknown;
  /** Sees each request first; returns true when it answered it. */
  intercept?: (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams) => boolean;
}

export interface StatusServer {
  url: string;
  close(): Promise<void>;
}

export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  const server: Server = createServer((req, res) => {
    const url = new URL(`http://localhost${req.url ?? '/'}`);
    const path = url.pathname;
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (options.intercept?.(req, res, path, url.searchParams)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    if (path === '/healthz') return send(200, 'text/plain', 'ok\n');
    if (path === '/status') {
      try {
        return send(200, 'application/json', `${JSON.stringify(options.status(), null, 2)}\n`);
      } catch (err) {
        return send(500, 'text/plain', `status failed: ${errorMessage(err)}\n`);
      }
    }
    if (path === '/') return send(200, 'text/html; charset=utf-8', STATUS_PAGE_HTML);
    if (path === '/metrics') {
      options.metrics.text().then(
        (text) => send(200, options.metrics.contentType, text),
        (err) => send(500, 'text/plain', `metrics failed: ${errorMessage(err)}\n`),
      );
      return;
    }
    send(404, 'text/plain', 'not found: try /, /status, /metrics, /healthz or /api/openapi.json\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
