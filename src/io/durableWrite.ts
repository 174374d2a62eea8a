// Atomic and durable file writes: temp name in the same folder, write, (fsync,) rename, (fsync the
// folder). Readers never see a partial file under the final name; once a durable write returns,
// the file survives a crash or power loss with exactly these bytes. An atomic-only write is made
// durable later with fsyncPathSync on the file and its folder (the node's checkpoints).
// A process killed while writing leaves its temporary file; the next process to write that same
// file removes it (staleTemporaries below), so a rerun or a restart leaves no debris behind.
// Synchronous on purpose: the node calls them from its processing thread, where they never
// touch libuv's shared thread pool, so processing cannot delay the receiving thread's spool
// writes.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  readdirSync,
  statSync,
  fdatasync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { copyRangeSync, type FileRange } from './copyRange.js';

/**
 * What a file is written from, in order: bytes, and stretches of other open files, which are
 * copied without passing through JavaScript where the OS allows (copyRange.ts).
 */
export type FilePiece = Buffer | FileRange;

const knownDirs = new Set<string>();

/** Our temporary names: `.<final name>.<12 hex digits>.tmp` (writeViaTemp). */
const TEMPORARY = /^\.(.+)\.[0-9a-f]{12}\.tmp$/;
/** When this process started (ms since the epoch): an older temporary file is not one of ours. */
const PROCESS_START = Date.now() - process.uptime() * 1000;
/**
 * Temporary files an earlier process left in a folder (it was killed while writing them: kill -9,
 * a second Ctrl-C, power loss), by the final name they were for: found the first time this process
 * writes in the folder, removed once the file they were for is written whole.
 */
const staleTemporaries = new Map<string, Map<string, string[]>>();

function mkdirpSync(dir: string): void {
  if (knownDirs.has(dir)) return;
  mkdirRecursiveSync(dir);
  knownDirs.add(dir);
  noteStaleTemporaries(dir);
}

function noteStaleTemporaries(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // nothing to tidy where nothing can be listed
  }
  const byTarget = new Map<string, string[]>();
  for (const name of names) {
    const m = TEMPORARY.exec(name);
    if (!m) continue;
    try {
      if (statSync(join(dir, name)).mtimeMs >= PROCESS_START) continue; // a live writer's
    } catch {
      continue;
    }
    byTarget.set(m[1]!, [...(byTarget.get(m[1]!) ?? []), name]);
  }
  if (byTarget.size > 0) staleTemporaries.set(dir, byTarget);
}

/** Removes the temporary files an earlier process left for `file` (now written whole). */
function removeStaleTemporaries(file: string): void {
  const byTarget = staleTemporaries.get(dirname(file));
  const stale = byTarget?.get(basename(file));
  if (!stale) return;
  byTarget!.delete(basename(file));
  for (const name of stale) rmSync(join(dirname(file), name), { force: true });
}

/**
 * mkdir -p, one folder at a time from the nearest existing ancestor, `mode` for the folders it
 * makes (default 0o777 before the umask). Not Node's `recursive: true`: on Node 20 it loops
 * forever, ignoring signals, where mkdir says ENOENT although the parent exists (under /proc),
 * and it reports a read-only (EROFS) or forbidden (EACCES) parent as ENOENT. Throws the first
 * failing mkdir's error (EROFS, EACCES, ENOTDIR, ENOENT...), which names the folder.
 */
export function mkdirRecursiveSync(dir: string, mode?: number): void {
  const missing: string[] = [];
  for (let d = resolvePath(dir); ; d = dirname(d)) {
    let exists = false;
    try {
      statSync(d); // a file here: the mkdir below it says ENOTDIR
      exists = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw e; // a file further up
    }
    if (exists) break;
    missing.push(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, mode === undefined ? undefined : { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // made meanwhile by another
    }
  }
}

/** Closes a descriptor whose data no longer matters (already synced, or being discarded). */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

/**
 * fdatasync through libuv's thread pool: for the receiver's spool, when other associations are
 * receiving and the event loop must keep serving them.
 */
export function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/** fsyncs a file or a folder by path (a folder: the creations and renames in it). */
export function fsyncPathSync(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Atomic and durable: the data and the rename are fsync'd before it returns. */
export function writeFileDurableSync(file: string, data: Uint8Array | string | FilePiece[], mode = 0o644): void {
  writeViaTemp(file, data, mode, true);
  fsyncPathSync(dirname(file));
}

/** Atomic but not yet durable: the caller fsyncs the file and its folder later. */
export function writeFileAtomicSync(file: string, data: Uint8Array | string | FilePiece[], mode = 0o644): void {
  writeViaTemp(file, data, mode, false);
}

/** Random per thread (each has its own copy of this module), then counted: 12 hex digits. */
const TEMPORARY_PREFIX = randomBytes(3).toString('hex');
let temporaryCount = 0;

/** A temporary name's 12 hex digits: the thread's random prefix and a counter (no random draw per file). */
function temporarySuffix(): string {
  temporaryCount = (temporaryCount + 1) & 0xffffff;
  return TEMPORARY_PREFIX + temporaryCount.toString(16).padStart(6, '0');
}

function writeViaTemp(file: string, data: Uint8Array | string | FilePiece[], mode: number, sync: boolean): void {
  const dir = dirname(file);
  mkdirpSync(dir);
  let tmp = join(dir, `.${basename(file)}.${temporarySuffix()}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', mode);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      // Another thread drew the same 24-bit prefix (one chance in 16 million): a random name.
      tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
    } else if (code === 'ENOENT') {
      knownDirs.delete(dir); // the folder was removed behind our back: create it again
      mkdirpSync(dir);
    } else throw e;
    fd = openSync(tmp, 'wx', mode);
  }
  try {
    if (Array.isArray(data)) {
      writePieces(fd, data);
    } else {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    }
    if (sync) fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, file);
    removeStaleTemporaries(file);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes `pieces` at the file position of `fd`: runs of buffers by writev, ranges by copy. */
function writePieces(fd: number, pieces: FilePiece[]): void {
  let run: Buffer[] = [];
  for (const piece of pieces) {
    if (Buffer.isBuffer(piece)) {
      run.push(piece);
      continue;
    }
    writevAll(fd, run);
    run = [];
    copyRangeSync(piece, fd);
  }
  writevAll(fd, run);
}

/** writev until every byte is written (a short write continues where it stopped). */
export function writevAll(fd: number, parts: Buffer[]): void {
  const rest = parts.filter((p) => p.length > 0);
  while (rest.length > 0) {
    let n = writevSync(fd, rest);
    while (rest.length > 0 && n >= rest[0]!.length) n -= rest.shift()!.length;
    if (n > 0) rest[0] = rest[0]!.subarray(n);
  }
}

/** Moves a file durably: rename on the same file system, else a durable copy then removal. */
export function moveFileDurableSync(from: string, to: string): void {
  mkdirpSync(dirname(to));
  try {
    renameSync(from, to);
    fsyncPathSync(dirname(to));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    const fd = openSync(from, 'r');
    try {
      writeFileDurableSync(to, [{ fd, offset: 0, length: fstatSync(fd).size }]);
    } finally {
      closeSync(fd);
    }
    rmSync(from, { force: true });
  }
}
