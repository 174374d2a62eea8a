// The spool writer: every received data set is made durable before the C-STORE is answered.
// Most go into the spool journal (spoolJournal.ts): a record of the association's segment; an
// instance the segment has no room for goes to a file of the file spool (fileSpool.ts).
//
// The file I/O of one instance is synchronous, on purpose: as async calls every step is a round
// trip through libuv's thread pool, and those hand-offs, not the disk, made up most of an
// instance's latency. The fdatasync goes to the thread pool only while other associations are
// receiving, so the event loop keeps serving them.
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { closeQuietly, fdatasyncAsync, fsyncPathSync, writevAll } from '../../io/durableWrite.js';
import { completionMarker, discardFile, fsyncDir, type PoolFile, type SpoolPool } from './fileSpool.js';
import type { JournalCursor, RecordWriter, SpoolJournal } from './spoolJournal.js';
import { fileRef, type SpoolRef } from './spoolRef.js';
import type { StoreSink } from '../receiver/storeSink.js';

export interface SpoolWriterOptions {
  spoolDir: string;
  pool: SpoolPool;
  /** The association's place in the spool journal; without one (or when it has no room), a file. */
  cursor?: JournalCursor;
  journal?: SpoolJournal;
  /** Part 10 preamble (zeros) + file meta, written before the data set bytes. */
  meta: Buffer;
  /** Whether this is the only association receiving now (then the fdatasync blocks). */
  alone(): boolean;
}

type WriterState = 'open' | 'finishing' | 'done' | 'discarded';

/**
 * Writes one data set into the spool: into a record of the association's journal segment
 * (spoolJournal.ts) when it has one with room, else into a pool file (also when a record turns
 * out not to fit: what was written moves to a file). finish() makes it durable and returns its
 * reference (spoolRef.ts). The receiver's StoreSink (src/node/receiver/storeSink.ts); the
 * receiver enforces the size cap.
 */
export class SpoolWriter implements StoreSink<SpoolRef> {
  /** Data set bytes received (file meta excluded). */
  bytes = 0;
  /** First I/O error; the instance must then be answered with a failure. */
  error: NodeJS.ErrnoException | undefined;
  /** The finished instance. */
  item: SpoolRef | undefined;

  private record: RecordWriter | undefined;
  private file: PoolFile | undefined;
  private crc = 0;
  private state: WriterState = 'open';

  /**
   * Starts the instance: writes `meta` (preamble and file meta) to a journal record or a pool file. Never
   * throws: an I/O error is kept in `error` and the instance is answered with a failure.
   */
  constructor(private readonly opts: SpoolWriterOptions) {
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
  async finish(): Promise<SpoolRef> {
    if (this.state !== 'open') throw new Error(`spool writer already ${this.state}`);
    this.state = 'finishing';
    try {
      if (this.error) throw this.error;
      const alone = this.opts.alone();
      if (this.record) {
        const record = this.record;
        this.record = undefined;
        this.item = await record.finish(this.crc, alone);
      } else {
        this.item = fileRef(await this.finishFile(this.file!, alone));
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
export function releaseSpoolItem(ref: SpoolRef, journal: SpoolJournal | undefined): void {
  if (ref.kind === 'journal') journal?.release(ref);
  else discardFile({ path: ref.path });
}
