/**
 * The SSH receive window of an SFTP channel, sized to the reads kept in flight.
 *
 * ssh2 opens every channel with a 2 MiB receive window and tops it up to 2 MiB only once it has
 * fallen to 1 MiB. A file read keeps 64 × 32 KiB READs outstanding: their answers (2 MiB plus
 * the SFTP headers) never fit in what the server may send, so over a link with latency the
 * server stalls every round trip until the top-up reaches it — measured through the bench's
 * 50 ms delay proxy, well under half of the 2 MiB a round trip the requests allow.
 *
 * The client may widen its window at any time (RFC 4254 §5.2, CHANNEL_WINDOW_ADJUST). This grants
 * the server a window twice what the reads can ask for, and tops it up whenever half is used,
 * before ssh2's own check (which then never fires: it only acts below 1 MiB). The window limits
 * how much the server may send unasked, not memory: the READs in flight bound what arrives.
 */

/** What one SFTP answer adds to its data: length, type, id, data length (SFTP v3 DATA packet). */
const SFTP_DATA_OVERHEAD = 13;

/** The window ssh2 opens channels with (its Channel.js MAX_WINDOW). */
const SSH2_WINDOW = 2 * 1024 * 1024;

/** A receive window that never holds back `requestsInFlight` answers of `chunkSize` bytes. */
export function receiveWindowFor(requestsInFlight: number, chunkSize: number): number {
  const inFlight = requestsInFlight * (chunkSize + SFTP_DATA_OVERHEAD);
  // Twice what is asked for, since the top-up happens at half; 1 MiB spare for listings and
  // status answers beside the reads. SSH windows are uint32.
  return Math.min(Math.max(2 * inFlight + 1024 * 1024, SSH2_WINDOW), 0xffff_ffff);
}

/** The parts of ssh2's SFTP channel (ssh2 1.x internals) the window is kept through. */
interface SftpChannelInternals {
  push(data: Buffer | null): unknown;
  incoming?: { window?: unknown };
  outgoing?: { id?: unknown; state?: unknown };
  _protocol?: { channelWindowAdjust?: (channel: number, amount: number) => void };
}

/**
 * Widens the receive window of `sftp` (an ssh2 SFTPWrapper) to `bytes` and keeps it there.
 * Returns false, changing nothing, when the channel does not look like ssh2 1.x's.
 */
export function widenReceiveWindow(sftp: object, bytes: number): boolean {
  const channel = sftp as SftpChannelInternals;
  const incoming = channel.incoming;
  const outgoing = channel.outgoing;
  const protocol = channel._protocol;
  if (
    typeof incoming?.window !== 'number' ||
    typeof outgoing?.id !== 'number' ||
    typeof protocol?.channelWindowAdjust !== 'function' ||
    typeof channel.push !== 'function'
  )
    return false;
  const grant = (below: number) => {
    const window = incoming.window as number;
    if (outgoing.state !== 'open' || window > below) return;
    incoming.window = bytes;
    protocol.channelWindowAdjust!(outgoing.id as number, bytes - window);
  };
  const push = channel.push.bind(channel);
  // ssh2 takes each CHANNEL_DATA's length off `incoming.window`, hands the data to `push`,
  // then checks the window itself: topped up here first, its own adjust has nothing to add.
  channel.push = (data) => {
    const result = push(data);
    if (data !== null) grant(bytes / 2);
    return result;
  };
  grant(bytes - 1);
  return true;
}
