// Identifiers in the mapping CSV's Notes column: the notes are written into every file of the
// patient (PatientComments) and into notes.txt, so an MRN, an Accession or a date in them would
// leave with the research data. Found here, before any run, one warning per row naming the line
// and the column and what kind of identifier it holds (never the value).
//
// A warning, not an error: the notes are the researcher's own words (a heuristic can be wrong:
// a 4-digit number that is also an MRN), and the leak guard warns again on every file whose
// notes still hold the row's MRN or Accession.

import { IdentifierMatcher, type Identifier } from '../identifiers/matcher.js';
import { findDates } from '../identifiers/textDates.js';
import type { CsvProblem } from './csvProblem.js';

/** One data row as far as its notes are concerned. */
export interface NotesRow {
  /** Physical line of the row (1-based). */
  line: number;
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

/** An identifier's letters and digits, lower case: `MRN-1001` and `mrn 1001` are `mrn1001`. */
function compactKey(value: string): string {
  return value
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, '');
}

/** Shorter identifiers are not looked for in other rows' notes (they would match words and numbers). */
const MIN_KEY_LENGTH = 4;

/** How many letter/digit runs of the notes are joined to compare with an identifier (`MRN 10 01`). */
const MAX_JOINED_RUNS = 3;

/**
 * Warnings for rows whose Notes hold the row's own MRN or Accession (found as the leak guard
 * finds them, see IdentifierMatcher), another row's MRN or Accession (its letters and digits,
 * of at least 4, as one to three runs of the notes' letters and digits), or a calendar date in
 * any form textDates.ts reads (2025-03-14, 14.02.1960, 03/14/2025, 20250314, 14 Mar 2025).
 * Returns one warning per such row, in row order; `text` and `redacted` are the same (no value).
 */
export function notesIdentifierProblems(rows: readonly NotesRow[], names: NotesColumnNames): CsvProblem[] {
  const firstLineOf = new Map<string, { column: string; line: number }>();
  for (const r of rows) {
    for (const [column, value] of [
      [names.mrn, r.mrn],
      [names.accession, r.accession],
    ] as const) {
      if (value === null) continue;
      const key = compactKey(value);
      if (key.length >= MIN_KEY_LENGTH && !firstLineOf.has(key)) firstLineOf.set(key, { column, line: r.line });
    }
  }

  const problems: CsvProblem[] = [];
  for (const r of rows) {
    if (r.notes.trim() === '') continue;
    const found: string[] = [];
    const own: Identifier[] = [];
    if (r.mrn !== null) own.push({ kind: 'mrn', value: r.mrn });
    if (r.accession !== null) own.push({ kind: 'csv-accession', value: r.accession });
    const kinds = new IdentifierMatcher(own).find(r.notes);
    if (kinds.includes('mrn')) found.push(`this row's ${names.mrn}`);
    if (kinds.includes('csv-accession')) found.push(`this row's ${names.accession}`);

    const ownKeys = new Set(own.map((id) => compactKey(id.value)));
    const runs =
      r.notes
        .normalize('NFKC')
        .toLowerCase()
        .match(/[\p{L}\p{N}]+/gu) ?? [];
    const others = new Set<string>();
    for (let i = 0; i < runs.length; i++) {
      let joined = '';
      for (let j = i; j < Math.min(runs.length, i + MAX_JOINED_RUNS); j++) {
        joined += runs[j];
        const hit = ownKeys.has(joined) ? undefined : firstLineOf.get(joined);
        if (hit && hit.line !== r.line) others.add(`the ${hit.column} of line ${hit.line}`);
      }
    }
    found.push(...others);
    if (findDates(r.notes).length > 0) found.push('a date');
    if (found.length === 0) continue;

    const list = found.length === 1 ? found[0]! : `${found.slice(0, -1).join(', ')} and ${found[found.length - 1]!}`;
    const text = `${names.notes} holds ${list}: notes are copied into every file of the patient and into notes.txt; remove identifiers from ${names.notes}`;
    problems.push({ severity: 'warning', line: r.line, text, redacted: text });
  }
  return problems;
}
