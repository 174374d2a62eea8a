// The spool: every received data set is made durable before the C-STORE is answered. Most go
// into the spool journal (spoolJournal.ts); this file holds the writer that chooses, and the
// file-per-instance spool used when the journal has no room (or is turned off). Its layout:
//
//   <spool>/incoming/<id>.part   pre-created files; one is filled per instance
//   <spool>/<id>.dcm             complete, durable, acknowledged: the processing thread's inbox
//
// What one instance costs on the receiving thread, and why it is laid out this way (measured on
// this project's 2-core VM, 0.5 MB CT slices): creating a file ~0.5 ms, fsync + rename + fsync of
// the folder ~1-2 ms. So the files are created ahead, in the thread pool, a few at a time, with
// one folder fsync per batch (their names are durable before they are used). Filling one is
// sequential writes; completing it is one pwrite of a *completion marker* into the Part 10
// preamble (bytes 0-127, which PS3.10 leaves to the application) and one fdatasync. The rename to
// `<spool>/<id>.dcm` that follows is not fsync'd: it only tells the running node the file is
// complete. After a crash, a file in incoming/ whose marker matches its length and CRC-32 is
// complete and was possibly acknowledged, so it is moved to the inbox (recoverSpool); any other
// file there was never acknowledged and is deleted (the sender was not answered and resends).
//
// The file I/O of one instance is synchronous, on purpose: as async calls every step is a round
// trip through libuv's thread pool, and those hand-offs, not the disk, made up most of an
// instance's latency. The fdatasync goes to the thread pool only while other associations are
// receiving, so the event loop keeps serving them.
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { closeQuietly, fdatasyncAsync, fsyncPathSync, writevAll } from '../../io/durableWrite.js';
import type { JournalCursor, RecordWriter, SpoolJournal } from './spoolJournal.js';
import { parseJournalRef } from './spoolRef.js';

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
async function fsyncDir(dir: string): Promise<void> {
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

interface PoolFile {
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
function discardFile(f: { fd?: number; path: string }): void {
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
  await fs.promises.mkdir(incoming, { recursive: true });
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

export interface SpoolWriterOptions {
  spoolDir: string;
  pool: SpoolPool;
  /** The association's place in the spool journal; without one (or when it has no room), a file. */
  cursor?: JournalCursor;
  journal?: SpoolJournal;
  /** Transfer syntax of the data set (as accepted); recorded for the caller. */
  transferSyntaxUid: string;
  /** Part 10 preamble (zeros) + file meta, written before the data set bytes. */
  meta: Buffer;
  /** Cap on data set bytes; exceeding it calls onOverflow once and drops further data. */
  maxBytes: number;
  onOverflow(): void;
  /** Whether this is the only association receiving now (then the fdatasync blocks). */
  alone(): boolean;
}

type WriterState = 'open' | 'finishing' | 'done' | 'discarded';

/**
 * Writes one data set into the spool: into a record of the association's journal segment
 * (spoolJournal.ts) when it has one with room, else into a pool file (also when a record turns
 * out not to fit: what was written moves to a file). finish() makes it durable and returns its
 * spool name (spoolRef.ts).
 */
export class SpoolWriter {
  readonly transferSyntaxUid: string;
  /** Data set bytes received (file meta excluded). */
  bytes = 0;
  /** First I/O error; the instance must then be answered with a failure. */
  error: NodeJS.ErrnoException | undefined;
  overflowed = false;
  /** The spool name of the finished instance. */
  item: string | undefined;

  private record: RecordWriter | undefined;
  private file: PoolFile | undefined;
  private crc = 0;
  private state: WriterState = 'open';

  constructor(private readonly opts: SpoolWriterOptions) {
    this.transferSyntaxUid = opts.transferSyntaxUid;
    try {
      // The CRC covers everything after the preamble, which the marker overwrites at the end.
      this.crc = crc32(opts.meta.subarray(128));
      this.record = opts.cursor?.begin();
      if (!this.record || !this.record.append(opts.meta)) this.toFile([opts.meta]);
    } catch (err) {
      this.fail(err as NodeJS.ErrnoException);
    }
  }

  /** Takes one data fragment (a view the caller will reuse: written before returning). */
  write(chunk: Buffer): void {
    if (this.state !== 'open') return;
    this.bytes += chunk.length;
    if (this.bytes > this.opts.maxBytes) {
      if (!this.overflowed) {
        this.overflowed = true;
        this.opts.onOverflow();
      }
      return;
    }
    if (this.error) return; // keep counting, drop the data; answered as a failure
    try {
      this.crc = crc32(chunk, this.crc);
      if (this.record) {
        if (!this.record.append(chunk)) this.toFile([chunk]);
      } else if (this.file) {
        writevAll(this.file.fd, [chunk]);
      }
    } catch (err) {
      this.fail(err as NodeJS.ErrnoException);
    }
  }

  /** Goes on in a pool file: what the record holds so far, then `rest`. */
  private toFile(rest: Buffer[]): void {
    const record = this.record;
    this.record = undefined;
    try {
      this.file = this.opts.pool.take();
      if (record) for (const part of record.copyOut()) writevAll(this.file.fd, [part]);
      writevAll(this.file.fd, rest);
    } finally {
      record?.abandon(true);
    }
  }

  /** Makes the instance durable; rejects (after cleaning up) on any failure. */
  async finish(): Promise<string> {
    if (this.state !== 'open') throw new Error(`spool writer already ${this.state}`);
    this.state = 'finishing';
    try {
      if (this.overflowed) throw new Error('instance exceeds the size limit');
      if (this.error) throw this.error;
      const alone = this.opts.alone();
      if (this.record) {
        const record = this.record;
        this.record = undefined;
        this.item = await record.finish(this.crc, alone);
      } else {
        this.item = await this.finishFile(this.file!, alone);
        this.file = undefined;
      }
      this.opts.cursor?.stored(this.opts.meta.length + this.bytes);
      this.state = 'done';
      return this.item;
    } catch (err) {
      await this.discard();
      throw err;
    }
  }

  private async finishFile(file: PoolFile, alone: boolean): Promise<string> {
    const marker = completionMarker(this.opts.meta.length + this.bytes, this.crc);
    if (fs.writeSync(file.fd, marker, 0, marker.length, 0) !== marker.length) throw new Error('short write');
    if (alone) fs.fdatasyncSync(file.fd);
    else await fdatasyncAsync(file.fd);
    if (!file.nameDurable) {
      if (alone) fsyncPathSync(this.opts.pool.dir);
      else await fsyncDir(this.opts.pool.dir);
    }
    const finalPath = path.join(this.opts.spoolDir, `${path.basename(file.path, '.part')}.dcm`);
    fs.renameSync(file.path, finalPath);
    closeQuietly(file.fd); // the data is durable: a close error changes nothing
    return finalPath;
  }

  /** Abandons the instance (also a finished one nobody was told of). Idempotent, never throws. */
  async discard(): Promise<void> {
    const wasDone = this.state === 'done';
    this.state = 'discarded';
    this.record?.abandon();
    this.record = undefined;
    const file = this.file;
    this.file = undefined;
    if (file) discardFile(file);
    if (wasDone && this.item) releaseSpoolItem(this.item, this.opts.journal);
  }

  private fail(err: NodeJS.ErrnoException): void {
    if (!this.error) this.error = err;
  }
}

/** Lets a spooled instance go: a record is retired in its journal, a file deleted. Never throws. */
export function releaseSpoolItem(item: string, journal: SpoolJournal | undefined): void {
  if (parseJournalRef(item)) journal?.release(item);
  else discardFile({ path: item });
}

/**
 * Sink for a data set that will be refused anyway (bad UIDs, SOP class not matching its
 * presentation context): counts bytes against the cap, stores nothing, and carries the status.
 */
export class DiscardSink {
  bytes = 0;
  private overflowed = false;

  constructor(
    readonly status: number,
    private readonly maxBytes: number,
    private readonly onOverflow: () => void,
  ) {}

  write(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes && !this.overflowed) {
      this.overflowed = true;
      this.onOverflow();
    }
  }

  async discard(): Promise<void> {}
}
