// What a batch run reports at its end: the files per status and, per research patient, its
// sessions with their new names. It never shows source paths (they may hold names): those are
// in the audit log.
import type { FileStatus } from '../audit/auditLog.js';
import { plural } from '../words.js';

export interface BatchSummary {
  counts: Record<FileStatus, number>;
  otherFilesLeftOut: number;
  otherFilesCopied: number;
  /** Why non-DICOM files were left out (with --copy-other-files): reason -> count. */
  otherFilesLeftOutBy: Map<string, number>;
  /** Written files whose pixels may hold burned-in text: output path (relative) and why. */
  review: { outputPath: string; reason: string }[];
  /** Files written with a leak guard warning (the audit log says which attribute and kind). */
  leakGuardWarned: number;
  /** researchId -> session folder name -> number of files written. */
  sessions: Map<string, Map<string, number>>;
  auditLog: string;
  /** The state database (UID secret, session numbers). */
  state: string;
  /** Files of the output other than the instances that could not be written (notes.txt, copies): output path and why. */
  notWritten: { outputPath: string; why: string }[];
  /** 1 when some DICOM file was not de-identified (no row, failed, held), or none was found, or `notWritten` is not empty. */
  exitCode: 0 | 1;
  /** Absolute paths of the de-identified files written by this run. */
  written: string[];
  /** Unmatched files whose PatientID/AccessionNumber is a CSV value with leading zeros added. */
  lostLeadingZeros: { files: number; csvLines: Set<number> };
  /** The run continued interrupted ones: how many files they had done, and their audit logs. */
  continued?: { files: number; auditLogs: string[] };
}

/**
 * 1 when some DICOM file was not de-identified (no row, failed, held, also by the leak guard), or none was found; a
 * DICOMDIR is not an instance: leaving it out is no failure.
 */
export function exitCodeOf(c: Record<FileStatus, number>): 0 | 1 {
  const notWritten = c['no-mapping'] + c.error + c.held + c.conflict + c['leak-guard'];
  return notWritten > 0 || c.ok + notWritten === 0 ? 1 : 0;
}

/** Prints the summary, one line at a time through `say`; `secs`: the run's duration (s). */
export function printSummary(s: BatchSummary, secs: number, say: (line: string) => void): void {
  const c = s.counts;
  const total = Object.values(c).reduce((a, b) => a + b, 0);
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
  if (c.held > 0)
    say(`  held (burned-in):   ${c.held} (Burned In Annotation YES: not written; --allow-burned-in writes them)`);
  if (c.conflict > 0)
    say(`  held (conflict):    ${c.conflict} (their study belongs to another research patient: not written)`);
  if (c['leak-guard'] > 0)
    say(`  held (leak guard):  ${c['leak-guard']} (an identifier of the source was in the output: see the audit log)`);
  if (c.dicomdir > 0) say(`  DICOMDIR:           ${c.dicomdir} (media indexes, left out)`);
  say(
    `  not DICOM:          ${c['not-dicom']} (${s.otherFilesLeftOut} left out${s.otherFilesCopied ? `, ${s.otherFilesCopied} copied` : ''})`,
  );
  for (const [why, n] of [...s.otherFilesLeftOutBy].sort((a, b) => b[1] - a[1])) say(`    left out, ${why}: ${n}`);
  const ids = [...s.sessions.keys()].sort();
  if (ids.length > 0) say(`Research patients: ${ids.length}`);
  for (const id of ids) {
    const sess = [...s.sessions.get(id)!.entries()].sort(([a], [b]) => sessionOrder(a, b));
    say(
      `  ${id}: ${plural(sess.length, 'session')}: ${sess.map(([n, k]) => `${n} (${plural(k, 'file')})`).join(', ')}`,
    );
  }
  if (s.leakGuardWarned > 0) {
    say(
      `Leak guard warnings: ${plural(s.leakGuardWarned, 'written file')} (an identifier of the patient in a warn-only attribute or in the row's Notes; the audit log says where)`,
    );
  }
  if (s.review.length > 0) {
    // Output paths are de-identified: they can be shown.
    say(`Check for text burned into the pixels (${plural(s.review.length, 'written file')}; the audit log says why):`);
    for (const r of s.review.slice(0, 20)) say(`  ${r.outputPath}`);
    if (s.review.length > 20) say(`  ... and ${s.review.length - 20} more`);
  }
  if (s.lostLeadingZeros.files > 0) {
    const lines = [...s.lostLeadingZeros.csvLines].sort((a, b) => a - b);
    say(
      `${plural(s.lostLeadingZeros.files, 'unmatched file')} would match the MRN or Accession on CSV ` +
        `${lines.length === 1 ? 'line' : 'lines'} ${lines.join(', ')} with leading zeros put back: ` +
        'Excel drops them; if they are the same, format that column as Text in Excel, type the zeros again, and run again',
    );
  }
  if (s.notWritten.length > 0) {
    // Output paths are de-identified: they can be shown.
    say(`Not written (${plural(s.notWritten.length, 'file')}; run the same command again once fixed):`);
    for (const f of s.notWritten.slice(0, 20)) say(`  ${f.outputPath}: ${f.why}`);
    if (s.notWritten.length > 20) say(`  ... and ${s.notWritten.length - 20} more`);
  }
  say(`Audit log (contains identifiers, do not share): ${s.auditLog}`);
  // Without it a new run makes a new UID secret and numbers sessions from 1 again.
  say(`State database (keep it, and back it up with the mapping CSV): ${s.state}`);
  if (c['no-mapping'] + c.error + c.held + c.conflict + c['leak-guard'] > 0) {
    say('Some DICOM files were not de-identified: see the audit log.');
  } else if (c.ok === 0) say('No DICOM file was found in the input: nothing was de-identified.');
}

/** `RES001_2` before `RES001_10`: by session number, then by name. */
export function sessionOrder(a: string, b: string): number {
  const na = Number(a.slice(a.lastIndexOf('_') + 1));
  const nb = Number(b.slice(b.lastIndexOf('_') + 1));
  return na - nb || (a < b ? -1 : a > b ? 1 : 0);
}
