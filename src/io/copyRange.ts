// Copies a byte range of one open file into another without bringing it into JavaScript: the
// kernel copies it (Linux copy_file_range(2), called through koffi, an FFI whose prebuilt binary
// comes from the npm registry) where the OS and file systems allow; otherwise (another OS, two
// file systems, or DICOM_DEID_COPY=stream in the environment) it is streamed through one reusable
// 1 MiB buffer. Node 20 has no range copy of its own: fs.copyFile copies whole files only, and
// streams pass every byte through JavaScript buffers. Measured on this project's VM
// (scripts/bench-copy-range.mjs): the kernel copy takes the least CPU of the bounded ways; none
// of them holds more than a buffer in memory. (A small N-API addon would make the same system
// call, at the cost of C code built by node-gyp at every install.)
//
// Synchronous, like durableWrite.ts: the batch workers and the node's processing threads call it
// from their own threads.
import { readSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import type Koffi from 'koffi';

/** A stretch of an open file: `length` bytes from `offset` on (bytes). */
export interface FileRange {
  fd: number;
  offset: number;
  length: number;
}

/** The bounded buffer of the fallback: the only memory a copy holds, whatever its length. */
const CHUNK = 1 << 20;
let chunk: Buffer | undefined;

type CopyFileRange = (fdIn: number, offIn: [number], fdOut: number, offOut: null, len: number, flags: 0) => number;
let kernelCopy: { copyFileRange: CopyFileRange; errno: () => number } | null | undefined;

/** copy_file_range(2) through koffi, or null where it cannot be had (not Linux, no koffi). */
function loadKernelCopy(): typeof kernelCopy {
  if (kernelCopy !== undefined) return kernelCopy;
  kernelCopy = null;
  if (process.platform !== 'linux' || process.env.DICOM_DEID_COPY === 'stream') return kernelCopy;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof Koffi;
    for (const name of ['libc.so.6', 'libc.so']) {
      try {
        const libc = koffi.load(name);
        const fn = libc.func(
          'int64_t copy_file_range(int fd_in, _Inout_ int64_t *off_in, int fd_out, _Inout_ int64_t *off_out, size_t len, unsigned int flags)',
        ) as (...args: unknown[]) => number | bigint;
        kernelCopy = {
          copyFileRange: (...args) => Number(fn(...args)),
          errno: () => koffi.errno(),
        };
        break;
      } catch {
        // not this C library: try the next name
      }
    }
  } catch {
    // koffi not installed or its binary not built for this platform: stream instead
  }
  return kernelCopy;
}

const E = constants.errno;
/** errno values after which the kernel copy is not possible here, so streaming takes over. */
const NOT_HERE = new Set([
  E.EXDEV, // different file systems (refused again since Linux 5.19)
  E.EINVAL, // a file system or file type without it
  E.ENOSYS, // kernel before 4.5
  E.EOPNOTSUPP,
  E.EPERM, // e.g. an append-only destination
]);

/** How this process copies ranges: by the kernel, or streamed through the 1 MiB buffer. */
export function copyMechanism(): 'copy_file_range' | 'stream' {
  return loadKernelCopy() ? 'copy_file_range' : 'stream';
}

function shortRead(): Error {
  return Object.assign(new Error('the file is shorter than the range copied'), { code: 'ESHORTREAD' });
}

/**
 * Appends `range` of another open file to `fdOut` at its current position (which moves past it).
 * Throws the system error of a failed read or write; one with code ESHORTREAD when the source
 * ends before the range does.
 */
export function copyRangeSync(range: FileRange, fdOut: number): void {
  let done = 0;
  const kc = loadKernelCopy();
  if (kc) {
    while (done < range.length) {
      const n = kc.copyFileRange(range.fd, [range.offset + done], fdOut, null, range.length - done, 0);
      if (n > 0) {
        done += n;
        continue;
      }
      if (n === 0) throw shortRead();
      const errno = kc.errno();
      if (errno === E.EINTR) continue;
      if (NOT_HERE.has(errno) && done === 0) break;
      throw Object.assign(new Error(`copy_file_range failed (errno ${errno})`), { errno, code: errnoCode(errno) });
    }
    if (done === range.length) return;
  }
  chunk ??= Buffer.allocUnsafe(CHUNK);
  while (done < range.length) {
    const n = readSync(range.fd, chunk, 0, Math.min(CHUNK, range.length - done), range.offset + done);
    if (n === 0) throw shortRead();
    let written = 0;
    while (written < n) written += writeSync(fdOut, chunk, written, n - written);
    done += n;
  }
}

/** The name of an errno value (EIO, ENOSPC...), as Node's own errors carry in `code`. */
function errnoCode(errno: number): string {
  return Object.entries(E).find(([, n]) => n === errno)?.[0] ?? `ERRNO${errno}`;
}
