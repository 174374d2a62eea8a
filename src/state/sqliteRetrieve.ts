// The retrieve job tables of the SQLite state (schema v4, migrations.ts): the SQL behind the
// StateStore's retrieve operations. Each method is one transaction; SqliteStateStore delegates.
import type Database from 'better-sqlite3';
import {
  RESUMABLE_JOB_STATES,
  type PlannedStudy,
  type RetrieveHeartbeat,
  type RetrieveJob,
  type RetrieveJobCounts,
  type RetrieveJobSpec,
  type RetrieveJobState,
  type RetrieveRow,
  type RetrieveRowResult,
  type RetrieveRowSpec,
  type RetrieveRowStatus,
  type RetrieveStudy,
  type RetrieveStudyPatch,
  type RetrieveStudyStatus,
} from './retrieveRecords.js';

/** A runner silent this long has died (ms); its job may be taken by another. */
export const DEFAULT_RUNNER_STALE_MS = 30_000;

interface JobRow {
  id: number;
  state: RetrieveJobState;
  pacs: string;
  move_destination: string;
  csv_path: string;
  csv_sha256: string;
  plan_key: string;
  params: string;
  created_at: number;
  updated_at: number;
  runner: string | null;
  heartbeat_at: number | null;
  cancel_requested: number;
  message: string | null;
  report_path: string | null;
}

interface RowRow {
  line: number;
  research_id: string;
  mrn: string | null;
  accession: string | null;
  surgery_date: string;
  status: RetrieveRowStatus;
  matched_by: string | null;
  message: string | null;
}

interface StudyRow {
  study_uid: string;
  line: number;
  study_date: string;
  modalities: string;
  expected: number | null;
  filed: number;
  status: RetrieveStudyStatus;
  attempts: number;
  last_status: number | null;
  completed: number | null;
  failed: number | null;
  warning: number | null;
  message: string | null;
  started_at: number | null;
  finished_at: number | null;
}

function toJob(r: JobRow): RetrieveJob {
  return {
    id: r.id,
    state: r.state,
    pacs: r.pacs,
    moveDestination: r.move_destination,
    csvPath: r.csv_path,
    csvSha256: r.csv_sha256,
    planKey: r.plan_key,
    params: r.params,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    runner: r.runner,
    heartbeatAt: r.heartbeat_at,
    cancelRequested: r.cancel_requested !== 0,
    message: r.message,
    reportPath: r.report_path,
  };
}

function toStudy(r: StudyRow): RetrieveStudy {
  return {
    studyUid: r.study_uid,
    line: r.line,
    studyDate: r.study_date,
    modalities: r.modalities,
    expected: r.expected,
    filed: r.filed,
    status: r.status,
    attempts: r.attempts,
    lastStatus: r.last_status,
    completed: r.completed,
    failed: r.failed,
    warning: r.warning,
    message: r.message,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

const ROW_STATUSES: readonly RetrieveRowStatus[] = [
  'pending',
  'found',
  'not_found',
  'ambiguous',
  'query_incomplete',
  'query_failed',
];
const STUDY_STATUSES: readonly RetrieveStudyStatus[] = [
  'planned',
  'moving',
  'complete',
  'incomplete',
  'failed',
  'already_filed',
];

/** Columns updateRetrieveStudy may set, by patch field. */
const STUDY_PATCH_COLUMNS: Record<keyof RetrieveStudyPatch, string> = {
  status: 'status',
  expected: 'expected',
  filed: 'filed',
  attempts: 'attempts',
  lastStatus: 'last_status',
  completed: 'completed',
  failed: 'failed',
  warning: 'warning',
  message: 'message',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
};

function prepare(db: Database.Database) {
  return {
    jobInsert: db.prepare<[string, string, string, string, string, string, number, number]>(
      `INSERT INTO retrieve_job (pacs, move_destination, csv_path, csv_sha256, plan_key, params, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    jobGet: db.prepare<[number], JobRow>('SELECT * FROM retrieve_job WHERE id = ?'),
    jobsNewest: db.prepare<[number], JobRow>('SELECT * FROM retrieve_job ORDER BY id DESC LIMIT ?'),
    jobUnfinished: db.prepare<[string, string, string, string], JobRow>(
      `SELECT * FROM retrieve_job
        WHERE pacs = ? AND move_destination = ? AND csv_sha256 = ? AND plan_key = ?
          AND state NOT IN ('done', 'cancelled')
        ORDER BY id DESC LIMIT 1`,
    ),
    jobClaim: db.prepare<[string, number, number, number]>(
      `UPDATE retrieve_job SET state = 'running', runner = ?, heartbeat_at = ?, updated_at = ?, message = NULL
        WHERE id = ?`,
    ),
    jobParams: db.prepare<[string, number]>('UPDATE retrieve_job SET params = ? WHERE id = ?'),
    jobHeartbeat: db.prepare<[number, number, string]>(
      'UPDATE retrieve_job SET heartbeat_at = ? WHERE id = ? AND runner = ?',
    ),
    jobRelease: db.prepare<[RetrieveJobState, string | null, number, number, string]>(
      `UPDATE retrieve_job SET state = ?, message = ?, updated_at = ?, runner = NULL, heartbeat_at = NULL
        WHERE id = ? AND runner = ?`,
    ),
    jobReport: db.prepare<[string, number]>('UPDATE retrieve_job SET report_path = ? WHERE id = ?'),
    jobCancelNow: db.prepare<[number, number]>(
      `UPDATE retrieve_job SET state = 'cancelled', cancel_requested = 1, runner = NULL, heartbeat_at = NULL,
              updated_at = ?, message = 'cancelled'
        WHERE id = ?`,
    ),
    jobCancelFlag: db.prepare<[number, number]>(
      'UPDATE retrieve_job SET cancel_requested = 1, updated_at = ? WHERE id = ?',
    ),
    studiesUnmove: db.prepare<[number]>(
      `UPDATE retrieve_study SET status = 'planned' WHERE job_id = ? AND status = 'moving'`,
    ),

    rowInsert: db.prepare<[number, number, string, string | null, string | null, string]>(
      `INSERT INTO retrieve_row (job_id, line, research_id, mrn, accession, surgery_date) VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    rows: db.prepare<[number], RowRow>('SELECT * FROM retrieve_row WHERE job_id = ? ORDER BY line'),
    rowLinks: db.prepare<[number], { line: number; study_uid: string }>(
      `SELECT l.line, l.study_uid FROM retrieve_row_study l JOIN retrieve_study s USING (job_id, study_uid)
        WHERE l.job_id = ? ORDER BY l.line, s.seq`,
    ),
    rowUpdate: db.prepare<[RetrieveRowStatus, string | null, string | null, number, number, number]>(
      `UPDATE retrieve_row SET status = ?, matched_by = ?, message = ?, updated_at = ? WHERE job_id = ? AND line = ?`,
    ),
    rowUnlink: db.prepare<[number, number]>('DELETE FROM retrieve_row_study WHERE job_id = ? AND line = ?'),
    studySeq: db.prepare<[number], { m: number | null }>('SELECT MAX(seq) AS m FROM retrieve_study WHERE job_id = ?'),
    studyInsert: db.prepare<[number, string, number, number, string, string, number | null, number]>(
      `INSERT INTO retrieve_study (job_id, study_uid, seq, line, study_date, modalities, expected, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, study_uid) DO NOTHING`,
    ),
    linkInsert: db.prepare<[number, number, string]>(
      'INSERT OR IGNORE INTO retrieve_row_study (job_id, line, study_uid) VALUES (?, ?, ?)',
    ),
    studies: db.prepare<[number], StudyRow>('SELECT * FROM retrieve_study WHERE job_id = ? ORDER BY seq'),
    studiesIn: db.prepare<[number, RetrieveStudyStatus], StudyRow>(
      'SELECT * FROM retrieve_study WHERE job_id = ? AND status = ? ORDER BY seq',
    ),
    rowCounts: db.prepare<[number], { status: RetrieveRowStatus; n: number }>(
      'SELECT status, COUNT(*) AS n FROM retrieve_row WHERE job_id = ? GROUP BY status',
    ),
    studyCounts: db.prepare<[number], { status: RetrieveStudyStatus; n: number }>(
      'SELECT status, COUNT(*) AS n FROM retrieve_study WHERE job_id = ? GROUP BY status',
    ),
    instanceSums: db.prepare<[number], { expected: number | null; filed: number | null }>(
      'SELECT SUM(expected) AS expected, SUM(filed) AS filed FROM retrieve_study WHERE job_id = ?',
    ),
    filedOfStudy: db.prepare<[string], { n: number }>(
      'SELECT COUNT(*) AS n FROM filed_instance WHERE original_study_uid = ?',
    ),
  };
}

/** The retrieve operations on one connection (see StateStore for what each does). */
export class SqliteRetrieveTables {
  private readonly s: ReturnType<typeof prepare>;

  /**
   * Prepares the statements on `db` (a better-sqlite3 connection migrated to schema v4 or later); throws
   * SqliteError when a table is missing.
   */
  constructor(private readonly db: Database.Database) {
    this.s = prepare(db);
  }

  /** StateStore.filedCountsByStudy: one read transaction. */
  filedCountsByStudy(uids: readonly string[]): Map<string, number> {
    const out = new Map<string, number>();
    this.db.transaction(() => {
      for (const uid of uids) if (!out.has(uid)) out.set(uid, this.s.filedOfStudy.get(uid)!.n);
    })();
    return out;
  }

  /** StateStore.createRetrieveJob: one BEGIN IMMEDIATE transaction; `now` in epoch ms. */
  createJob(spec: RetrieveJobSpec, rows: readonly RetrieveRowSpec[], now: number): RetrieveJob {
    return this.db
      .transaction(() => {
        const id = Number(
          this.s.jobInsert.run(
            spec.pacs,
            spec.moveDestination,
            spec.csvPath,
            spec.csvSha256,
            spec.planKey,
            spec.params,
            now,
            now,
          ).lastInsertRowid,
        );
        for (const r of rows) this.s.rowInsert.run(id, r.line, r.researchId, r.mrn, r.accession, r.surgeryDate);
        return toJob(this.s.jobGet.get(id)!);
      })
      .immediate();
  }

  /** StateStore.retrieveJob. */
  job(id: number): RetrieveJob | undefined {
    const r = this.s.jobGet.get(id);
    return r ? toJob(r) : undefined;
  }

  /** StateStore.retrieveJobs: newest first, at most `limit`. */
  jobs(limit: number): RetrieveJob[] {
    return this.s.jobsNewest.all(limit).map(toJob);
  }

  /** StateStore.unfinishedRetrieveJob. */
  unfinishedJob(
    m: Pick<RetrieveJobSpec, 'pacs' | 'moveDestination' | 'csvSha256' | 'planKey'>,
  ): RetrieveJob | undefined {
    const r = this.s.jobUnfinished.get(m.pacs, m.moveDestination, m.csvSha256, m.planKey);
    return r ? toJob(r) : undefined;
  }

  /** StateStore.claimRetrieveJob: one BEGIN IMMEDIATE transaction; `staleMs` and `now` in ms. */
  claimJob(
    id: number,
    runner: string,
    params: string | undefined,
    staleMs: number,
    now: number,
  ): RetrieveJob | undefined {
    return this.db
      .transaction(() => {
        const r = this.s.jobGet.get(id);
        if (!r || !RESUMABLE_JOB_STATES.includes(r.state) || r.cancel_requested !== 0) return undefined;
        const live = r.runner !== null && r.runner !== runner && (r.heartbeat_at ?? 0) > now - staleMs;
        if (live) return undefined;
        if (params !== undefined) this.s.jobParams.run(params, id);
        this.s.jobClaim.run(runner, now, now, id);
        this.s.studiesUnmove.run(id);
        return toJob(this.s.jobGet.get(id)!);
      })
      .immediate();
  }

  /**
   * StateStore.heartbeatRetrieveJob: one BEGIN IMMEDIATE transaction. A job that no longer exists answers not
   * owned, cancel requested.
   */
  heartbeat(id: number, runner: string, now: number): RetrieveHeartbeat {
    return this.db
      .transaction((): RetrieveHeartbeat => {
        this.s.jobHeartbeat.run(now, id, runner);
        const r = this.s.jobGet.get(id);
        return { owned: r?.runner === runner, cancelRequested: (r?.cancel_requested ?? 1) !== 0 };
      })
      .immediate();
  }

  /**
   * StateStore.releaseRetrieveJob: one BEGIN IMMEDIATE transaction; nothing changes unless `runner` owns the
   * job.
   */
  release(
    id: number,
    runner: string,
    outcome: { state: RetrieveJobState; message?: string | null; reportPath?: string | null },
    now: number,
  ): void {
    this.db
      .transaction(() => {
        const changed = this.s.jobRelease.run(outcome.state, outcome.message ?? null, now, id, runner).changes;
        if (changed > 0 && outcome.reportPath) this.s.jobReport.run(outcome.reportPath, id);
      })
      .immediate();
  }

  /** StateStore.cancelRetrieveJob: one BEGIN IMMEDIATE transaction; `staleMs` and `now` in ms. */
  cancel(id: number, staleMs: number, now: number): RetrieveJob | undefined {
    return this.db
      .transaction(() => {
        const r = this.s.jobGet.get(id);
        if (!r) return undefined;
        if (r.state === 'done' || r.state === 'cancelled') return toJob(r);
        const live = r.runner !== null && (r.heartbeat_at ?? 0) > now - staleMs;
        if (live) this.s.jobCancelFlag.run(now, id);
        else {
          this.s.jobCancelNow.run(now, id);
          this.s.studiesUnmove.run(id);
        }
        return toJob(this.s.jobGet.get(id)!);
      })
      .immediate();
  }

  /** StateStore.retrieveRows: in CSV line order, each with the study UIDs linked to it. */
  rows(jobId: number): RetrieveRow[] {
    const links = new Map<number, string[]>();
    for (const l of this.s.rowLinks.all(jobId)) {
      const list = links.get(l.line);
      if (list) list.push(l.study_uid);
      else links.set(l.line, [l.study_uid]);
    }
    return this.s.rows.all(jobId).map((r) => ({
      line: r.line,
      researchId: r.research_id,
      mrn: r.mrn,
      accession: r.accession,
      surgeryDate: r.surgery_date,
      status: r.status,
      matchedBy: r.matched_by,
      message: r.message,
      studyUids: links.get(r.line) ?? [],
    }));
  }

  /**
   * StateStore.recordRetrieveRow: one BEGIN IMMEDIATE transaction. Throws Error when the job has no row for
   * `line` (nothing is recorded).
   */
  recordRow(jobId: number, line: number, result: RetrieveRowResult, now: number): void {
    this.db
      .transaction(() => {
        const changed = this.s.rowUpdate.run(
          result.status,
          result.matchedBy ?? null,
          result.message ?? null,
          now,
          jobId,
          line,
        ).changes;
        if (changed === 0) throw new Error(`retrieve job ${jobId} has no row for CSV line ${line}`);
        this.s.rowUnlink.run(jobId, line);
        let seq = this.s.studySeq.get(jobId)?.m ?? 0;
        for (const st of result.studies) {
          this.insertStudy(jobId, line, st, ++seq, now);
          this.s.linkInsert.run(jobId, line, st.studyUid);
        }
      })
      .immediate();
  }

  private insertStudy(jobId: number, line: number, st: PlannedStudy, seq: number, now: number): void {
    this.s.studyInsert.run(jobId, st.studyUid, seq, line, st.studyDate, st.modalities, st.expected, now);
  }

  /** StateStore.retrieveStudies: in planning order. */
  studies(jobId: number, status?: RetrieveStudyStatus): RetrieveStudy[] {
    const rows = status === undefined ? this.s.studies.all(jobId) : this.s.studiesIn.all(jobId, status);
    return rows.map(toStudy);
  }

  /** StateStore.updateRetrieveStudy: one UPDATE of the fields present in `patch` (none: nothing runs). */
  updateStudy(jobId: number, studyUid: string, patch: RetrieveStudyPatch, now: number): void {
    const sets: string[] = [];
    const values: (string | number | null)[] = [];
    for (const [field, column] of Object.entries(STUDY_PATCH_COLUMNS) as [keyof RetrieveStudyPatch, string][]) {
      if (!(field in patch)) continue;
      sets.push(`${column} = ?`);
      values.push(patch[field] ?? null);
    }
    if (sets.length === 0) return;
    this.db
      .prepare(`UPDATE retrieve_study SET ${sets.join(', ')}, updated_at = ? WHERE job_id = ? AND study_uid = ?`)
      .run(...values, now, jobId, studyUid);
  }

  /**
   * StateStore.retrieveJobCounts: rows and studies by status (every status present, 0 when none) and the sums
   * of expected and filed instances, in one read transaction.
   */
  counts(jobId: number): RetrieveJobCounts {
    return this.db.transaction(() => {
      const rows = Object.fromEntries(ROW_STATUSES.map((s) => [s, 0])) as Record<RetrieveRowStatus, number>;
      for (const r of this.s.rowCounts.all(jobId)) rows[r.status] = r.n;
      const studies = Object.fromEntries(STUDY_STATUSES.map((s) => [s, 0])) as Record<RetrieveStudyStatus, number>;
      for (const r of this.s.studyCounts.all(jobId)) studies[r.status] = r.n;
      const sums = this.s.instanceSums.get(jobId);
      return { rows, studies, expectedInstances: sums?.expected ?? 0, filedInstances: sums?.filed ?? 0 };
    })();
  }
}
