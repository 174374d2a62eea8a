// The C-FINDs of a retrieve job: a CSV row's study-level queries (by the rules of
// core/retrieve/rowQueries.ts, with a capped answer split by date and asked again), and the
// series- and image-level queries that tell a study's modalities and how many instances it has
// when the study-level answer did not.
//
// Return keys are only those a job needs: StudyInstanceUID, PatientID, AccessionNumber,
// StudyDate, ModalitiesInStudy and NumberOfStudyRelatedInstances at study level; never
// PatientName or PatientBirthDate.
import {
  judgeAnswers,
  rowQueries,
  splitWindow,
  studyDateRange,
  studyDateWindow,
  unsafeMatchingValue,
  type DateWindow,
  type RowQuery,
  type StudyAnswer,
} from '../core/retrieve/rowQueries.js';
import { addDaysIso } from '../core/dates.js';
import { QueryTag, type QueryKey } from '../dimse/queryIdentifier.js';
import { retrieveStatusMeaning } from '../dimse/status.js';
import type { PlannedStudy, RetrieveRowResult, RetrieveRowSpec } from '../state/retrieveRecords.js';
import type { PacsClient } from './pacsClient.js';
import type { RetrieveSettings } from './jobSettings.js';

/** Answers one C-FIND may return before we cancel it and split its date range (a self-imposed cap). */
export const MAX_ANSWERS_PER_QUERY = 5000;

/** The PACS answered "out of resources" (0xA7xx): ask again later. */
export class PacsBusyError extends Error {
  override name = 'PacsBusyError';
}

const STEP_WORDS: Record<RowQuery['step'], string> = {
  mrn: 'MRN as PatientID',
  accession: 'Accession as AccessionNumber',
  'mrn-in-accession-column': 'Accession column as PatientID (swapped columns)',
  'accession-in-mrn-column': 'MRN column as AccessionNumber (swapped columns)',
};

function studyKeys(q: RowQuery, window: DateWindow | null): QueryKey[] {
  return [
    { tag: QueryTag.QueryRetrieveLevel, vr: 'CS', value: 'STUDY' },
    { tag: QueryTag.PatientId, vr: 'LO', value: q.key === 'PatientID' ? q.value : '' },
    { tag: QueryTag.AccessionNumber, vr: 'SH', value: q.key === 'AccessionNumber' ? q.value : '' },
    { tag: QueryTag.StudyInstanceUid, vr: 'UI', value: '' },
    { tag: QueryTag.StudyDate, vr: 'DA', value: studyDateRange(window) },
    { tag: QueryTag.ModalitiesInStudy, vr: 'CS', value: '' },
    { tag: QueryTag.NumberOfStudyRelatedInstances, vr: 'IS', value: '' },
  ];
}

function count(value: string | undefined): number | undefined {
  if (value === undefined || !/^\s*\d+\s*$/.test(value)) return undefined;
  return Number(value);
}

function toStudyAnswer(m: Map<number, string>): StudyAnswer {
  const instances = count(m.get(QueryTag.NumberOfStudyRelatedInstances));
  return {
    studyInstanceUid: m.get(QueryTag.StudyInstanceUid) ?? '',
    patientId: m.get(QueryTag.PatientId) ?? '',
    accessionNumber: m.get(QueryTag.AccessionNumber) ?? '',
    studyDate: m.get(QueryTag.StudyDate) ?? '',
    modalities: (m.get(QueryTag.ModalitiesInStudy) ?? '').split('\\').filter((x) => x !== ''),
    ...(instances !== undefined ? { instances } : {}),
  };
}

/** Throws PacsBusyError for 0xA7xx; returns false for an incomplete answer, true for a complete one. */
function judgeStatus(status: number, unreadable: number): { complete: boolean; refused?: string } {
  const m = retrieveStatusMeaning(status);
  if (m.category === 'busy') throw new PacsBusyError(`the PACS answered a query with ${m.text}`);
  if (m.category === 'success') return { complete: unreadable === 0 };
  if (m.category === 'cancel' || m.category === 'warning') return { complete: false };
  return { complete: false, refused: m.text };
}

/** What one row query's C-FINDs found, over all date splits. */
interface Found {
  answers: StudyAnswer[];
  complete: boolean;
  /** Set when the PACS refused the query (a failure status), in words. */
  refused?: string;
  splits: number;
}

/**
 * Study-level C-FIND for `q` in `window`; an answer the PACS cut short (0xFE00 after a result cap,
 * or more than MAX_ANSWERS_PER_QUERY) is asked again in two halves of the window, down to single
 * days. Throws PacsError, PacsBusyError.
 */
async function findStudies(pacs: PacsClient, q: RowQuery, window: DateWindow | null, latest: string): Promise<Found> {
  const answers: StudyAnswer[] = [];
  const r = await pacs.find(studyKeys(q, window), (m) => answers.push(toStudyAnswer(m)), MAX_ANSWERS_PER_QUERY);
  const verdict = judgeStatus(r.status, r.unreadable);
  if (verdict.refused) return { answers, complete: false, refused: verdict.refused, splits: 0 };
  if (verdict.complete) return { answers, complete: true, splits: 0 };
  const halves = splitWindow(window, latest);
  if (!halves) return { answers, complete: false, splits: 0 };
  const a = await findStudies(pacs, q, halves[0], latest);
  const b = await findStudies(pacs, q, halves[1], latest);
  return {
    answers: [...answers, ...a.answers, ...b.answers],
    complete: a.complete && b.complete,
    ...(a.refused || b.refused ? { refused: a.refused ?? b.refused } : {}),
    splits: 1 + a.splits + b.splits,
  };
}

/** One series of a study, as the PACS describes it. */
export interface SeriesAnswer {
  seriesInstanceUid: string;
  modality: string;
  /** NumberOfSeriesRelatedInstances, when given. */
  instances?: number;
}

/** The series of a study (SERIES level); null when the PACS's answer is incomplete. Throws PacsError, PacsBusyError. */
export async function studySeries(pacs: PacsClient, studyUid: string): Promise<SeriesAnswer[] | null> {
  const out: SeriesAnswer[] = [];
  const r = await pacs.find(
    [
      { tag: QueryTag.QueryRetrieveLevel, vr: 'CS', value: 'SERIES' },
      { tag: QueryTag.StudyInstanceUid, vr: 'UI', value: studyUid },
      { tag: QueryTag.SeriesInstanceUid, vr: 'UI', value: '' },
      { tag: QueryTag.Modality, vr: 'CS', value: '' },
      { tag: QueryTag.NumberOfSeriesRelatedInstances, vr: 'IS', value: '' },
    ],
    (m) => {
      const instances = count(m.get(QueryTag.NumberOfSeriesRelatedInstances));
      out.push({
        seriesInstanceUid: m.get(QueryTag.SeriesInstanceUid) ?? '',
        modality: m.get(QueryTag.Modality) ?? '',
        ...(instances !== undefined ? { instances } : {}),
      });
    },
    MAX_ANSWERS_PER_QUERY,
  );
  return judgeStatus(r.status, r.unreadable).complete ? out : null;
}

/**
 * How many instances the PACS holds for a study: the sum of its series' counts, each series
 * without one counted at IMAGE level (distinct SOP Instance UIDs). Null when an answer was
 * incomplete. Throws PacsError, PacsBusyError.
 */
export async function countStudyInstances(pacs: PacsClient, studyUid: string): Promise<number | null> {
  const series = await studySeries(pacs, studyUid);
  if (series === null || series.some((s) => s.seriesInstanceUid === '')) return null;
  let total = 0;
  for (const s of series) {
    if (s.instances !== undefined) {
      total += s.instances;
      continue;
    }
    const sops = new Set<string>();
    const r = await pacs.find(
      [
        { tag: QueryTag.QueryRetrieveLevel, vr: 'CS', value: 'IMAGE' },
        { tag: QueryTag.StudyInstanceUid, vr: 'UI', value: studyUid },
        { tag: QueryTag.SeriesInstanceUid, vr: 'UI', value: s.seriesInstanceUid },
        { tag: QueryTag.SopInstanceUid, vr: 'UI', value: '' },
      ],
      (m) => sops.add(m.get(QueryTag.SopInstanceUid) ?? ''),
      MAX_ANSWERS_PER_QUERY * 10,
    );
    if (!judgeStatus(r.status, r.unreadable).complete || sops.has('')) return null;
    total += sops.size;
  }
  return total;
}

/**
 * Queries one CSV row (RetrieveRowSpec) by the lookup steps, stopping at the first step that
 * takes a study or finds the row ambiguous, and returns its outcome for the state. `today` is
 * YYYY-MM-DD (the latest day an open window is split at is a year later). Throws PacsError and
 * PacsBusyError (the caller waits and asks again); a refused query is an outcome (query_failed).
 */
export async function queryRow(
  pacs: PacsClient,
  row: RetrieveRowSpec,
  settings: RetrieveSettings,
  today: string,
): Promise<RetrieveRowResult> {
  const window = studyDateWindow(row.surgeryDate, settings.daysBefore, settings.daysAfter);
  const latest = addDaysIso(today, 365);
  const steps = rowQueries(row);
  if (steps.length === 0) return { status: 'query_failed', message: 'no MRN and no accession to query', studies: [] };
  const notes: string[] = [];
  let incomplete = false;
  let refused: string | undefined;
  for (const q of steps) {
    const unsafe = unsafeMatchingValue(q.value);
    if (unsafe) {
      notes.push(`${STEP_WORDS[q.step]}: not queried, the value ${unsafe}`);
      continue;
    }
    const found = await findStudies(pacs, q, window, latest);
    if (found.refused) {
      refused = found.refused;
      notes.push(`${STEP_WORDS[q.step]}: the PACS refused the query (${found.refused})`);
      continue;
    }
    if (!found.complete) {
      incomplete = true;
      notes.push(`${STEP_WORDS[q.step]}: the PACS cut its answers short even for a single day`);
    } else if (found.splits > 0) {
      notes.push(`${STEP_WORDS[q.step]}: the PACS capped its answers; asked again in ${found.splits + 1} date ranges`);
    }
    const j = judgeAnswers(q, found.answers, window, settings.modalities);
    if (j.ambiguous) {
      notes.push(`${STEP_WORDS[q.step]}: answers belong to ${j.patients} different patients, so nothing is moved`);
      return { status: 'ambiguous', matchedBy: q.step, message: notes.join('; '), studies: [] };
    }
    const dropped: string[] = [];
    if (j.otherPatient > 0) dropped.push(`${j.otherPatient} of another PatientID than the MRN`);
    if (j.outsideWindow > 0) dropped.push(`${j.outsideWindow} outside the date window`);
    if (j.otherModality > 0) dropped.push(`${j.otherModality} without the wanted modalities`);
    if (j.inexact > 0) dropped.push(`${j.inexact} not matching the value exactly`);
    if (j.noStudyUid > 0) dropped.push(`${j.noStudyUid} without a StudyInstanceUID`);
    if (dropped.length > 0) notes.push(`${STEP_WORDS[q.step]}: answers not taken: ${dropped.join(', ')}`);
    if (j.lostLeadingZeros) {
      notes.push(
        `the PACS has this study under the MRN with leading zeros: the CSV's MRN looks like Excel dropped them (format the column as Text, type the zeros again)`,
      );
    }
    let taken = j.taken;
    if (settings.modalities.length > 0) taken = await withSeriesModalities(pacs, taken, settings.modalities, notes);
    if (taken.length === 0) continue;
    const studies: PlannedStudy[] = taken.map((a) => ({
      studyUid: a.studyInstanceUid,
      studyDate: a.studyDate,
      modalities: a.modalities.join('\\'),
      expected: a.instances ?? null,
    }));
    return {
      status: incomplete ? 'query_incomplete' : 'found',
      matchedBy: q.step,
      message: notes.length > 0 ? notes.join('; ') : null,
      studies,
    };
  }
  if (incomplete) return { status: 'query_incomplete', message: notes.join('; '), studies: [] };
  if (refused !== undefined) return { status: 'query_failed', message: notes.join('; '), studies: [] };
  return { status: 'not_found', message: notes.length > 0 ? notes.join('; ') : null, studies: [] };
}

/**
 * The studies whose ModalitiesInStudy the PACS did not give (dcmqrscp leaves it empty) get their
 * modalities from their series; those without a wanted one are dropped (and noted).
 */
async function withSeriesModalities(
  pacs: PacsClient,
  taken: StudyAnswer[],
  wanted: readonly string[],
  notes: string[],
): Promise<StudyAnswer[]> {
  const want = new Set(wanted.map((m) => m.toUpperCase()));
  const out: StudyAnswer[] = [];
  let dropped = 0;
  let unknown = 0;
  for (const a of taken) {
    if (a.modalities.length > 0) {
      out.push(a);
      continue;
    }
    const series = await studySeries(pacs, a.studyInstanceUid);
    const modalities = [...new Set((series ?? []).map((s) => s.modality).filter((m) => m !== ''))];
    if (series === null || modalities.length === 0) {
      unknown++;
      out.push(a); // cannot tell: taken rather than silently left behind
      continue;
    }
    if (modalities.some((m) => want.has(m.toUpperCase()))) out.push({ ...a, modalities });
    else dropped++;
  }
  if (dropped > 0) notes.push(`${dropped} without the wanted modalities (by their series)`);
  if (unknown > 0) notes.push(`${unknown} whose modalities the PACS did not tell, taken`);
  return out;
}
