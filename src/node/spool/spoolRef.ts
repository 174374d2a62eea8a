// The reference to a spooled instance, as handed from the spool to the receiver, the processing
// threads and back: a record of a journal segment (spoolJournal.ts), or a Part 10 file of its own
// (fileSpool.ts; on a quarantine replay, a quarantined file). Both hold the instance as a Part 10
// file whose preamble carries the spool's completion marker (spoolRecordFormat.ts).
//
// A record is named by the use of its segment it belongs to (generation and nonce): a segment
// reused, or recreated under the same path, never repeats a record's reference. It is a plain
// object (it crosses to the worker threads as it is); its one text form (formatSpoolRef) is the
// id for maps, and parseSpoolRef reads it back.
import { basename } from 'node:path';

/** A record of a journal segment. */
export interface JournalRef {
  kind: 'journal';
  /** Path of the segment file. */
  segment: string;
  /** Byte offset of the record in the segment (a multiple of 4096). */
  offset: number;
  /** Record length in bytes (marker preamble, file meta and data set). */
  length: number;
  /** The segment's use the record belongs to: its generation, and its nonce in hex. */
  generation: number;
  nonce: string;
}

/** A spooled instance in a file of its own. */
export interface FileRef {
  kind: 'file';
  path: string;
}

export type SpoolRef = JournalRef | FileRef;

/** The reference to a spooled (or quarantined) Part 10 file at `path`. */
export function fileRef(path: string): FileRef {
  return { kind: 'file', path };
}

const RECORD = /^(.+\.seg)@(\d+)\+(\d+)#(\d+)\.([0-9a-f]{16})$/;

/**
 * The reference's one text form, unique among the spool's instances (the id for maps): a file's
 * path, or `<segment path>@<offset>+<length>#<generation>.<nonce>` for a record.
 */
export function formatSpoolRef(ref: SpoolRef): string {
  if (ref.kind === 'file') return ref.path;
  return `${ref.segment}@${ref.offset}+${ref.length}#${ref.generation}.${ref.nonce}`;
}

/** Reads formatSpoolRef's text form back (text that does not name a record names a file). */
export function parseSpoolRef(text: string): SpoolRef {
  const m = RECORD.exec(text);
  if (!m) return fileRef(text);
  return {
    kind: 'journal',
    segment: m[1]!,
    offset: Number(m[2]),
    length: Number(m[3]),
    generation: Number(m[4]),
    nonce: m[5]!,
  };
}

/** The id for maps and sets: formatSpoolRef's text form. */
export const spoolRefId = formatSpoolRef;

/**
 * A short name for logs and the audit trail (never an identifier): the file name, or
 * `<segment>-<generation>-<offset>` (not unique across spools: a new spool starts over).
 */
export function spoolRefName(ref: SpoolRef): string {
  if (ref.kind === 'file') return basename(ref.path);
  return `${basename(ref.segment, '.seg')}-${ref.generation}-${ref.offset}`;
}
