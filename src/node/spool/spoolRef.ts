// Names of spooled instances, as handed from the receiver to the processing threads. A spooled
// instance is either a file (`<spool>/<id>.dcm`) or a record in a journal segment of the spool
// (spoolJournal.ts), named `<segment path>@<offset>+<length>#<generation>.<nonce>` (the use of
// the segment it belongs to: a segment recreated under the same path never repeats a name). Both hold the
// instance as a Part 10 file whose preamble carries the spool's completion marker.
//
// A record is read only after checking it against its marker and its segment's header
// (spoolRecordFormat.ts): should the bookkeeping ever hand over a record whose place was reused,
// the reader gets SpoolItemGone, never another instance's bytes under this name.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { ReusableReader } from '../../io/reusableReader.js';
import { isCompleteRecord, readSegmentHeader, type Stamp } from './spoolRecordFormat.js';

export interface JournalRef {
  segment: string;
  offset: number;
  length: number;
  generation: number;
  /** The segment's nonce for that generation, in hex. */
  nonce: string;
}

/** The record is no longer there (its segment was removed or reused): there is nothing to process. */
export class SpoolItemGone extends Error {
  override name = 'SpoolItemGone';
}

/** The record is there, but its bytes no longer match its checksum (a disk error): not to be filed. */
export class SpoolRecordCorrupt extends Error {
  override name = 'SpoolRecordCorrupt';
}

const REF = /^(.+\.seg)@(\d+)\+(\d+)#(\d+)\.([0-9a-f]{16})$/;

export function formatJournalRef(r: JournalRef): string {
  return `${r.segment}@${r.offset}+${r.length}#${r.generation}.${r.nonce}`;
}

/** The record a spool item names, or null when it names a file. */
export function parseJournalRef(item: string): JournalRef | null {
  const m = REF.exec(item);
  if (!m) return null;
  return { segment: m[1]!, offset: Number(m[2]), length: Number(m[3]), generation: Number(m[4]), nonce: m[5]! };
}

/** A short name for logs and the audit trail: the file name, or `<segment>-<generation>-<offset>`. */
export function spoolItemName(item: string): string {
  const r = parseJournalRef(item);
  if (!r) return basename(item);
  return `${basename(r.segment, '.seg')}-${r.generation}-${r.offset}`;
}

/** The bytes of a spooled instance, valid until the reader's next call. */
export function readSpoolItem(reader: ReusableReader, item: string): Buffer {
  const r = parseJournalRef(item);
  if (!r) return reader.read(item)!;
  return checked(r, false, () => reader.readRange(r.segment, r.offset, r.length));
}

/**
 * The bytes of a spooled instance in a buffer of their own. `unchecked`: a record's bytes as they
 * are, even when they do not match its checksum (to quarantine a corrupt one).
 */
export function readSpoolItemCopy(item: string, unchecked = false): Buffer {
  const r = parseJournalRef(item);
  if (!r) return readFileSync(item);
  // A reader of its own: the buffer it returns is not reused.
  return checked(r, unchecked, () => new ReusableReader().readRange(r.segment, r.offset, r.length));
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
