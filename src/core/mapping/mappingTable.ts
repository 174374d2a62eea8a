// Looks up the mapping row for an instance from its PatientID and AccessionNumber.
//
// Lookup order (first hit wins):
//   1. PatientID       in the MRN column        -> 'mrn'
//   2. AccessionNumber in the Accession column  -> 'accession'
//   3. PatientID       in the Accession column  -> 'mrn-in-accession-column'
//   4. AccessionNumber in the MRN column        -> 'accession-in-mrn-column'
// DICOM values are trimmed (spaces/NULs, both ends); an empty or "no information" (5+ underscores)
// DICOM value never matches. Comparison is exact and CASE-SENSITIVE: MRNs and accession numbers
// are identifiers, and folding case could join two different patients.
//
// When several rows share the matched key (one patient with several accessions, all with the same
// research ID as parseMappingCsv guarantees), the row whose other column also matches the instance
// is preferred (so its Surgery_Date/Notes apply), else the first such row in file order. If the
// rows it was chosen from disagree on the day offset, the match carries a note naming the row
// used. An instance that matches nothing but would have matched a CSV value with its leading
// zeros put back (Excel drops them) is not matched, but unmatchedNote says so.

import { CohortMatcher, type CohortEntry } from '../identifiers/cohortMatcher.js';
import type { Match, MappingRow, MatchedBy, MatchNote } from '../types.js';
import { isNoInformation } from './mappingCsv.js';

function trimDicom(s: string): string {
  return s.replace(/^[\s\0]+|[\s\0]+$/g, '');
}

function index(rows: readonly MappingRow[], key: 'mrn' | 'accession'): Map<string, MappingRow[]> {
  const m = new Map<string, MappingRow[]>();
  for (const r of rows) {
    const k = r[key];
    if (k === null) continue;
    const list = m.get(k);
    if (list) list.push(r);
    else m.set(k, [r]);
  }
  return m;
}

/**
 * The mapping CSV's rows indexed by MRN and by accession, for match() as described above. Built from rows
 * that parseMappingCsv validated; in memory, no I/O, nothing thrown.
 */
export class MappingTable {
  readonly rows: readonly MappingRow[];
  private readonly byMrn: Map<string, MappingRow[]>;
  private readonly byAccession: Map<string, MappingRow[]>;

  /** Copies and freezes `rows` (file order kept: the first row of a key wins ties) and indexes them. */
  constructor(rows: MappingRow[]) {
    this.rows = Object.freeze([...rows]);
    this.byMrn = index(this.rows, 'mrn');
    this.byAccession = index(this.rows, 'accession');
  }

  private cohortMatcher: CohortMatcher | undefined;

  /**
   * Every row's MRN and Accession as identifiers of its research patient, for the leak guard's
   * search for other patients in an output (identifiers/cohortMatcher.ts). Built on first use,
   * then kept: a table is replaced, never changed, when the CSV is reloaded.
   */
  cohort(): CohortMatcher {
    return (this.cohortMatcher ??= CohortMatcher.of(this.cohortEntries()));
  }

  /** Every row's MRN and Accession, owned by its research ID (what cohort() is made of). */
  cohortEntries(): CohortEntry[] {
    const out: CohortEntry[] = [];
    for (const row of this.rows) {
      if (row.mrn !== null) out.push({ kind: 'mrn', value: row.mrn, owner: row.researchId });
      if (row.accession !== null) out.push({ kind: 'csv-accession', value: row.accession, owner: row.researchId });
    }
    return out;
  }

  /**
   * The matching row and how it was found, or null. O(1) in the table size (plus the rows of the
   * matched key). `note` is set when the row was chosen among rows that disagree on the day offset.
   */
  match(keys: { patientId: string; accessionNumber: string }): Match | null {
    const pid = isNoInformation(keys.patientId) ? null : trimDicom(keys.patientId);
    const acc = isNoInformation(keys.accessionNumber) ? null : trimDicom(keys.accessionNumber);
    if (pid === null && acc === null) return null;

    const steps: [MatchedBy, MappingRow[] | undefined, 'mrn' | 'accession', string | null][] = [
      ['mrn', pid === null ? undefined : this.byMrn.get(pid), 'accession', acc],
      ['accession', acc === null ? undefined : this.byAccession.get(acc), 'mrn', pid],
      ['mrn-in-accession-column', pid === null ? undefined : this.byAccession.get(pid), 'mrn', acc],
      ['accession-in-mrn-column', acc === null ? undefined : this.byMrn.get(acc), 'accession', pid],
    ];
    for (const [matchedBy, list, other, otherValue] of steps) {
      if (list === undefined) continue;
      const confirmed = otherValue === null ? [] : list.filter((r) => r[other] === otherValue);
      const pool = confirmed.length > 0 ? confirmed : list;
      const row = pool[0]!;
      const note = offsetChoiceNote(pool, confirmed.length > 0 ? null : matchedBy);
      return note ? { row, matchedBy, note } : { row, matchedBy };
    }
    return null;
  }

  /**
   * For an instance match() found no row for: a note when its PatientID or AccessionNumber, with
   * leading zeros, is all digits and equals an MRN or Accession of the CSV without its zeros
   * (`0012345` vs `12345`), i.e. the CSV value looks like Excel dropped its zeros. The instance
   * stays unmatched: the two may be different identifiers.
   */
  unmatchedNote(keys: { patientId: string; accessionNumber: string }): MatchNote | undefined {
    for (const [what, value] of [
      ['PatientID', keys.patientId],
      ['AccessionNumber', keys.accessionNumber],
    ] as const) {
      if (isNoInformation(value)) continue;
      const v = trimDicom(value);
      const stripped = v.replace(/^0+/, '');
      // Excel drops zeros only from what it takes for a number: digits only.
      if (stripped === v || !/^\d+$/.test(stripped)) continue;
      for (const [column, index] of [
        ['MRN', this.byMrn],
        ['Accession', this.byAccession],
      ] as const) {
        const row = index.get(stripped)?.[0];
        if (row === undefined) continue;
        return {
          kind: 'lost-leading-zeros',
          lines: [row.line],
          text: `not matched, but the CSV's ${column} on line ${row.line} looks like this ${what} without its leading zeros (Excel drops them): if it is the same, format that column as Text in Excel, type the zeros again, and run again`,
        };
      }
    }
    return undefined;
  }
}

const STEP_WORDS: Record<MatchedBy, string> = {
  mrn: 'PatientID in the MRN column',
  accession: 'AccessionNumber in the Accession column',
  'mrn-in-accession-column': 'PatientID in the Accession column',
  'accession-in-mrn-column': 'AccessionNumber in the MRN column',
};

/**
 * A note when the rows a match was chosen from (the first of `pool` is used) give different day
 * offsets; `matchedBy` null when they all matched both keys.
 */
function offsetChoiceNote(pool: MappingRow[], matchedBy: MatchedBy | null): MatchNote | undefined {
  if (new Set(pool.map((r) => r.dayOffset)).size < 2) return undefined;
  const offsets = pool.map((r) => `line ${r.line}: ${r.dayOffset} days`).join(', ');
  const how = matchedBy === null ? 'several CSV rows match both keys' : `matched by ${STEP_WORDS[matchedBy]} alone`;
  return {
    kind: 'day-offset-choice',
    lines: pool.map((r) => r.line),
    text: `${how}; those rows give different day offsets (${offsets}): used line ${pool[0]!.line}'s, the first in the file`,
  };
}
