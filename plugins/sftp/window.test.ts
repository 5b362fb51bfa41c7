import { describe, expect, it } from 'vitest';
import { receiveWindowFor, widenReceiveWindow } from './window.js';

const MiB = 1024 * 1024;

/**
 * A channel shaped like ssh2 1.x's SFTP channel, fed as ssh2's client feeds CHANNEL_DATA: the
 * length comes off the window, the data goes to `push`, then ssh2 tops up to 2 MiB at 1 MiB.
 * The real channel is in test/e2e/sftpnet-window.test.ts.
 */
function fakeChannel(window = 2 * MiB) {
  const adjusts: number[] = [];
  const ssh2Adjusts: number[] = [];
  const pushed: Array<Buffer | null> = [];
  const channel = {
    incoming: { window },
    outgoing: { id: 7, state: 'open' },
    _protocol: { channelWindowAdjust: (_id: number, amount: number) => adjusts.push(amount) },
    push: (data: Buffer | null) => {
      pushed.push(data);
    },
  };
  const receive = (bytes: number) => {
    channel.incoming.window -= bytes;
    channel.push(Buffer.alloc(bytes));
    if (channel.incoming.window <= MiB) {
      const amount = 2 * MiB - channel.incoming.window;
      if (amount > 0) {
        ssh2Adjusts.push(amount);
        channel.incoming.window += amount;
      }
    }
  };
  return { channel, adjusts, ssh2Adjusts, pushed, receive };
}

describe('widenReceiveWindow', () => {
  it('grants the server the whole window at once and keeps it above half, ssh2 adding nothing', () => {
    const target = receiveWindowFor(64, 32 * 1024);
    const { channel, adjusts, ssh2Adjusts, pushed, receive } = fakeChannel(2 * MiB - 300);
    expect(widenReceiveWindow(channel, target)).toBe(true);
    expect(adjusts).toEqual([target - (2 * MiB - 300)]);
    let lowest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 1000; i++) {
      receive(32 * 1024 + 13);
      lowest = Math.min(lowest, channel.incoming.window);
    }
    expect(pushed).toHaveLength(1000);
    expect(ssh2Adjusts).toEqual([]);
    expect(lowest).toBeGreaterThan(target / 2 - 32 * 1024 - 13);
    // What was granted is what was received plus the window left: no byte granted twice.
    const granted = 2 * MiB - 300 + adjusts.reduce((a, b) => a + b, 0);
    expect(granted - 1000 * (32 * 1024 + 13)).toBe(channel.incoming.window);
    channel.push(null);
    expect(pushed.at(-1)).toBeNull();
  });

  it('sends nothing on a channel that is closing', () => {
    const { channel, adjusts, receive } = fakeChannel();
    widenReceiveWindow(channel, 8 * MiB);
    const before = adjusts.length;
    channel.outgoing.state = 'closing';
    for (let i = 0; i < 300; i++) receive(32 * 1024);
    expect(adjusts.length).toBe(before);
  });

  it('leaves a channel that is not ssh2-shaped alone', () => {
    expect(widenReceiveWindow({ push() {} }, 8 * MiB)).toBe(false);
  });

  it("sizes the window from the reads in flight, never below ssh2's own 2 MiB", () => {
    expect(receiveWindowFor(1, 32 * 1024)).toBe(2 * MiB);
    expect(receiveWindowFor(64, 32 * 1024)).toBe(2 * 64 * (32 * 1024 + 13) + MiB);
    expect(receiveWindowFor(256, 32 * 1024)).toBeGreaterThan(16 * MiB);
  });
});
