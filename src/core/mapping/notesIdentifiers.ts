// Identifiers in the mapping CSV's Notes column: the notes are written into every file of the
// patient (PatientComments) and into notes.txt, so an MRN, an Accession or a date in them would
// leave with the research data. Found here, before any run, one warning per row naming the line
// and the column and what kind of identifier it holds (never the value).
//
// A warning, not an error: the notes are the researcher's own words (a heuristic can be wrong:
// a 4-digit number that is also an MRN), and the leak guard warns again on every file whose
// notes still hold the patient's or another patient's MRN or Accession.

import { CohortMatcher } from '../identifiers/cohortMatcher.js';
import { IdentifierMatcher, type Identifier } from '../identifiers/matcher.js';
import { findDates } from '../identifiers/textDates.js';
import type { CsvProblem } from './csvProblem.js';

/** One data row as far as its notes are concerned. */
export interface NotesRow {
  /** Physical line of the row (1-based). */
  line: number;
  /** The row's research ID ('' when missing): rows of one research ID are one patient. */
  researchId: string;
  /** The row's MRN and Accession (null: empty or "no information"). */
  mrn: string | null;
  accession: string | null;
  notes: string;
}

/** Column names as the header spells them, for the messages. */
export interface NotesColumnNames {
  notes: string;
  mrn: string;
  accession: string;
}

/**
 * Warnings for rows whose Notes hold the row's own MRN or Accession (found as the leak guard
 * finds them: IdentifierMatcher), another patient's (any other research ID's row: CohortMatcher,
 * as the leak guard looks for the run's other patients), or a calendar date in any form
 * textDates.ts reads (2025-03-14, 14.02.1960, 03/14/2025, 20250314, 14 Mar 2025). One warning
 * per such row, in row order; `text` and `redacted` are the same (they hold no value).
 */
export function notesIdentifierProblems(rows: readonly NotesRow[], names: NotesColumnNames): CsvProblem[] {
  const owner = (r: NotesRow) => (r.researchId === '' ? `line ${r.line}` : r.researchId);
  const withNotes = rows.filter((r) => r.notes.trim() !== '');
  if (withNotes.length === 0) return [];
  const cohort = CohortMatcher.of(
    rows.flatMap((r) => [
      ...(r.mrn === null ? [] : [{ kind: 'mrn' as const, value: r.mrn, owner: owner(r) }]),
      ...(r.accession === null ? [] : [{ kind: 'csv-accession' as const, value: r.accession, owner: owner(r) }]),
    ]),
  );

  const problems: CsvProblem[] = [];
  for (const r of withNotes) {
    const own: Identifier[] = [];
    if (r.mrn !== null) own.push({ kind: 'mrn', value: r.mrn });
    if (r.accession !== null) own.push({ kind: 'csv-accession', value: r.accession });
    const mine = new IdentifierMatcher(own).find(r.notes);
    const others = cohort.find(r.notes, owner(r));
    const found: string[] = [];
    if (mine.includes('mrn')) found.push(`this row's ${names.mrn}`);
    if (mine.includes('csv-accession')) found.push(`this row's ${names.accession}`);
    if (others.includes('mrn')) found.push(`another patient's ${names.mrn}`);
    if (others.includes('csv-accession')) found.push(`another patient's ${names.accession}`);
    if (findDates(r.notes).length > 0) found.push('a date');
    if (found.length === 0) continue;

    const list = found.length === 1 ? found[0]! : `${found.slice(0, -1).join(', ')} and ${found[found.length - 1]!}`;
    const text = `${names.notes} holds ${list}: notes are copied into every file of the patient and into notes.txt; remove identifiers from ${names.notes}`;
    problems.push({ severity: 'warning', line: r.line, text, redacted: text });
  }
  return problems;
}
