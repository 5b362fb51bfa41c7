import { Writable } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { autocork } from './autocork.js';

/** A sink that records each batch the stream hands down (one entry per syscall on a socket). */
function recorder() {
  const batches: string[][] = [];
  const sink = new Writable({
    writev(chunks, done) {
      batches.push(chunks.map((c) => String(c.chunk)));
      done();
    },
    write(chunk, _enc, done) {
      batches.push([String(chunk)]);
      done();
    },
  });
  return { sink, batches };
}

describe('autocork', () => {
  it('hands the writes of one turn down as one batch, and each later turn as its own', async () => {
    const { sink, batches } = recorder();
    autocork(sink);
    sink.write('a');
    sink.write('b');
    sink.write('c');
    await turn();
    sink.write('d');
    await turn();
    sink.write('e');
    sink.write('f');
    await turn();
    expect(batches).toEqual([['a', 'b', 'c'], ['d'], ['e', 'f']]);
    expect(sink.writableCorked).toBe(0);
  });

  it('keeps write callbacks, the return value and end working, and wraps a socket once', async () => {
    const { sink, batches } = recorder();
    autocork(sink);
    const wrapped = sink.write;
    autocork(sink);
    expect(sink.write).toBe(wrapped);
    const done: string[] = [];
    expect(sink.write('x', () => done.push('x'))).toBe(true);
    sink.write('y', () => done.push('y'));
    await turn();
    expect(done).toEqual(['x', 'y']);
    await new Promise<void>((resolve) => sink.end('z', resolve));
    expect(batches).toEqual([['x', 'y'], ['z']]);
  });

  it('sends what a turn wrote before its end() (a DISCONNECT before the FIN), in order', async () => {
    const { sink, batches } = recorder();
    autocork(sink);
    sink.write('bye');
    await new Promise<void>((resolve) => sink.end(resolve));
    expect(batches).toEqual([['bye']]);
  });

  it('writes nothing after a destroy, and a destroy before the turn ends throws nowhere', async () => {
    const { sink, batches } = recorder();
    autocork(sink);
    sink.on('error', () => {});
    sink.write('a');
    sink.destroy();
    await turn();
    expect(batches).toEqual([]);
  });
});
