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
// is preferred (so its Surgery_Date/Notes apply), else the first such row in file order.

import type { Match, MappingRow, MatchedBy } from '../types.js';
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

export class MappingTable {
  readonly rows: readonly MappingRow[];
  private readonly byMrn: Map<string, MappingRow[]>;
  private readonly byAccession: Map<string, MappingRow[]>;

  constructor(rows: MappingRow[]) {
    this.rows = Object.freeze([...rows]);
    this.byMrn = index(this.rows, 'mrn');
    this.byAccession = index(this.rows, 'accession');
  }

  /** The matching row and how it was found, or null. O(1) in the table size. */
  match(keys: { patientId: string; accessionNumber: string }): Match | null {
    const pid = isNoInformation(keys.patientId) ? null : trimDicom(keys.patientId);
    const acc = isNoInformation(keys.accessionNumber) ? null : trimDicom(keys.accessionNumber);
    if (pid === null && acc === null) return null;

    const pick = (list: MappingRow[] | undefined, other: 'mrn' | 'accession', otherValue: string | null) =>
      list === undefined ? undefined : (list.find((r) => otherValue !== null && r[other] === otherValue) ?? list[0]);

    const steps: [MatchedBy, () => MappingRow | undefined][] = [
      ['mrn', () => (pid === null ? undefined : pick(this.byMrn.get(pid), 'accession', acc))],
      ['accession', () => (acc === null ? undefined : pick(this.byAccession.get(acc), 'mrn', pid))],
      ['mrn-in-accession-column', () => (pid === null ? undefined : pick(this.byAccession.get(pid), 'mrn', acc))],
      ['accession-in-mrn-column', () => (acc === null ? undefined : pick(this.byMrn.get(acc), 'accession', pid))],
    ];
    for (const [matchedBy, find] of steps) {
      const row = find();
      if (row) return { row, matchedBy };
    }
    return null;
  }
}
