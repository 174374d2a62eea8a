// The report of a retrieve job: a CSV with one line per mapping CSV row (studies found, moved,
// already filed, instances expected and filed, what failed and why) and a CSV with one line per
// study, written beside the audit log. Both name MRNs, accession numbers and original Study
// Instance UIDs: key material, outside the output tree. The summary for the screen and the
// logs says only counts and CSV line numbers.
import { openSync, closeSync, writeSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { csvField } from '../audit/auditLog.js';
import { statusHex } from '../dimse/status.js';
import type { StateStore } from '../state/stateStore.js';
import type { RetrieveJob, RetrieveRow, RetrieveStudy } from '../state/retrieveRecords.js';
import { mkdirRecursiveSync } from '../io/durableWrite.js';

export const ROW_REPORT_HEADER = [
  'line',
  'mrn',
  'accession',
  'research_id',
  'status',
  'matched_by',
  'studies_found',
  'studies_moved',
  'studies_already_filed',
  'studies_incomplete',
  'studies_failed',
  'studies_pending',
  'instances_expected',
  'instances_filed',
  'message',
];

export const STUDY_REPORT_HEADER = [
  'line',
  'research_id',
  'study_instance_uid',
  'study_date',
  'modalities',
  'status',
  'instances_expected',
  'instances_filed',
  'moves',
  'last_status',
  'message',
];

function stamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}_${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

function writeCsv(file: string, header: string[], lines: string[][]): void {
  const fd = openSync(file, 'wx', 0o600);
  try {
    const text = '\uFEFF' + [header, ...lines].map((l) => l.map(csvField).join(',')).join('\r\n') + '\r\n';
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** One row's line of the report. */
function rowLine(row: RetrieveRow, byUid: Map<string, RetrieveStudy>): string[] {
  const studies = row.studyUids.map((u) => byUid.get(u)).filter((s): s is RetrieveStudy => s !== undefined);
  const n = (st: RetrieveStudy['status']): number => studies.filter((s) => s.status === st).length;
  const expectedKnown = studies.every((s) => s.expected !== null);
  const problems = studies
    .filter((s) => s.status === 'incomplete' || s.status === 'failed')
    .map((s) => `study ${s.studyUid}: ${s.message ?? s.status}`);
  return [
    String(row.line),
    row.mrn ?? '',
    row.accession ?? '',
    row.researchId,
    row.status,
    row.matchedBy ?? '',
    String(studies.length),
    String(n('complete')),
    String(n('already_filed')),
    String(n('incomplete')),
    String(n('failed')),
    String(n('planned') + n('moving')),
    expectedKnown ? String(studies.reduce((t, s) => t + (s.expected ?? 0), 0)) : '',
    String(studies.reduce((t, s) => t + s.filed, 0)),
    [row.message ?? '', ...problems].filter((x) => x !== '').join('; '),
  ];
}

/**
 * Writes the job's two report CSVs into `dir` (created, mode 0700; files 0600, made durable)
 * and returns the row report's path. Names: `retrieve_<job>_<YYYYMMDD_HHMMSS>.csv` and the same
 * with `_studies`. Throws the fs error.
 */
export async function writeRetrieveReport(
  state: StateStore,
  job: RetrieveJob,
  dir: string,
  now = new Date(),
): Promise<string> {
  const rows = await state.retrieveRows(job.id);
  const studies = await state.retrieveStudies(job.id);
  const byUid = new Map(studies.map((s) => [s.studyUid, s]));
  const researchOf = new Map(rows.map((r) => [r.line, r.researchId]));
  mkdirRecursiveSync(dir, 0o700);
  let base = `retrieve_${job.id}_${stamp(now)}`;
  for (let i = 2; ; i++) {
    try {
      writeCsv(
        join(dir, `${base}.csv`),
        ROW_REPORT_HEADER,
        rows.map((r) => rowLine(r, byUid)),
      );
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      base = `retrieve_${job.id}_${stamp(now)}_${i}`;
    }
  }
  writeCsv(
    join(dir, `${base}_studies.csv`),
    STUDY_REPORT_HEADER,
    studies.map((s) => [
      String(s.line),
      researchOf.get(s.line) ?? '',
      s.studyUid,
      s.studyDate,
      s.modalities,
      s.status,
      s.expected === null ? '' : String(s.expected),
      String(s.filed),
      String(s.attempts),
      s.lastStatus === null ? '' : statusHex(s.lastStatus),
      s.message ?? '',
    ]),
  );
  return join(dir, `${base}.csv`);
}

/** Lines for the screen: counts, CSV line numbers, the job's state; no identifier. */
export async function retrieveSummary(state: StateStore, job: RetrieveJob): Promise<string[]> {
  const c = await state.retrieveJobCounts(job.id);
  const rows = await state.retrieveRows(job.id);
  const studies = await state.retrieveStudies(job.id);
  const lines = (pred: (r: RetrieveRow) => boolean): string => {
    const l = rows.filter(pred).map((r) => r.line);
    return l.length > 20 ? `${l.slice(0, 20).join(', ')} and ${l.length - 20} more` : l.join(', ');
  };
  const studyLines = (st: RetrieveStudy['status']): string =>
    [...new Set(studies.filter((s) => s.status === st).map((s) => s.line))].join(', ');
  const out = [
    `retrieve job ${job.id} from ${job.pacs} to ${job.moveDestination}: ${job.state}${job.message ? ` (${job.message})` : ''}`,
    `  rows: ${rows.length} (${c.rows.found} found, ${c.rows.not_found} not found, ${c.rows.ambiguous} ambiguous, ${c.rows.query_incomplete} incomplete answers, ${c.rows.query_failed} query failed, ${c.rows.pending} not queried yet)`,
    `  studies: ${studies.length} (${c.studies.complete} moved, ${c.studies.already_filed} already filed, ${c.studies.incomplete} incomplete, ${c.studies.failed} failed, ${c.studies.planned + c.studies.moving} to do)`,
    `  instances: ${c.filedInstances} filed of ${c.expectedInstances} the PACS holds${studies.some((s) => s.expected === null) ? ' (not counted for every study yet)' : ''}`,
  ];
  for (const [what, l] of [
    ['not found', lines((r) => r.status === 'not_found')],
    ['ambiguous (not moved)', lines((r) => r.status === 'ambiguous')],
    ['query failed', lines((r) => r.status === 'query_failed')],
    ['answers cut short', lines((r) => r.status === 'query_incomplete')],
    ['with incomplete studies', studyLines('incomplete')],
    ['with failed studies', studyLines('failed')],
  ] as const) {
    if (l !== '') out.push(`  CSV lines ${what}: ${l}`);
  }
  return out;
}
