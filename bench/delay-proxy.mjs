#!/usr/bin/env node
// A TCP proxy that holds every chunk for a fixed time in each direction: a link with latency,
// in user space (this machine's kernel has no `netem`). It delays and keeps order; it does not
// limit bandwidth, and it keeps reading while chunks wait (as a long link holds bytes in
// flight), pausing a side only when the other side's socket pushes back.
//
// Run alone: node bench/delay-proxy.mjs --target 127.0.0.1:2222 --delay-ms 25
//   (prints `listening <port>` and runs until killed)
// From a script: `await startDelayProxy({ target, delayMs })` runs it as a child process, so it
// keeps forwarding while the script itself waits in execFileSync.
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** Forwards `from` → `to`, each chunk `delayMs` after it arrived. */
function delayedPipe(from, to, delayMs) {
  const queue = [];
  let timer = null;
  let ended = false;
  const flush = () => {
    timer = null;
    const now = performance.now();
    while (queue.length && queue[0].at <= now) {
      const { chunk } = queue.shift();
      if (chunk === null) {
        to.end();
        return;
      }
      if (!to.write(chunk) && !from.isPaused()) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    }
    if (queue.length) timer = setTimeout(flush, queue[0].at - now);
  };
  const enqueue = (chunk) => {
    queue.push({ at: performance.now() + delayMs, chunk });
    if (timer === null) timer = setTimeout(flush, delayMs);
  };
  from.on('data', enqueue);
  from.on('end', () => {
    if (!ended) enqueue(null);
    ended = true;
  });
}

export function serveDelayProxy({ target, delayMs, port = 0 }) {
  const server = createServer({ noDelay: true }, (client) => {
    const upstream = connect({ host: target.host, port: target.port, noDelay: true });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    delayedPipe(client, upstream, delayMs);
    delayedPipe(upstream, client, delayMs);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

/** Starts the proxy as a child process: { host, port, stop() }. */
export function startDelayProxy({ target, delayMs }) {
  const child = spawn(
    process.execPath,
    [
      fileURLToPath(import.meta.url),
      '--target',
      `${target.host}:${target.port}`,
      '--delay-ms',
      String(delayMs),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`delay proxy exited with ${code}`)));
    child.stdout.setEncoding('utf8').on('data', (text) => {
      const port = /listening (\d+)/.exec(text)?.[1];
      if (!port) return;
      child.removeAllListeners('exit');
      resolve({
        host: '127.0.0.1',
        port: Number(port),
        stop: () =>
          new Promise((done) => {
            child.once('exit', done);
            child.kill();
          }),
      });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name) =>
    process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined;
  const [host, port] = arg('--target').split(':');
  const server = await serveDelayProxy({
    target: { host, port: Number(port) },
    delayMs: Number(arg('--delay-ms')),
    port: Number(arg('--port') ?? 0),
  });
  console.log(`listening ${server.address().port}`);
}
