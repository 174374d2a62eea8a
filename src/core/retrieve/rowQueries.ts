// What to ask a PACS for one mapping CSV row, and which of its answers to take (issue 17).
//
// A row is queried at study level, one key at a time, in the lookup order of the CSV rules
// (mappingTable.ts), stopping at the first step that takes a study:
//   1. PatientID       = the MRN column        ('mrn')
//   2. AccessionNumber = the Accession column  ('accession')
//   3. PatientID       = the Accession column  ('mrn-in-accession-column': swapped columns)
//   4. AccessionNumber = the MRN column        ('accession-in-mrn-column')
// In steps 3 and 4 the columns are read swapped: the Accession column is the MRN.
//
// Answers are compared as exact strings, padding aside (a PACS may match loosely: implicit
// wildcards, case, leading zeros), and taken only when:
//   - the queried key equals the value exactly;
//   - when the row has an MRN (in the columns' reading of the step), the answer's PatientID is
//     that MRN: a shared accession never pulls another patient's study;
//   - when the row has no MRN, the answers of the step belong to one patient: answers spanning
//     several PatientIDs make the row `ambiguous`, and nothing of it is taken;
//   - the StudyDate lies inside the row's window, when there is one;
//   - one of the study's modalities is wanted, when a list is given (an answer with no
//     ModalitiesInStudy is kept, for the caller to check at series level).
import type { MappingRow, MatchedBy } from '../types.js';
import { addDaysIso } from '../dates.js';

/** One C-FIND of a row: the key to match and the rules its answers must pass. */
export interface RowQuery {
  step: MatchedBy;
  /** The matching key. */
  key: 'PatientID' | 'AccessionNumber';
  /** Its value, exactly as in the CSV. */
  value: string;
  /** The PatientID every taken answer must have (the MRN in this step's reading), or null. */
  patientId: string | null;
}

/** A study as a PACS described it at study level (values without padding, never trimmed further). */
export interface StudyAnswer {
  studyInstanceUid: string;
  patientId: string;
  accessionNumber: string;
  /** StudyDate, YYYYMMDD ('' when the PACS gave none). */
  studyDate: string;
  /** ModalitiesInStudy (empty when the PACS gave none). */
  modalities: string[];
  /** NumberOfStudyRelatedInstances, when the PACS gave a valid one. */
  instances?: number;
}

/** The StudyDate range of a row, as YYYY-MM-DD days, inclusive; null ends are open. */
export interface DateWindow {
  from: string | null;
  to: string | null;
}

/**
 * The queries of `row`, in lookup order. A step whose value is missing (an empty or "no
 * information" cell) is left out; so is a swapped step that would repeat an earlier query.
 */
export function rowQueries(row: Pick<MappingRow, 'mrn' | 'accession'>): RowQuery[] {
  const { mrn, accession } = row;
  const out: RowQuery[] = [];
  if (mrn !== null) out.push({ step: 'mrn', key: 'PatientID', value: mrn, patientId: mrn });
  if (accession !== null) out.push({ step: 'accession', key: 'AccessionNumber', value: accession, patientId: mrn });
  if (accession !== null && accession !== mrn) {
    out.push({ step: 'mrn-in-accession-column', key: 'PatientID', value: accession, patientId: accession });
  }
  if (mrn !== null && mrn !== accession) {
    out.push({ step: 'accession-in-mrn-column', key: 'AccessionNumber', value: mrn, patientId: accession });
  }
  return out;
}

/**
 * Why `value` cannot be sent as a matching key, or null when it can: C-FIND has no escape, so
 * `*` and `?` would be wildcards (PS3.4 C.2.2.2.4) and `\` would make a list of values (PS3.4
 * C.2.2.2.1): the PACS would answer for other identifiers than the researcher's.
 */
export function unsafeMatchingValue(value: string): string | null {
  if (/[*?]/.test(value)) return 'contains * or ?, which a PACS reads as wildcards';
  if (value.includes('\\')) return 'contains a backslash, which a PACS reads as a list of values';
  if (/[\x00-\x1f]/.test(value)) return 'contains a control character';
  return null;
}

/**
 * The StudyDate window of a row from its Surgery_Date (YYYY-MM-DD): `daysBefore` days before to
 * `daysAfter` days after, inclusive. A side that is not given stays open; null when neither is.
 * Throws RangeError on a bad date or a negative number of days.
 */
export function studyDateWindow(surgeryDate: string, daysBefore?: number, daysAfter?: number): DateWindow | null {
  if (daysBefore === undefined && daysAfter === undefined) return null;
  for (const d of [daysBefore, daysAfter]) {
    if (d !== undefined && (!Number.isInteger(d) || d < 0))
      throw new RangeError(`${d} is not a whole number of days >= 0`);
  }
  return {
    from: daysBefore === undefined ? null : addDaysIso(surgeryDate, -daysBefore),
    to: daysAfter === undefined ? null : addDaysIso(surgeryDate, daysAfter),
  };
}

/** A YYYY-MM-DD day as a DA value (YYYYMMDD). */
export function toDA(iso: string): string {
  return iso.replace(/-/g, '');
}

/**
 * The window as a StudyDate matching value (PS3.4 C.2.2.2.5): `from-to`, `from-`, `-to`; ''
 * (universal matching: a return key) when there is no window or both ends are open.
 */
export function studyDateRange(window: DateWindow | null): string {
  if (!window || (window.from === null && window.to === null)) return '';
  if (window.from !== null && window.from === window.to) return toDA(window.from);
  return `${window.from === null ? '' : toDA(window.from)}-${window.to === null ? '' : toDA(window.to)}`;
}

/** Earliest and latest day a split may use when a window side is open. */
export const SPLIT_EARLIEST = '1900-01-01';

/**
 * Halves a window whose answers were cut short (a result cap), for two queries whose answers
 * together are the window's: [from, mid] and [mid + 1, to]. Open ends are closed with
 * SPLIT_EARLIEST and `today`. Null when the window is a single day (it cannot be split; the
 * answer stays incomplete).
 */
export function splitWindow(window: DateWindow | null, today: string): [DateWindow, DateWindow] | null {
  const from = window?.from ?? SPLIT_EARLIEST;
  let to = window?.to ?? today;
  if (to < from) to = from;
  if (from === to) return null;
  const days = Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000);
  const mid = addDaysIso(from, Math.floor(days / 2));
  return [
    { from, to: mid },
    { from: addDaysIso(mid, 1), to },
  ];
}

/** What the rules made of one query's answers. */
export interface JudgedAnswers {
  /** The studies to take, each once (by StudyInstanceUID), in answer order. */
  taken: StudyAnswer[];
  /** Answers whose queried key was not the value exactly (a PACS's loose matching). */
  inexact: number;
  /** Answers of another PatientID than the row's MRN. */
  otherPatient: number;
  /**
   * One of those PatientIDs is the row's MRN with leading zeros (`0012345` for `12345`): the CSV
   * value looks like Excel dropped its zeros. Such a study is still not taken.
   */
  lostLeadingZeros: boolean;
  /** Answers outside the date window (or without a StudyDate while there is a window). */
  outsideWindow: number;
  /** Answers with none of the wanted modalities. */
  otherModality: number;
  /** Answers without a StudyInstanceUID (unusable). */
  noStudyUid: number;
  /** True when the row has no MRN and the answers span several patients: nothing is taken. */
  ambiguous: boolean;
  /** PatientIDs among the exact answers (for the ambiguity message: how many, never which). */
  patients: number;
}

/**
 * Applies the rules of the file header to the answers of `query`. `modalities`: wanted
 * modalities (upper case), empty for all.
 */
export function judgeAnswers(
  query: RowQuery,
  answers: readonly StudyAnswer[],
  window: DateWindow | null = null,
  modalities: readonly string[] = [],
): JudgedAnswers {
  const j: JudgedAnswers = {
    taken: [],
    inexact: 0,
    otherPatient: 0,
    lostLeadingZeros: false,
    outsideWindow: 0,
    otherModality: 0,
    noStudyUid: 0,
    ambiguous: false,
    patients: 0,
  };
  const exact = answers.filter((a) => {
    const v = query.key === 'PatientID' ? a.patientId : a.accessionNumber;
    if (v !== query.value) j.inexact++;
    return v === query.value;
  });
  j.patients = new Set(exact.map((a) => a.patientId)).size;
  let pool = exact;
  if (query.patientId !== null) {
    const mrn = query.patientId;
    pool = exact.filter((a) => a.patientId === mrn);
    j.otherPatient = exact.length - pool.length;
    j.lostLeadingZeros = exact.some((a) => /^0+\d+$/.test(a.patientId) && a.patientId.replace(/^0+/, '') === mrn);
  } else if (j.patients > 1) {
    j.ambiguous = true;
    return j;
  }
  const seen = new Set<string>();
  const wanted = new Set(modalities.map((m) => m.toUpperCase()));
  for (const a of pool) {
    if (a.studyInstanceUid === '') {
      j.noStudyUid++;
      continue;
    }
    if (window && !inWindow(a.studyDate, window)) {
      j.outsideWindow++;
      continue;
    }
    if (wanted.size > 0 && a.modalities.length > 0 && !a.modalities.some((m) => wanted.has(m.toUpperCase()))) {
      j.otherModality++;
      continue;
    }
    if (seen.has(a.studyInstanceUid)) continue;
    seen.add(a.studyInstanceUid);
    j.taken.push(a);
  }
  return j;
}

/** True when the DA `studyDate` (YYYYMMDD) lies in `window`; false when it is not a date. */
export function inWindow(studyDate: string, window: DateWindow): boolean {
  if (!/^\d{8}$/.test(studyDate)) return false;
  if (window.from !== null && studyDate < toDA(window.from)) return false;
  if (window.to !== null && studyDate > toDA(window.to)) return false;
  return true;
}
