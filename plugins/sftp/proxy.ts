/**
 * Reaching the SSH server (or the jump host) through a SOCKS5 or HTTP CONNECT proxy: the
 * socket handed to ssh2 as `sock`. SOCKS5 is the `socks` package's client; CONNECT is a request
 * line and a status line, done here.
 */
import { connect, type Socket } from 'node:net';
import { Type } from '@sinclair/typebox';
import { type ErrorCode, SluiceError } from '../../core/errors.js';
import { registerSecret } from '../../core/observe/redact.js';

export const proxyField = Type.Object(
  {
    url: Type.String({
      minLength: 1,
      description:
        '`socks5://[user:password@]host:port` or `http://[user:password@]host:port` (HTTP CONNECT). Credentials are masked in all output.',
    }),
  },
  {
    additionalProperties: false,
    description: 'Connect through a SOCKS5 or HTTP CONNECT proxy (to the jump host when there is one).',
  },
);

export interface ProxySettings {
  kind: 'socks5' | 'http';
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** The URL without its credentials, for messages. */
  display: string;
}

const DEFAULT_PORTS = { socks5: 1080, http: 8080 };

/** Parses and checks a proxy URL; registers its credentials as secrets. */
export function parseProxyUrl(url: string, jsonPath: string): ProxySettings {
  const invalid = (why: string) =>
    new SluiceError('SLUICE_E_CONFIG', `proxy url ${why}`, { context: { jsonPath } });
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The text may hold a password: do not repeat it.
    throw invalid('is not a URL (expected socks5://host:port or http://host:port)');
  }
  const username = parsed.username ? decodeURIComponent(parsed.username) : undefined;
  const password = parsed.password ? decodeURIComponent(parsed.password) : undefined;
  registerSecret(password);
  registerSecret(parsed.password || undefined);
  const scheme = parsed.protocol.replace(/:$/, '');
  const kind =
    scheme === 'socks5' || scheme === 'socks5h' ? 'socks5' : scheme === 'http' ? 'http' : undefined;
  if (!kind) throw invalid(`scheme "${scheme}" is not supported (socks5:// or http://)`);
  if (!parsed.hostname) throw invalid('names no host');
  if ((parsed.pathname && parsed.pathname !== '/') || parsed.search)
    throw invalid('must be scheme://[user:password@]host:port, without a path');
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = parsed.port ? Number(parsed.port) : DEFAULT_PORTS[kind];
  return { kind, host, port, username, password, display: `${scheme}://${parsed.host}` };
}

/** A TCP socket to `target` through the proxy, ready for the SSH handshake. */
export async function openProxySocket(
  proxy: ProxySettings,
  target: { host: string; port: number; label: string },
  timeoutMs: number,
  errorCode: ErrorCode,
): Promise<Socket> {
  try {
    const socket =
      proxy.kind === 'socks5'
        ? await socks5(proxy, target, timeoutMs)
        : await httpConnect(proxy, target, timeoutMs);
    socket.setNoDelay(true);
    return socket;
  } catch (err) {
    const reason = (err as Error).message;
    return Promise.reject(
      new SluiceError(
        errorCode,
        `cannot reach ${target.label} ${target.host}:${target.port} through proxy ${proxy.display}: ${reason}`,
        // A refused login at the proxy will not fix itself; anything else may be passing.
        { cause: err, retryable: !/auth|407|403/i.test(reason) },
      ),
    );
  }
}

async function socks5(proxy: ProxySettings, target: { host: string; port: number }, timeout: number) {
  const { SocksClient } = await import('socks');
  const { socket } = await SocksClient.createConnection({
    proxy: { host: proxy.host, port: proxy.port, type: 5, userId: proxy.username, password: proxy.password },
    command: 'connect',
    destination: { host: target.host, port: target.port },
    timeout,
  });
  return socket;
}

/** Most bytes a proxy's answer to CONNECT may take before its blank line. */
const MAX_CONNECT_RESPONSE = 16 * 1024;

function httpConnect(proxy: ProxySettings, target: { host: string; port: number }, timeoutMs: number) {
  return new Promise<Socket>((resolvePromise, reject) => {
    const socket = connect({ host: proxy.host, port: proxy.port });
    let answer = Buffer.alloc(0);
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`no answer to CONNECT within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      answer = Buffer.concat([answer, chunk]);
      const end = answer.indexOf('\r\n\r\n');
      if (end < 0) {
        if (answer.length > MAX_CONNECT_RESPONSE) fail(new Error('the answer to CONNECT is too long'));
        return;
      }
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      const statusLine = answer.subarray(0, answer.indexOf('\r\n')).toString('latin1');
      if (!/^HTTP\/1\.[01] 2\d\d/.test(statusLine)) {
        fail(new Error(`the proxy answered CONNECT with "${statusLine}"`));
        return;
      }
      // Bytes after the blank line are the SSH server's: give them back to the stream.
      const rest = answer.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolvePromise(socket);
    };
    const onError = (err: Error) => {
      clearTimeout(timer);
      fail(err);
    };
    const onClose = () => onError(new Error('the proxy closed the connection'));
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once('connect', () => {
      const authority = target.host.includes(':')
        ? `[${target.host}]:${target.port}`
        : `${target.host}:${target.port}`;
      const credentials =
        proxy.username === undefined
          ? ''
          : `Proxy-Authorization: Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}\r\n`;
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${credentials}\r\n`);
    });
  });
}
