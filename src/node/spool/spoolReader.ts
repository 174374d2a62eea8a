// Reading a spooled instance (spoolRef.ts names it) in bounded memory, whatever its size. A record
// is read only after checking it against its marker and its segment's header
// (spoolRecordFormat.ts): should the bookkeeping ever hand over a record whose place was reused,
// the reader gets SpoolItemGone, never another instance's bytes under this reference.
//
// An instance up to SMALL bytes (a CT or MR slice) is read whole, once, into a buffer the reader
// keeps and reuses; a larger one is checked by streaming its CRC-32 through a 1 MiB chunk, then
// read by position (the core reads it up to its pixel data and after it: FileByteSource), and its
// pixel data is copied from the spool to the output by range (copyRange.ts), never through a
// buffer of its size. Nothing above SMALL + 1 MiB is kept after an instance.
import { openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { bufferSource, type ByteRange, type ByteSource } from '../../core/dicom/byteSource.js';
import { closeQuietly, type FilePiece } from '../../io/durableWrite.js';
import { FileByteSource } from '../../io/fileByteSource.js';
import { isCompleteRecord, readMarker, readSegmentHeader, type Stamp } from './spoolRecordFormat.js';
import type { SpoolRef } from './spoolRef.js';

/** The record is no longer there (its segment was removed or reused): there is nothing to process. */
export class SpoolItemGone extends Error {
  override name = 'SpoolItemGone';
}

/** The record is there, but its bytes no longer match its checksum (a disk error): not to be filed. */
export class SpoolRecordCorrupt extends Error {
  override name = 'SpoolRecordCorrupt';
}

/** Instances up to this size (bytes) are read whole into the reader's buffer. */
export const SMALL = 1 << 20;
/** The chunk a large record's checksum is streamed through (bytes). */
const CHUNK = 1 << 20;
let chunk: Buffer | undefined;

/** A spooled instance opened for reading, checked; valid until close() (or the reader's next open). */
export interface OpenedSpoolItem {
  /** Its bytes as a Part 10 file (marker preamble, file meta, data set), read by position. */
  readonly source: ByteSource;
  /**
   * `range` of the instance as a piece of writeFileAtomicSync/writeFileDurableSync: a view of
   * the reader's buffer for a small instance, else a range of the spool file, copied by the
   * kernel or in bounded chunks. Valid until close().
   */
  piece(range: ByteRange): FilePiece;
  /** Closes the spool file. Never throws. */
  close(): void;
}

/**
 * Opens spooled instances one at a time (one per thread: the caller is done with one before it
 * opens the next), keeping one buffer of at most SMALL bytes for the small ones.
 */
export class SpoolItemReader {
  private buffer: Buffer | undefined;

  /**
   * Opens `ref` and checks it: a record against its segment's use and its marker (length,
   * CRC-32); a spool file (whose marker was checked when it was recovered) as it is.
   * `unchecked`: a record's bytes as they are, even when they do not match its checksum (to
   * quarantine a corrupt one). Throws SpoolItemGone, SpoolRecordCorrupt, or an fs error (a
   * spool file: ENOENT...).
   */
  open(ref: SpoolRef, opts: { unchecked?: boolean } = {}): OpenedSpoolItem {
    this.buffer ??= Buffer.allocUnsafeSlow(SMALL);
    return openSpoolItem(ref, { ...opts, buffer: this.buffer });
  }
}

/**
 * Opens a spooled instance as SpoolItemReader.open does; with `buffer`, an instance that fits it
 * is read whole into it, else (and without one) it is read by position. Throws as open does.
 */
export function openSpoolItem(ref: SpoolRef, opts: { unchecked?: boolean; buffer?: Buffer } = {}): OpenedSpoolItem {
  let fd: number;
  try {
    fd = openSync(ref.kind === 'file' ? ref.path : ref.segment, 'r');
  } catch (err) {
    if (ref.kind === 'journal' && (err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new SpoolItemGone('spool record is gone');
    throw err;
  }
  try {
    const start = ref.kind === 'file' ? 0 : ref.offset;
    const file = ref.kind === 'file' ? new FileByteSource(fd) : new FileByteSource(fd, ref.offset, ref.length);
    let whole: Buffer | undefined;
    if (opts.buffer && file.size <= opts.buffer.length) {
      whole = opts.buffer.subarray(0, file.size);
      if (preadAll(fd, whole, start) < whole.length) {
        if (ref.kind === 'journal') throw new SpoolItemGone('spool record is gone');
        throw Object.assign(new Error('spool file shorter than it was'), { code: 'ESHORTREAD' });
      }
    }
    if (ref.kind === 'journal') {
      // The header and the record come from the same open file: a segment recreated under the
      // same path meanwhile cannot pair one's header with the other's bytes.
      const stamp = segmentStamp(fd);
      if (!stamp || stamp.generation !== ref.generation || stamp.nonce.toString('hex') !== ref.nonce) {
        throw new SpoolItemGone('spool record belongs to an earlier use of its segment');
      }
      if (!opts.unchecked && !(whole ? isCompleteRecord(whole, stamp) : streamedRecordMatches(file, stamp))) {
        throw new SpoolRecordCorrupt('spool record does not match its marker');
      }
    }
    const source = whole ? bufferSource(whole) : file;
    return {
      source,
      piece: (range) => (whole ? whole.subarray(range.offset, range.offset + range.length) : file.fileRange(range)),
      close: () => closeQuietly(fd),
    };
  } catch (err) {
    closeQuietly(fd);
    if ((err as NodeJS.ErrnoException).code === 'ESHORTREAD' && ref.kind === 'journal')
      throw new SpoolItemGone('spool record is gone');
    throw err;
  }
}

/**
 * The bytes of a spooled instance in a buffer of their own (tests, and small instances only: it
 * holds the whole instance). `unchecked` as for SpoolItemReader.open.
 */
export function readSpoolItemCopy(ref: SpoolRef, unchecked = false): Buffer {
  const item = openSpoolItem(ref, { unchecked });
  try {
    return Buffer.from(item.source.read(0, item.source.size));
  } finally {
    item.close();
  }
}

/** Whether a record read by position carries a marker of this use that matches its bytes. */
function streamedRecordMatches(record: FileByteSource, stamp: Stamp): boolean {
  const marker = readMarker(record.read(0, 128), stamp);
  if (!marker || marker.length !== record.size) return false;
  chunk ??= Buffer.allocUnsafeSlow(CHUNK);
  let crc = 0;
  for (let pos = 128; pos < record.size;) {
    const want = Math.min(CHUNK, record.size - pos);
    const n = preadAll(record.fd, chunk.subarray(0, want), record.start + pos);
    if (n < want) throw Object.assign(new Error('spool record shorter than its marker'), { code: 'ESHORTREAD' });
    crc = crc32(chunk.subarray(0, n), crc);
    pos += n;
  }
  return crc >>> 0 === marker.crc;
}

function segmentStamp(fd: number): Stamp | null {
  const header = Buffer.alloc(40);
  if (preadAll(fd, header, 0) !== 40) return null;
  return readSegmentHeader(header);
}

function preadAll(fd: number, buf: Buffer, position: number): number {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, position + off);
    if (n === 0) break;
    off += n;
  }
  return off;
}
