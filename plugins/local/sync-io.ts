/**
 * File-system calls on the calling thread, for the small-file path of local → local copies.
 *
 * Each asynchronous fs call is a round trip through libuv's thread pool: tens of microseconds
 * of wake-ups and promise work on the main thread for a call the kernel answers from memory in
 * one or two. A 4 KiB file copied by the kernel takes six such calls (open, copy, utimes, stat,
 * rename, close), so that is where the time of a small-file run goes. On a local disk file
 * system the same calls made synchronously take microseconds and block nothing that matters.
 *
 * They are used only where that holds:
 * - both folders are on a local file system (ext2/3/4, XFS, Btrfs, tmpfs, F2FS, ZFS, bcachefs,
 *   overlayfs, ramfs), never NFS, CIFS, FUSE or anything unknown, where a call can wait on a
 *   network or another process — and the file is on its folder's device (not on a mount
 *   below it; that file is read through the thread pool);
 * - the file is small (at most SYNC_MAX_BYTES);
 * - and the calls stay fast: a running average over about 64 files above SLOW_MS (a cold
 *   disk that seeks, a busy journal) turns them off for PAUSE_MS, so such a disk gets the
 *   thread pool's parallel requests again.
 */
import { stat, statfs } from 'node:fs/promises';

/** statfs f_type of file systems whose calls never wait on a network or a user-space daemon. */
const LOCAL_DISK_TYPES = new Set([
  0xef53, // ext2/3/4
  0x58465342, // XFS
  0x9123683e, // Btrfs
  0x01021994, // tmpfs
  0xf2f52010, // F2FS
  0x2fc12fc1, // ZFS
  0xca451a4e, // bcachefs
  0x794c7630, // overlayfs (containers)
  0x858458f6, // ramfs
]);

/** Files up to this size are copied with calls on the calling thread (when allowed). */
export const SYNC_MAX_BYTES = 256 * 1024;
/**
 * The running average (over ~64 files) a sequence may take before the calls pause: a few
 * files that waited several milliseconds (a journal commit, a preempted thread) do not pause
 * them, a disk that seeks for every file does within about fifteen files.
 */
const SLOW_MS = 2;
const AVERAGED_OVER = 64;
const PAUSE_MS = 10_000;

/**
 * The device `path` lies on when that is a local disk file system, else undefined (also when
 * it cannot be told). A file on another device than its folder's root is on a mount below it.
 */
export async function localDiskDevice(path: string): Promise<number | undefined> {
  try {
    const [fs, st] = await Promise.all([statfs(path), stat(path)]);
    return LOCAL_DISK_TYPES.has(Number(fs.type)) ? st.dev : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether synchronous calls are fast now: off for a while once their running average is slow
 * (a disk that seeks), not for a few slow files among fast ones.
 */
export class SyncGate {
  private pausedUntil = 0;
  private averageMs = 0;

  /** Whether a sequence of calls for a file of `size` bytes may run on the calling thread. */
  allows(size: number | undefined): boolean {
    return size !== undefined && size <= SYNC_MAX_BYTES && Date.now() >= this.pausedUntil;
  }

  /** Reports how long one sequence took (from `performance.now()` at its start). */
  took(startedAt: number): void {
    this.averageMs += (performance.now() - startedAt - this.averageMs) / AVERAGED_OVER;
    if (this.averageMs > SLOW_MS) {
      this.pausedUntil = Date.now() + PAUSE_MS;
      this.averageMs = 0;
    }
  }
}
