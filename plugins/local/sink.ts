import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  existsSync,
  fchmodSync,
  fstatSync,
  fsyncSync,
  futimesSync,
  linkSync,
  openSync,
  readlinkSync,
  readSync,
  renameSync,
  type Stats,
  statSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { access, lstat, mkdir, open, readdir, rm, rmdir, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { existsWithOtherBytes, noFreeName, renameCandidates } from '../../core/if-exists.js';
import { oncePerKey } from '../../core/once-per-key.js';
import { type DestinationStat, definePlugin, type Item, type SinkCommit } from '../../core/plugin-api.js';
import { sinkCommon } from '../../core/schema-fragments.js';
import { drainInto, STREAM_CHUNK } from '../../core/streams.js';
import { closeSoon, copyFile, link, rename, stat, utimes, writeFile } from './fs-callbacks.js';
import {
  changedSinceListing,
  notListed,
  openedAs,
  openedAsync,
  openListed,
  openListedSync,
  PROC_FD,
} from './listed-file.js';
import { localDiskDevice, SYNC_MAX_BYTES, SyncGate } from './sync-io.js';

const config = Type.Object(
  {
    path: Type.String({ description: 'Destination root folder, relative to the pipeline file or absolute.' }),
    fsync: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'fsync each file before it is renamed into place. Costs throughput; protects against power loss (a killed process loses nothing either way).',
      }),
    ),
    preserve_mtime: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          "Give each file the source file's modification time (read back and checked by verify). `false`: the time of writing.",
      }),
    ),
    ...sinkCommon,
  },
  { additionalProperties: false },
);

const TEMP_DIR = '.sluice-tmp';

export const localSink = definePlugin({
  name: 'local',
  kind: 'sink',
  summary: 'Writes into a local folder atomically (temp file + rename), creating folders.',
  description:
    'Each file is written to `<root>/.sluice-tmp/<pid>-…/` and renamed into place only after the stream ended cleanly, so a destination never holds a partial file. Temp folders of dead processes (and of dead pool threads of a live one) are swept at start. `if_exists: skip|fail|rename` use a hard link, which never replaces an existing file (no race with other writers). Nothing is written through a symbolic link under the root: a folder on the way that is a link, or (with `skip` or `fail`) a link at the destination name, fails the item with SLUICE_E_DESTINATION and the source is kept — make `path` the real folder if a link there is yours. Each file gets the source file’s mtime (`preserve_mtime`), which verification reads back and compares. With `if_exists: skip` or `fail` the destination is looked at (size, mtime) before the source is read. A file from a local source is copied by the kernel; a small one (up to 256 KiB) between two local disk file systems (ext4, XFS, Btrfs, tmpfs…, never a network or FUSE mount) with file-system calls made directly rather than through the thread pool, several times cheaper per file — calls averaging over 2 ms a file (a disk that seeks) turn that off for 10 s.',
  config,
  examples: [{ title: 'Into ./out, never overwriting', yaml: 'path: ./out\nif_exists: rename' }],
  copies: (cfg, item) => item.origin?.kind === 'local' && cfg.verify !== 'sha256',
  async create(cfg, ctx) {
    const root = resolve(ctx.baseDir, cfg.path);
    const ifExists = cfg.if_exists ?? 'overwrite';
    const preserveMtime = cfg.preserve_mtime ?? true;
    const tempBase = join(root, TEMP_DIR);
    const tempDir = join(tempBase, `${process.pid}-${OWN_THREAD}${Math.random().toString(36).slice(2, 8)}`);
    // A planted link there would have the sweep below remove, and temp files written, elsewhere.
    const tempThere = await lstat(tempBase).catch(() => undefined);
    if (tempThere && !tempThere.isDirectory()) {
      throw new SluiceError(
        'SLUICE_E_DESTINATION',
        `${tempBase} is ${tempThere.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}: the sink keeps its temp files only in a real folder there`,
        { retryable: false },
      );
    }
    await sweepDeadTemps(tempBase);
    await mkdir(tempDir, { recursive: true });
    // What the file system keeps of a time (FAT 2 s, ext3/HFS+ and some network mounts 1 s):
    // verification compares at that precision instead of failing every file there.
    const mtimePrecisionMs = preserveMtime ? await probeMtimePrecision(tempDir) : undefined;
    let counter = 0;
    const gate = new SyncGate();
    const sinkDevice = await localDiskDevice(root);
    const sourceDevices = new Map<string, Promise<number | undefined>>();
    const sourceDevice = (realRoot: string | undefined): Promise<number | undefined> => {
      if (realRoot === undefined) return Promise.resolve(undefined);
      let known = sourceDevices.get(realRoot);
      if (!known) {
        known = localDiskDevice(realRoot);
        sourceDevices.set(realRoot, known);
      }
      return known;
    };

    const target = (destination: string) => {
      const abs = resolve(root, ...destination.split('/'));
      if (!abs.startsWith(root + sep)) {
        throw new SluiceError('SLUICE_E_DESTINATION', `destination "${destination}" escapes ${root}`, {
          retryable: false,
        });
      }
      return abs;
    };
    /** Folders below the root checked to be no link (insideRoot), and folders made: once each. */
    const checkOnce = oncePerKey<void>();
    const realDir = (dir: string) => checkOnce(dir, () => insideRoot(root, dir));
    const makeOnce = oncePerKey<void>();
    const ensureDir = (dir: string) =>
      dir === root
        ? Promise.resolve()
        : makeOnce(dir, () => realDir(dir).then(() => mkdir(dir, { recursive: true }).then(() => undefined)));

    /**
     * Puts a finished temp file in place; removes it when anything fails. The source's mtime is
     * set on the temp file and read back from it before it is placed (a rename or link keeps it).
     * `size` undefined: the size is the one the file system reports for the temp file, read by
     * the same stat as the mtime (a copy made by the kernel: one stat per file, not two).
     */
    /**
     * A small file copied on this thread (sync-io.ts): read whole into one buffer and written
     * into `temp`, its mtime set and read back on the open descriptor — five calls cheaper than
     * the kernel copy's (no clone attempt, no truncate, no lookups by path). Its mode is the
     * source's, as the kernel copy gives it: the temp file is created with it, and the stat that
     * reads back the mtime shows whether the umask (or a write, for set-id bits) took any of it,
     * which only then costs an fchmod.
     */
    let smallBuffer: Buffer | undefined;
    const writeSmall = (fd: number, st: Stats, temp: string, item: Item): Written => {
      smallBuffer ??= Buffer.allocUnsafe(SYNC_MAX_BYTES + 1);
      const buf = smallBuffer;
      let size = 0;
      // A read of a regular file on a local disk returns less than asked only at its end: one
      // read for a file that fits, not a second one that returns nothing.
      for (let asked = buf.length; size < buf.length; ) {
        const got = readSync(fd, buf, size, asked, size);
        size += got;
        if (got < asked) break;
        asked = buf.length - size;
      }
      if (size !== st.size) throw changedSinceListing(item.path, `${size} bytes read, ${st.size} listed`);
      const mode = st.mode & 0o7777;
      const out = openSync(temp, 'wx', mode);
      try {
        for (let done = 0; done < size; ) done += writeSync(out, buf, done, size - done, done);
        if (preserveMtime && item.mtime) futimesSync(out, item.mtime, item.mtime);
        const kept = fstatSync(out);
        // The source's mode exactly (not less the umask); a chmod keeps the mtime.
        if ((kept.mode & 0o7777) !== mode) fchmodSync(out, mode);
        if (cfg.fsync) fsyncSync(out);
        // What the file system holds, not the count handed to write: the commit reports the backend.
        return { size: kept.size, mtime: preserveMtime ? kept.mtime : undefined };
      } finally {
        closeSync(out);
      }
    };

    const commit = async (
      temp: string,
      item: Item,
      destination: string,
      size: number | undefined,
      reserve?: (destination: string) => Promise<void>,
      how: { io: PlaceIo; written?: Written } = { io: THREAD_POOL_IO },
    ): Promise<SinkCommit> => {
      const { io, written } = how;
      const dest = target(destination);
      let placed: Placed | undefined;
      let stored: Date | undefined;
      try {
        if (written) {
          size = written.size;
          stored = written.mtime;
        } else {
          if (preserveMtime && item.mtime) await io.utimes(temp, item.mtime, item.mtime);
          if (preserveMtime || size === undefined) {
            // What the file system kept (its own granularity); a rename or link keeps the inode's
            // mtime and size.
            const st = await io.stat(temp);
            if (preserveMtime) stored = st.mtime;
            size ??= st.size;
          }
          if (cfg.fsync) await fsyncFile(temp);
        }
        await ensureDir(dirname(dest));
        placed = await place(temp, destination, dest, ifExists, reserve, io);
      } finally {
        // After a rename the temp name is gone; after a link (or a failure) it must go.
        if (placed?.kept !== undefined || placed === undefined || ifExists !== 'overwrite')
          await removeQuietly(io, temp);
      }
      if (placed.kept !== undefined)
        return { location: dest, size: placed.kept.size, mtime: placed.kept.mtime, skipped: true };
      return {
        location: placed.path,
        size,
        ...(stored ? { mtime: stored } : {}),
        ...(placed.destination !== destination ? { destination: placed.destination } : {}),
      };
    };

    return {
      ...(mtimePrecisionMs !== undefined ? { mtimePrecisionMs } : {}),
      async write(req) {
        const temp = join(tempDir, `${++counter}`);
        const out = createWriteStream(temp, { highWaterMark: STREAM_CHUNK });
        try {
          await drainInto(req.body, out, req.signal);
        } catch (err) {
          await unlink(temp).catch(() => undefined);
          throw err;
        }
        return commit(temp, req.item, req.destination, out.bytesWritten, req.reserve);
      },
      /**
       * A file from a local source whose bytes no step changed is copied by the kernel
       * (`copyFile`: one thread-pool call instead of a read and a write stream). Not with
       * `verify: sha256`, which needs the bytes to pass through a hash, nor with `if_exists:
       * rename`, whose names must be reserved through the write request.
       */
      async copy(item, destination, _signal, reserve) {
        const at = item.origin?.kind === 'local' ? item.origin.location : undefined;
        if (!at?.path || at.ino === undefined || !PROC_FD || cfg.verify === 'sha256') return null;
        // Small files between two local disks: every call on this thread (sync-io.ts).
        // Not with fsync (each one waits for the disk), and only for a file the listing found on
        // its root's device (a file on a mount below the root may be anywhere: NFS, FUSE…).
        const device =
          gate.allows(item.size) &&
          !cfg.fsync &&
          sinkDevice !== undefined &&
          (await sourceDevice(at.realRoot));
        const sync = typeof device === 'number' && at.dev === String(device);
        const io = sync ? SYNC_IO : THREAD_POOL_IO;
        // Timed: the open and the copy, which read the source (a cold disk shows there), and
        // have no await between them that would let other items' work into the measure.
        const startedAt = performance.now();
        // The kernel copies from a descriptor opened without following a link or blocking, and
        // checked to be the listed file: a regular file of the listed size and mtime, reached
        // inside the source's real root (a folder swapped for a link leads elsewhere). Another
        // inode with all of that (a FUSE or CIFS mount may renumber inodes) is streamed instead,
        // through the source's own checks.
        const fd = sync ? openListedSync(at.path, item.path) : await openListed(at.path, item.path);
        const temp = join(tempDir, `${++counter}`);
        let written: Written | undefined;
        try {
          const { st, real } = sync
            ? openedAs(fd, at.realRoot !== undefined)
            : await openedAsync(fd, at.realRoot !== undefined);
          const why = notListed(st, item, real, at.realRoot);
          if (why !== undefined) throw changedSinceListing(item.path, why);
          if (String(st.ino) !== at.ino) return null;
          if (sync && String(st.dev) === at.dev) {
            written = writeSmall(fd, st, temp, item);
            gate.took(startedAt);
          } else await copyFile(`${PROC_FD}/${fd}`, temp);
        } catch (err) {
          await removeQuietly(io, temp);
          throw err;
        } finally {
          if (sync) closeSync(fd);
          else closeSoon(fd);
        }
        // The size the file system reports, read after the mtime is set (one stat for both).
        return commit(temp, item, destination, undefined, reserve, { io, written });
      },
      /**
       * A temp file for someone else to write the bytes into (a child process: pgp_decrypt's
       * gpg), then placed by the same `commit` as a stream write; `abort` removes it.
       */
      async reserveFile(req) {
        const temp = join(tempDir, `${++counter}`);
        const handle = await open(temp, 'w+');
        let closed = false;
        const close = async () => {
          if (closed) return;
          closed = true;
          await handle.close();
        };
        return {
          fd: handle.fd,
          async commit() {
            try {
              await close();
            } catch (err) {
              await unlink(temp).catch(() => undefined);
              throw err;
            }
            // The size the file system reports, read with the mtime (one stat for both).
            return commit(temp, req.item, req.destination, undefined, req.reserve);
          },
          async abort() {
            await close().catch(() => undefined);
            await unlink(temp).catch(() => undefined);
          },
        };
      },
      async writeBuffer(req) {
        const temp = join(tempDir, `${++counter}`);
        try {
          await writeFile(temp, req.data, { signal: req.signal });
        } catch (err) {
          await unlink(temp).catch(() => undefined);
          throw err;
        }
        return commit(temp, req.item, req.destination, req.data.length, req.reserve);
      },
      async readBack(destination) {
        return createReadStream(target(destination), { highWaterMark: STREAM_CHUNK });
      },
      async stat(destination): Promise<DestinationStat | null> {
        try {
          // Never through a link: not a folder on the way (refused), nor one at the name (no
          // copy: place() then refuses it).
          const path = target(destination);
          await realDir(dirname(path));
          const st = await lstat(path);
          return st.isFile() ? { size: st.size, mtime: st.mtime } : null;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
          throw err;
        }
      },
      async remove(destination) {
        await unlink(target(destination)).catch(() => undefined);
      },
      /** The root exists (create made it) and takes a file: `full` writes a probe and removes it. */
      async check(req) {
        try {
          await access(root, constants.W_OK | constants.X_OK);
        } catch {
          throw new SluiceError('SLUICE_E_SINK', `cannot write in folder ${root}: permission denied`, {
            retryable: false,
            context: { hint: 'run sluice as a user who may write there, or choose another `path`' },
          });
        }
        if (req.depth === 'cheap') return { detail: `folder ${root} writable` };
        const probe = join(root, `.sluice-check-${randomBytes(6).toString('hex')}`);
        try {
          await writeFile(probe, 'sluice check\n', { flag: 'wx' });
        } catch (err) {
          throw new SluiceError(
            'SLUICE_E_SINK',
            `cannot write in folder ${root}: ${(err as NodeJS.ErrnoException).code ?? err}`,
            { retryable: false },
          );
        } finally {
          await unlink(probe).catch(() => undefined);
        }
        return { detail: `folder ${root}: probe written and removed` };
      },
      async close() {
        await rm(tempDir, { recursive: true, force: true });
        await rmdir(tempBase).catch(() => undefined); // only when empty
      },
      isRetryable(err) {
        const code = (err as NodeJS.ErrnoException)?.code;
        if (code === 'ENOSPC' || code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return false;
        return undefined;
      },
    };
  },
});

/**
 * The calls that put a temp file in place: through the thread pool, or on this thread for a
 * small file between local disks (sync-io.ts). Each is awaited either way.
 */
interface PlaceIo {
  utimes(path: string, atime: Date, mtime: Date): unknown;
  stat(path: string): Stats | Promise<Stats>;
  rename(from: string, to: string): unknown;
  link(from: string, to: string): unknown;
  unlink(path: string): unknown;
}
const THREAD_POOL_IO: PlaceIo = { utimes, stat, rename, link, unlink };
const SYNC_IO: PlaceIo = {
  utimes: utimesSync,
  stat: statSync,
  rename: renameSync,
  link: linkSync,
  unlink: unlinkSync,
};

/** A temp file written and stamped already: its size, and the mtime the file system kept. */
interface Written {
  size: number;
  mtime?: Date;
}

/** Removes `path` if it is there; a failure (it is gone already) is no error. */
async function removeQuietly(io: PlaceIo, path: string): Promise<void> {
  try {
    await io.unlink(path);
  } catch {
    // nothing there
  }
}

/**
 * Refuses a folder under `root` reached through a symbolic link (someone who may write in the
 * sink's tree could plant one leading anywhere): each existing part below the root must be a
 * real folder. Parts still missing are made by mkdir as real folders. Once per folder per sink.
 */
async function insideRoot(root: string, dir: string): Promise<void> {
  let at = root;
  for (const part of dir.slice(root.length + 1).split(sep)) {
    if (part === '') continue;
    at = join(at, part);
    let st: Stats;
    try {
      st = await lstat(at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    if (st.isSymbolicLink()) {
      throw new SluiceError(
        'SLUICE_E_DESTINATION',
        `${at} is a symbolic link: the sink writes only into real folders under ${root}`,
        { retryable: false },
      );
    }
    // A file in the way: mkdir says so (EEXIST / ENOTDIR), as it always did.
    if (!st.isDirectory()) return;
  }
}

/** Where `place` put a file: its path and relative destination, or the size of the file it left in place. */
type Placed =
  | { path: string; destination: string; kept?: undefined }
  | { kept: { size: number; mtime: Date } };

/**
 * Moves `temp` to `dest` (the sink path of `destination`) per `if_exists`. `overwrite` renames
 * (atomic replace); the others hard-link, which fails on an existing name. Each name is
 * reserved right before the bytes appear under it (every candidate, with `rename`).
 */
async function place(
  temp: string,
  destination: string,
  dest: string,
  ifExists: string,
  reserve: ((destination: string) => Promise<void>) | undefined,
  io: PlaceIo,
): Promise<Placed> {
  if (ifExists === 'overwrite') {
    await reserve?.(destination);
    await io.rename(temp, dest);
    return { path: dest, destination };
  }
  // `dest` is the sink root followed by `destination`: a candidate changes only that tail.
  const rootPart = dest.slice(0, dest.length - destination.length);
  for (const candidate of renameCandidates(destination)) {
    const path = rootPart + candidate;
    await reserve?.(candidate);
    try {
      await io.link(temp, path);
      return { path, destination: candidate };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (ifExists === 'skip' || ifExists === 'fail') {
      // The name itself, not what a link there leads to: a link (or folder) holds no bytes of ours.
      const there = await lstat(dest);
      if (!there.isFile()) throw notAFile(dest, there);
      if (ifExists === 'skip') return { kept: there };
      // Our own earlier copy (a redo after a crash) holds the same bytes: that is success.
      if (await sameContent(temp, dest)) return { kept: there };
      throw existsWithOtherBytes(dest);
    }
  }
  throw noFreeName(dest);
}

function notAFile(dest: string, st: Stats): SluiceError {
  const what = st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a folder' : 'not a regular file';
  return new SluiceError(
    'SLUICE_E_DESTINATION',
    `${dest} exists and is ${what}: it is not taken as a copy, and nothing was written there`,
    { retryable: false },
  );
}

async function sameContent(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a), stat(b)]);
  if (sa.size !== sb.size) return false;
  const [ha, hb] = await Promise.all([sha256File(a), sha256File(b)]);
  return ha === hb;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: STREAM_CHUNK }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * `t<tid>-` of the OS thread this sink runs on (Linux: /proc/thread-self), or '' where that
 * cannot be told. A temp folder named with it can be told dead while its process lives on: a
 * pool thread that died (its sink never closed) leaves one, which the thread replacing it sweeps.
 */
const OWN_THREAD = (() => {
  try {
    const tid = /\/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'))?.[1];
    return tid === undefined ? '' : `t${tid}-`;
  } catch {
    return '';
  }
})();

/**
 * Removes temp folders left by processes that are gone (killed mid-write), and by threads of
 * this process that are gone (a pool thread that died): `<pid>-<random>` or
 * `<pid>-t<tid>-<random>`.
 */
async function sweepDeadTemps(tempBase: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(tempBase);
  } catch {
    return;
  }
  for (const entry of entries) {
    const [pidPart, threadPart] = entry.split('-');
    const pid = Number(pidPart);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const tid = /^t(\d+)$/.exec(threadPart ?? '')?.[1];
    const gone =
      pid !== process.pid
        ? !isAlive(pid)
        : // Only where threads are named (/proc): elsewhere a random part could look like one.
          OWN_THREAD !== '' &&
          tid !== undefined &&
          `t${tid}-` !== OWN_THREAD &&
          !existsSync(`/proc/${pid}/task/${tid}`);
    if (gone) await rm(join(tempBase, entry), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A time with milliseconds, past an odd second: what a file system keeps of it shows its precision. */
const PROBE_TIME_MS = 1_600_000_001_234;

/**
 * The coarsest of 1 ms, 1 s and 2 s at which `kept` still equals `asked` (truncated), i.e. the
 * precision a file system keeps times at; 2000 when even that differs (a file system rounding
 * its own way: compare as coarsely as the coarsest common one).
 */
export function mtimePrecisionOf(askedMs: number, keptMs: number): number {
  for (const precision of [1, 1000, 2000])
    if (Math.floor(askedMs / precision) === Math.floor(keptMs / precision)) return precision;
  return 2000;
}

/** Sets a probe file's time in `dir` and reads it back (1 when the probe cannot be made). */
async function probeMtimePrecision(dir: string): Promise<number> {
  const probe = join(dir, 'mtime-probe');
  try {
    await writeFile(probe, '');
    const asked = new Date(PROBE_TIME_MS);
    await utimes(probe, asked, asked);
    return mtimePrecisionOf(PROBE_TIME_MS, (await stat(probe)).mtimeMs);
  } catch {
    return 1;
  } finally {
    await unlink(probe).catch(() => undefined);
  }
}
