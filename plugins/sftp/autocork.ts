/**
 * ssh2 writes every SSH packet to its socket with its own `write`: with TCP_NODELAY each is a
 * syscall (and on loopback the receiver's whole receive path with it). Several packets are often
 * written in one turn of the event loop — a 1 MiB chunk of an upload is 32 WRITE requests, a
 * burst of READ answers asks for as many new READs, a window adjust rides along — so the socket
 * is corked on the first write of a turn and uncorked when the turn's synchronous work is done
 * (`process.nextTick`, as Node's http client does): the turn's packets leave in one `writev`.
 * Nothing waits longer than that turn, so no round trip is added.
 */
import type { Writable } from 'node:stream';

const CORKED = Symbol('sluice.autocork');

export function autocork(sock: Writable): void {
  const target = sock as Writable & { [CORKED]?: true };
  if (target[CORKED]) return;
  target[CORKED] = true;
  const write = sock.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    sock.uncork();
  };
  sock.write = function (this: Writable, ...args: Parameters<Writable['write']>): boolean {
    if (!corked && !sock.destroyed) {
      corked = true;
      sock.cork();
      process.nextTick(uncork);
    }
    return (write as (...a: Parameters<Writable['write']>) => boolean).apply(this, args);
  } as Writable['write'];
}
