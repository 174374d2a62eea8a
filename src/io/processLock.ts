// An exclusive lock held for the life of the process: one DICOM node per spool and per state.
//
// flock(2) on a lock file (through koffi, the FFI src/io/copyRange.ts already uses): the kernel
// holds the lock for the open file and drops it when the process ends however it ends, kill -9
// included, so a lock is never left stale and no timer has to keep it fresh (a lock library that
// renews an mtime, like proper-lockfile, would count a node whose event loop waits on a 10 s
// SQLite busy timeout as dead). The holder writes its PID into the file, for the message a
// second process gets. The descriptor is opened close-on-exec (libuv does), so child processes
// never inherit the lock.
//
// Where flock cannot be had (koffi missing, not Linux/macOS), a PID file stands in: created
// exclusively, taken over when the PID in it is no longer a live process. Weaker (a reused PID
// looks alive), and said so in the README.
import { closeSync, ftruncateSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type Koffi from 'koffi';

/** flock(2) operations (sys/file.h, the same on Linux and macOS). */
const LOCK_EX = 2;
const LOCK_NB = 4;

type Flock = (fd: number, operation: number) => number;
let flockFn: { flock: Flock; errno: () => number } | null | undefined;

/** flock(2) through koffi, or null where it cannot be had. */
function loadFlock(): typeof flockFn {
  if (flockFn !== undefined) return flockFn;
  flockFn = null;
  if (process.env.DICOM_DEID_LOCK === 'pidfile') return flockFn;
  if (process.platform !== 'linux' && process.platform !== 'darwin') return flockFn;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof Koffi;
    const names = process.platform === 'darwin' ? ['libSystem.dylib'] : ['libc.so.6', 'libc.so'];
    for (const name of names) {
      try {
        const fn = koffi.load(name).func('int flock(int fd, int operation)') as Flock;
        flockFn = { flock: fn, errno: () => koffi.errno() };
        break;
      } catch {
        // not this C library: try the next name
      }
    }
  } catch {
    // koffi not installed or not built for this platform: the PID file stands in
  }
  return flockFn;
}

/** The lock is held by another process (`pid`, when it could be read). */
export class LockHeldError extends Error {
  override name = 'LockHeldError';
  /** `lockFile`: the lock's path, and `pid` of its holder (null when unreadable), both in the message. */
  constructor(
    readonly lockFile: string,
    readonly pid: number | null,
  ) {
    super(`${lockFile} is locked by ${pid === null ? 'another process' : `process ${pid}`}`);
  }
}

/** A held lock; release() drops it (the process's end does too). */
export interface ProcessLock {
  readonly lockFile: string;
  /** 'flock' (kernel-held) or 'pidfile' (the fallback). */
  readonly mechanism: 'flock' | 'pidfile';
  release(): void;
}

function readPid(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the exclusive lock of `lockFile` (created, mode 0600, in a folder that must exist) or
 * throws LockHeldError naming the holder's PID. Never waits. Other errors (EACCES, EROFS...)
 * are thrown as they are.
 */
export function acquireProcessLock(lockFile: string): ProcessLock {
  const lib = loadFlock();
  if (!lib) return acquirePidFile(lockFile);
  const fd = openSync(lockFile, 'a+', 0o600);
  if (lib.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const errno = lib.errno();
    closeSync(fd);
    // EWOULDBLOCK (EAGAIN): someone holds it. Anything else (ENOLCK...) is reported by number.
    if (errno === 11 || errno === 35) throw new LockHeldError(lockFile, readPid(lockFile));
    throw Object.assign(new Error(`cannot lock ${lockFile} (errno ${errno})`), { code: 'ELOCK' });
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  let held = true;
  return {
    lockFile,
    mechanism: 'flock',
    release: () => {
      if (!held) return;
      held = false;
      closeSync(fd); // closing the only descriptor drops the flock; the file stays (harmless)
    },
  };
}

function acquirePidFile(lockFile: string): ProcessLock {
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lockFile, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new LockHeldError(lockFile, readPid(lockFile));
        throw e;
      }
      const pid = readPid(lockFile);
      if (pid !== null && pid !== process.pid && isAlive(pid)) throw new LockHeldError(lockFile, pid);
      rmSync(lockFile, { force: true }); // stale: its process is gone
    }
  }
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    if (readPid(lockFile) === process.pid) rmSync(lockFile, { force: true });
  };
  process.once('exit', release);
  return { lockFile, mechanism: 'pidfile', release };
}
