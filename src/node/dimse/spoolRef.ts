// Interim: spool references in their text form, for the node's processing code until it takes
// SpoolRef objects (../spool/spoolRef.ts); goes with the merge of the state work.
import type { ReusableReader } from '../../io/reusableReader.js';
import { readSpoolItem as readRef } from '../spool/spoolReader.js';
import { parseSpoolRef, spoolRefName, type JournalRef } from '../spool/spoolRef.js';

/** The record a spool item names, or null when it names a file. */
export function parseJournalRef(item: string): JournalRef | null {
  const ref = parseSpoolRef(item);
  return ref.kind === 'journal' ? ref : null;
}

/** A short name for logs and the audit trail. */
export function spoolItemName(item: string): string {
  return spoolRefName(parseSpoolRef(item));
}

/** The bytes of a spooled instance, valid until the reader's next call. */
export function readSpoolItem(reader: ReusableReader, item: string): Buffer {
  return readRef(reader, parseSpoolRef(item));
}
