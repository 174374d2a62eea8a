// The file spool: a file per instance, used when the spool journal (spoolJournal.ts) has no room
// for an instance (or is turned off, spoolReserveMB 0). Its layout:
//
//   <spool>/incoming/<id>.part   pre-created files; one is filled per instance
//   <spool>/<id>.dcm             complete, durable, acknowledged: the processing thread's inbox
//
// What one instance costs on the receiving thread, and why it is laid out this way (measured on
// this project's 2-core VM, 0.5 MB CT slices): creating a file ~0.5 ms, fsync + rename + fsync of
// the folder ~1-2 ms. So the files are created ahead, in the thread pool, a few at a time, with
// one folder fsync per batch (their names are durable before they are used). Filling one is
// sequential writes; completing it (spoolWriter.ts) is one pwrite of a *completion marker* into
// the Part 10 preamble (bytes 0-127, which PS3.10 leaves to the application) and one fdatasync.
// The rename to `<spool>/<id>.dcm` that follows is not fsync'd: it only tells the running node the
// file is complete. After a crash, a file in incoming/ whose marker matches its length and CRC-32
// is complete and was possibly acknowledged, so it is moved to the inbox (recoverSpool); any
// other file there was never acknowledged and is deleted (the sender was not answered and resends).
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { closeQuietly, fsyncPathSync, mkdirRecursiveSync } from '../../io/durableWrite.js';

export const INCOMING = 'incoming';
const MARKER_MAGIC = Buffer.from('DICOM-DEID-SPOOL', 'latin1');
const MARKER_VERSION = 1;

/** The 128-byte preamble of a complete spool file: magic, version, file length, CRC-32 of bytes 128.. */
export function completionMarker(fileLength: number, crc: number): Buffer {
  const m = Buffer.alloc(128);
  MARKER_MAGIC.copy(m, 0);
  m.writeUInt32LE(MARKER_VERSION, 16);
  m.writeBigUInt64LE(BigInt(fileLength), 20);
  m.writeUInt32LE(crc >>> 0, 28);
  return m;
}

/** Whether a spool file carries a completion marker that matches its contents. */
export function isCompleteSpoolFile(bytes: Buffer): boolean {
  if (bytes.length < 132 || !bytes.subarray(0, 16).equals(MARKER_MAGIC)) return false;
  if (bytes.readUInt32LE(16) !== MARKER_VERSION) return false;
  if (bytes.readBigUInt64LE(20) !== BigInt(bytes.length)) return false;
  return bytes.readUInt32LE(28) === crc32(bytes.subarray(128)) >>> 0;
}

/**
 * fsyncs a directory (making the creations and renames in it durable), through the thread pool.
 * Opened each time, so that a folder replaced meanwhile is the one synced.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Creates incoming/ again if it was removed while the node runs, durably (its parent is fsync'd).
 * The spool folder itself is not recreated: without it, stores are answered with a failure.
 */
function ensureDirSync(dir: string): void {
  try {
    fs.mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  fsyncPathSync(path.dirname(dir));
}

export interface PoolFile {
  fd: number;
  path: string;
  /** Whether its name is durable (its folder was fsync'd after it was created). */
  nameDurable: boolean;
}

/**
 * Empty files in `<spool>/incoming/`, created ahead in the thread pool so that no instance waits
 * for a file creation. Refilled to 4 x `low()` files whenever fewer than `low()` are left (a batch
 * is slow: creations are ~0.5-1 ms each here, plus the folder fsync; with a smaller margin a third
 * of the instances of a burst found it empty). When it is empty (a burst, or creation failing),
 * take() creates one on the spot and the writer fsyncs the folder itself.
 */
export class SpoolPool {
  readonly dir: string;
  private readonly ready: PoolFile[] = [];
  private refilling: Promise<void> | undefined;
  private retryAfter = 0;
  private closed = false;

  /**
   * `spoolDir`: the spool folder (the files go to its incoming/ subfolder); `low()`: the number of ready
   * files below which the pool refills. Touches no file.
   */
  constructor(
    spoolDir: string,
    private readonly low: () => number,
  ) {
    this.dir = path.join(spoolDir, INCOMING);
  }

  /** A file to fill; throws when none can be created (answered as a failure by the caller). */
  take(): PoolFile {
    let file = this.ready.shift();
    // A file whose name is gone (incoming/ removed while the node runs) cannot be completed.
    while (file && fs.fstatSync(file.fd).nlink === 0) {
      discardFile(file);
      file = this.ready.shift();
    }
    this.refill();
    if (file) return file;
    const p = path.join(this.dir, `${randomUUID()}.part`);
    ensureDirSync(this.dir);
    return { fd: fs.openSync(p, 'wx', 0o600), path: p, nameDurable: false };
  }

  /** Tops the pool up and waits for it (at start-up, so that the first instances find files). */
  async fill(): Promise<void> {
    this.refill();
    await this.refilling;
  }

  /** Tops the pool up in the background (never throws; a failure is retried a second later). */
  refill(): void {
    if (this.refilling || this.closed || this.ready.length >= this.low() || Date.now() < this.retryAfter) return;
    this.refilling = this.createBatch(4 * this.low() - this.ready.length).finally(() => {
      this.refilling = undefined;
    });
  }

  private async createBatch(n: number): Promise<void> {
    const made: PoolFile[] = [];
    const create = (p: string) =>
      new Promise<void>((resolve, reject) =>
        fs.open(p, 'wx', 0o600, (err, fd) => {
          if (err) return reject(err);
          made.push({ fd, path: p, nameDurable: false });
          resolve();
        }),
      );
    try {
      ensureDirSync(this.dir);
      const names = Array.from({ length: n }, () => path.join(this.dir, `${randomUUID()}.part`));
      const results = await Promise.allSettled(names.map(create));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      await fsyncDir(this.dir);
      for (const f of made) f.nameDurable = true;
    } catch {
      this.retryAfter = Date.now() + 1000;
      for (const f of made) discardFile(f);
      return;
    }
    if (this.closed) for (const f of made) discardFile(f);
    else this.ready.push(...made);
  }

  /** Deletes the unused files (at shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    await this.refilling;
    for (const f of this.ready.splice(0)) discardFile(f);
  }
}

/** Closes (when open) and deletes a spool file; never throws (the folder itself may be gone). */
export function discardFile(f: { fd?: number; path: string }): void {
  if (f.fd !== undefined) closeQuietly(f.fd);
  try {
    fs.rmSync(f.path, { force: true });
  } catch {
    /* nothing left to delete */
  }
}

/**
 * Run before receiving starts: moves complete files left in incoming/ by a crash to the inbox
 * (they may have been acknowledged), deletes the others (never acknowledged), and deletes the
 * `.part` files of the previous layout (written beside the inbox; never acknowledged either).
 */
export async function recoverSpool(spoolDir: string): Promise<{ recovered: number; partials: number }> {
  const incoming = path.join(spoolDir, INCOMING);
  mkdirRecursiveSync(incoming);
  let recovered = 0;
  let partials = 0;
  for (const name of await fs.promises.readdir(spoolDir)) {
    if (!name.endsWith('.part')) continue;
    await fs.promises.rm(path.join(spoolDir, name), { force: true });
    partials++;
  }
  for (const name of await fs.promises.readdir(incoming)) {
    const file = path.join(incoming, name);
    const bytes = await fs.promises.readFile(file).catch(() => null);
    if (bytes && name.endsWith('.part') && isCompleteSpoolFile(bytes)) {
      await fs.promises.rename(file, path.join(spoolDir, `${name.slice(0, -'.part'.length)}.dcm`));
      recovered++;
    } else {
      await fs.promises.rm(file, { recursive: true, force: true });
      if (bytes && bytes.length > 0) partials++;
    }
  }
  if (recovered > 0) await fsyncDir(spoolDir);
  return { recovered, partials };
}
