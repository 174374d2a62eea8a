// Reading a spooled instance's bytes (spoolRef.ts names it). A record is read only after checking
// it against its marker and its segment's header (spoolRecordFormat.ts): should the bookkeeping
// ever hand over a record whose place was reused, the reader gets SpoolItemGone, never another
// instance's bytes under this reference.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { ReusableReader } from '../../io/reusableReader.js';
import { isCompleteRecord, readSegmentHeader, type Stamp } from './spoolRecordFormat.js';
import type { JournalRef, SpoolRef } from './spoolRef.js';

/** The record is no longer there (its segment was removed or reused): there is nothing to process. */
export class SpoolItemGone extends Error {
  override name = 'SpoolItemGone';
}

/** The record is there, but its bytes no longer match its checksum (a disk error): not to be filed. */
export class SpoolRecordCorrupt extends Error {
  override name = 'SpoolRecordCorrupt';
}

/**
 * The bytes of a spooled instance, valid until the reader's next call. Throws SpoolItemGone,
 * SpoolRecordCorrupt, or an fs error (a file: ENOENT...).
 */
export function readSpoolItem(reader: ReusableReader, ref: SpoolRef): Buffer {
  if (ref.kind === 'file') return reader.read(ref.path)!;
  return checked(ref, false, () => reader.readRange(ref.segment, ref.offset, ref.length));
}

/**
 * The bytes of a spooled instance in a buffer of their own. `unchecked`: a record's bytes as they
 * are, even when they do not match its checksum (to quarantine a corrupt one).
 */
export function readSpoolItemCopy(ref: SpoolRef, unchecked = false): Buffer {
  if (ref.kind === 'file') return readFileSync(ref.path);
  // A reader of its own: the buffer it returns is not reused.
  return checked(ref, unchecked, () => new ReusableReader().readRange(ref.segment, ref.offset, ref.length));
}

function checked(r: JournalRef, unchecked: boolean, read: () => Buffer): Buffer {
  let stamp: Stamp | null;
  let bytes: Buffer;
  try {
    stamp = segmentStamp(r.segment);
    bytes = read();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESHORTREAD' || (err as Error).name === 'SpoolItemGone')
      throw new SpoolItemGone('spool record is gone');
    throw err;
  }
  // The segment is still in the use the record belongs to: whatever does not match now is damage.
  if (!stamp || stamp.generation !== r.generation || stamp.nonce.toString('hex') !== r.nonce) {
    throw new SpoolItemGone('spool record belongs to an earlier use of its segment');
  }
  if (!unchecked && !isCompleteRecord(bytes, stamp))
    throw new SpoolRecordCorrupt('spool record does not match its marker');
  return bytes;
}

function segmentStamp(segment: string): Stamp | null {
  const header = Buffer.alloc(40);
  const fd = openSync(segment, 'r');
  try {
    if (readSync(fd, header, 0, 40, 0) !== 40) return null;
  } finally {
    closeSync(fd);
  }
  return readSegmentHeader(header);
}
