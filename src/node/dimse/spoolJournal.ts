// Interim: the spool journal with references in their text form, for the node's code until it
// owns a Spool (../spool/spool.ts); goes with the merge of the state work.
import { SpoolJournal as Journal, type SpoolJournalOptions } from '../spool/spoolJournal.js';
import { formatSpoolRef, parseSpoolRef } from '../spool/spoolRef.js';

export class SpoolJournal {
  readonly journal: Journal;

  constructor(spoolDir: string, opts: SpoolJournalOptions) {
    this.journal = new Journal(spoolDir, opts);
  }

  release(item: string): void {
    const ref = parseSpoolRef(item);
    if (ref.kind === 'journal') this.journal.release(ref);
  }

  liveRecords(): string[] {
    return this.journal.liveRecords().map(formatSpoolRef);
  }

  close(): Promise<void> {
    return this.journal.close();
  }
}
