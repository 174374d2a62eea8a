// What a batch run reports at its end: the files per status and, per research patient, its
// sessions with their new names. It never shows source paths (they may hold names): those are
// in the audit log.
import type { FileStatus } from '../audit/auditLog.js';
import { plural } from '../words.js';

export interface BatchSummary {
  counts: Record<FileStatus, number>;
  otherFilesLeftOut: number;
  otherFilesCopied: number;
  /** researchId -> session folder name -> number of files written. */
  sessions: Map<string, Map<string, number>>;
  auditLog: string;
  /** The state database (UID secret, session numbers). */
  state: string;
  /** 1 when some DICOM file was not de-identified, or none was found. */
  exitCode: 0 | 1;
  /** Absolute paths of the de-identified files written by this run. */
  written: string[];
  /** Unmatched files whose PatientID/AccessionNumber is a CSV value with leading zeros added. */
  lostLeadingZeros: { files: number; csvLines: Set<number> };
  /** The run continued interrupted ones: how many files they had done, and their audit logs. */
  continued?: { files: number; auditLogs: string[] };
}

/** Prints the summary, one line at a time through `say`; `secs`: the run's duration (s). */
export function printSummary(s: BatchSummary, secs: number, say: (line: string) => void): void {
  const c = s.counts;
  const total = c.ok + c['no-mapping'] + c['not-dicom'] + c.error;
  say(`Processed ${plural(total, 'file')} in ${secs.toFixed(1)} s`);
  if (s.continued) {
    say(
      `  continuing an interrupted run: ${plural(s.continued.files, 'file was', 'files were')} done then ` +
        `(their rows are in ${s.continued.auditLogs.join(', ')}), the others now`,
    );
  }
  say(`  de-identified (ok): ${c.ok}`);
  say(`  no mapping row:     ${c['no-mapping']}`);
  say(`  errors:             ${c.error}`);
  say(
    `  not DICOM:          ${c['not-dicom']} (${s.otherFilesLeftOut} left out${s.otherFilesCopied ? `, ${s.otherFilesCopied} copied` : ''})`,
  );
  const ids = [...s.sessions.keys()].sort();
  if (ids.length > 0) say(`Research patients: ${ids.length}`);
  for (const id of ids) {
    const sess = [...s.sessions.get(id)!.entries()].sort(([a], [b]) => sessionOrder(a, b));
    say(
      `  ${id}: ${plural(sess.length, 'session')}: ${sess.map(([n, k]) => `${n} (${plural(k, 'file')})`).join(', ')}`,
    );
  }
  if (s.lostLeadingZeros.files > 0) {
    const lines = [...s.lostLeadingZeros.csvLines].sort((a, b) => a - b);
    say(
      `${plural(s.lostLeadingZeros.files, 'unmatched file')} would match the MRN or Accession on CSV ` +
        `${lines.length === 1 ? 'line' : 'lines'} ${lines.join(', ')} with leading zeros put back: ` +
        'Excel drops them; if they are the same, format that column as Text in Excel, type the zeros again, and run again',
    );
  }
  say(`Audit log (contains identifiers, do not share): ${s.auditLog}`);
  // Without it a new run makes a new UID secret and numbers sessions from 1 again.
  say(`State database (keep it, and back it up with the mapping CSV): ${s.state}`);
  if (c['no-mapping'] + c.error > 0) say('Some DICOM files were not de-identified: see the audit log.');
  else if (c.ok === 0) say('No DICOM file was found in the input: nothing was de-identified.');
}

/** `RES001_2` before `RES001_10`: by session number, then by name. */
export function sessionOrder(a: string, b: string): number {
  const na = Number(a.slice(a.lastIndexOf('_') + 1));
  const nb = Number(b.slice(b.lastIndexOf('_') + 1));
  return na - nb || (a < b ? -1 : a > b ? 1 : 0);
}
