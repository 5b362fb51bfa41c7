/**
 * The way to the SFTP server: straight TCP, through a proxy, through an SSH jump host (the
 * target reached by a `direct-tcpip` channel the jump host opens), or a proxy to the jump host.
 * The jump host's key is pinned and checked like the target's.
 */
import { Socket } from 'node:net';
import type { Duplex, Writable } from 'node:stream';
import type { Client } from 'ssh2';
import { type ErrorCode, SluiceError } from '../../core/errors.js';
import { autocork } from './autocork.js';
import { hopLogin, loginFailure, type SshHop } from './hop.js';
import { openProxySocket, type ProxySettings } from './proxy.js';

export interface RouteSettings {
  target: SshHop;
  jump?: SshHop;
  proxy?: ProxySettings;
  connectTimeoutMs: number;
  keepaliveMs: number;
  errorCode: ErrorCode;
  isRetryable: (err: unknown) => boolean | undefined;
}

export interface Route {
  /** The stream ssh2 speaks to the target over; undefined: ssh2 opens its own TCP connection. */
  sock?: Duplex;
  /** Closes what the route opened (the jump host's connection, the proxy socket). */
  close(): void;
}

export async function openRoute(settings: RouteSettings): Promise<Route> {
  const firstHop = settings.jump ?? settings.target;
  const proxied = settings.proxy
    ? await openProxySocket(settings.proxy, firstHop, settings.connectTimeoutMs, settings.errorCode)
    : undefined;
  if (!settings.jump) return { sock: proxied, close: () => proxied?.destroy() };
  try {
    return await throughJump(settings, settings.jump, proxied);
  } catch (err) {
    proxied?.destroy();
    throw err;
  }
}

async function throughJump(settings: RouteSettings, jump: SshHop, sock: Duplex | undefined): Promise<Route> {
  const { Client: SshClient } = await import('ssh2');
  const client: Client = new SshClient();
  const login = hopLogin(jump);
  const close = () => client.end();
  try {
    await new Promise<void>((resolvePromise, reject) => {
      client.once('ready', resolvePromise);
      client.once('error', reject);
      client.once('close', () => reject(new Error('connection closed during the handshake')));
      client.once('connect', () => {
        client.setNoDelay(true);
        const own = (client as unknown as { _sock?: Writable })._sock;
        if (own instanceof Socket) autocork(own);
      });
      client.connect({
        ...login.options,
        sock,
        readyTimeout: settings.connectTimeoutMs,
        keepaliveInterval: settings.keepaliveMs,
        keepaliveCountMax: 3,
      });
    });
  } catch (err) {
    close();
    throw loginFailure(jump, login.seen, err, settings.errorCode, settings.isRetryable);
  }
  // Later errors end the forwarded channel, which the target's session sees as a lost connection.
  client.on('error', () => {});
  const { host, port } = settings.target;
  try {
    // A jump host that took the login but never answers the channel open would hang the pool.
    let timer: NodeJS.Timeout | undefined;
    const channel = await new Promise<Duplex>((resolvePromise, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `no answer to opening a channel to ${host}:${port} within ${settings.connectTimeoutMs} ms`,
            ),
          ),
        settings.connectTimeoutMs,
      );
      client.forwardOut('127.0.0.1', 0, host, port, (err, stream) =>
        err ? reject(err) : resolvePromise(stream),
      );
    }).finally(() => clearTimeout(timer));
    channel.once('close', close);
    return { sock: channel, close };
  } catch (err) {
    close();
    const reason = (err as { message?: unknown })?.message ?? String(err);
    throw new SluiceError(
      settings.errorCode,
      `${jump.label} ${jump.host}:${jump.port} could not open a connection to ${host}:${port}: ${reason}`,
      { cause: err, retryable: settings.isRetryable(err) ?? true },
    );
  }
}
