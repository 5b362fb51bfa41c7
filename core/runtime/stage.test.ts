import { describe, expect, it } from 'vitest';
import { linkSignals } from './stage.js';

describe('linkSignals', () => {
  it('aborts when either signal aborts, with that reason', () => {
    const parent = new AbortController();
    const other = new AbortController();
    const linked = linkSignals(parent.signal, other.signal);
    other.abort(new Error('body failed'));
    expect(linked.signal.aborted).toBe(true);
    expect((linked.signal.reason as Error).message).toBe('body failed');
  });

  it('leaves nothing attached to the long-lived parent once disposed', () => {
    const parent = new AbortController();
    const links = Array.from({ length: 1000 }, () =>
      linkSignals(parent.signal, new AbortController().signal),
    );
    for (const l of links) l.dispose();
    parent.abort(new Error('stop'));
    // Disposed links no longer follow the parent: their listeners are gone.
    expect(links.every((l) => !l.signal.aborted)).toBe(true);
  });

  it('is the aborted signal itself when one already is', () => {
    const parent = new AbortController();
    parent.abort(new Error('already'));
    expect(linkSignals(parent.signal, new AbortController().signal).signal).toBe(parent.signal);
  });
});
