/**
 * Two small forwarding proxies for tests, on 127.0.0.1 at a free port: HTTP CONNECT (RFC 9110
 * §9.3.6, with Basic `Proxy-Authorization`) and SOCKS5 (RFC 1928 CONNECT, with RFC 1929
 * username/password). Each counts the tunnels it opened and the logins it refused.
 */
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

export interface TestProxy {
  host: string;
  port: number;
  /** `scheme://user:password@host:port` for the client under test. */
  url: string;
  stats: { tunnels: number; refused: number };
  stop(): Promise<void>;
}

interface Credentials {
  username: string;
  password: string;
}

/** Pipes `client` to host:port once connected, then hands over any bytes already read. */
function tunnel(client: Socket, host: string, port: number, onOpen: (upstream: Socket) => void): void {
  const upstream = connect({ host, port });
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  upstream.once('connect', () => {
    onOpen(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  upstream.on('error', close).on('close', close);
  client.on('error', close).on('close', close);
}

async function listen(
  server: Server,
  scheme: string,
  creds: Credentials,
  stats: TestProxy['stats'],
): Promise<TestProxy> {
  const live = new Set<Socket>();
  server.on('connection', (s) => {
    live.add(s);
    s.once('close', () => live.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    url: `${scheme}://${encodeURIComponent(creds.username)}:${encodeURIComponent(creds.password)}@127.0.0.1:${port}`,
    stats,
    stop: () =>
      new Promise((resolve) => {
        for (const s of live) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export function startConnectProxy(creds: Credentials): Promise<TestProxy> {
  const stats = { tunnels: 0, refused: 0 };
  const expected = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
  const server = createServer((client) => {
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      client.off('data', onData);
      client.pause();
      const [requestLine, ...headers] = head.slice(0, end).split('\r\n');
      const auth = headers.find((h) => /^proxy-authorization:/i.test(h))?.replace(/^[^:]+:\s*/, '');
      const target = /^CONNECT (\S+):(\d+) HTTP\/1\.[01]$/.exec(requestLine);
      if (!target) {
        client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
        return;
      }
      if (auth !== expected) {
        stats.refused++;
        client.end(
          'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n\r\n',
        );
        return;
      }
      tunnel(client, target[1].replace(/^\[(.*)\]$/, '$1'), Number(target[2]), (upstream) => {
        stats.tunnels++;
        client.write('HTTP/1.1 200 Connection established\r\n\r\n');
        const early = Buffer.from(head.slice(end + 4), 'latin1');
        if (early.length) upstream.write(early);
        client.resume();
      });
    };
    client.on('data', onData);
    client.on('error', () => {});
  });
  return listen(server, 'http', creds, stats);
}

export function startSocks5Proxy(creds: Credentials): Promise<TestProxy> {
  const stats = { tunnels: 0, refused: 0 };
  const server = createServer((client) => {
    let buffer = Buffer.alloc(0);
    let stage: 'greeting' | 'auth' | 'request' = 'greeting';
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (stage === 'greeting') {
          if (buffer.length < 2 || buffer.length < 2 + buffer[1]) return;
          const methods = buffer.subarray(2, 2 + buffer[1]);
          buffer = buffer.subarray(2 + buffer[1]);
          // Only username/password (0x02) is offered back: a client without credentials is refused.
          if (!methods.includes(0x02)) {
            stats.refused++;
            client.end(Buffer.from([5, 0xff]));
            return;
          }
          client.write(Buffer.from([5, 0x02]));
          stage = 'auth';
        } else if (stage === 'auth') {
          if (buffer.length < 2) return;
          const ulen = buffer[1];
          if (buffer.length < 3 + ulen) return;
          const plen = buffer[2 + ulen];
          if (buffer.length < 3 + ulen + plen) return;
          const username = buffer.subarray(2, 2 + ulen).toString();
          const password = buffer.subarray(3 + ulen, 3 + ulen + plen).toString();
          buffer = buffer.subarray(3 + ulen + plen);
          if (username !== creds.username || password !== creds.password) {
            stats.refused++;
            client.end(Buffer.from([1, 1]));
            return;
          }
          client.write(Buffer.from([1, 0]));
          stage = 'request';
        } else {
          if (buffer.length < 5) return;
          const type = buffer[3];
          const addressLength = type === 1 ? 4 : type === 4 ? 16 : 1 + buffer[4];
          if (buffer.length < 4 + addressLength + 2) return;
          const address = buffer.subarray(4, 4 + addressLength);
          const host =
            type === 1
              ? [...address].join('.')
              : type === 3
                ? address.subarray(1).toString()
                : (address.toString('hex').match(/.{4}/g) ?? []).join(':');
          const port = buffer.readUInt16BE(4 + addressLength);
          const early = buffer.subarray(4 + addressLength + 2);
          client.off('data', onData);
          client.pause();
          if (buffer[1] !== 1) {
            client.end(Buffer.from([5, 7, 0, 1, 0, 0, 0, 0, 0, 0]));
            return;
          }
          tunnel(client, host, port, (upstream) => {
            stats.tunnels++;
            client.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]));
            if (early.length) upstream.write(early);
            client.resume();
          });
          return;
        }
      }
    };
    client.on('data', onData);
    client.on('error', () => {});
  });
  return listen(server, 'socks5', creds, stats);
}
