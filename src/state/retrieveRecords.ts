// The records of retrieve jobs (issue 17: pull a cohort from a PACS by the mapping CSV), as the
// StateStore keeps them: the job, each CSV row's query outcome, and each study's move. They live
// in the state so that a rerun or `retrieve resume` after Ctrl-C, a crash or a closed window
// continues where the job stopped. Key material: rows hold MRNs and accession numbers, studies
// their original Study Instance UIDs.
//
// Times are epoch milliseconds.

/**
 * A job's life: pending (created) -> running -> done | paused (interrupted: Ctrl-C, the PACS
 * unreachable, resumable) | failed (stopped by a problem someone must fix, e.g. the PACS does not
 * know our AE title; resumable once fixed) | cancelled (for good).
 */
export type RetrieveJobState = 'pending' | 'running' | 'paused' | 'done' | 'failed' | 'cancelled';

/** States a job can be resumed from (claimRetrieveJob). */
export const RESUMABLE_JOB_STATES: readonly RetrieveJobState[] = ['pending', 'running', 'paused', 'failed'];

/**
 * A CSV row's query: pending -> found | not_found | ambiguous (an accession-only row whose answers
 * span several patients: nothing moved) | query_incomplete (the PACS cut its answers short and
 * the date range could not be split further) | query_failed (the PACS refused the query, or a
 * value cannot be queried).
 */
export type RetrieveRowStatus = 'pending' | 'found' | 'not_found' | 'ambiguous' | 'query_incomplete' | 'query_failed';

/**
 * A study's move: planned -> moving -> complete (every expected instance filed) | incomplete
 * (fewer filed than expected after the bounded retries) | failed (the PACS refused the move) |
 * already_filed (filed before this job moved it: by a push, a batch run or an earlier job; not
 * moved again).
 */
export type RetrieveStudyStatus = 'planned' | 'moving' | 'complete' | 'incomplete' | 'failed' | 'already_filed';

/** What a job is: where from, by which CSV, with which settings. */
export interface RetrieveJobSpec {
  /** The PACS, `AET@host:port`. */
  pacs: string;
  /** The AE title the PACS sends to (the node's). */
  moveDestination: string;
  /** The mapping CSV's path and the SHA-256 (hex) of its bytes when the job was made. */
  csvPath: string;
  csvSha256: string;
  /**
   * What decides which studies a job takes (date window, modalities), as a canonical string: a
   * rerun with the same CSV, PACS and plan key continues the same job.
   */
  planKey: string;
  /** The job's settings (JSON: concurrency, time window, timers...); may change on resume. */
  params: string;
}

export interface RetrieveJob extends RetrieveJobSpec {
  id: number;
  state: RetrieveJobState;
  createdAt: number;
  updatedAt: number;
  /** Who runs it now (a process or node label), or null. */
  runner: string | null;
  /** When the runner last showed it is alive. */
  heartbeatAt: number | null;
  /** `retrieve cancel` asked the runner to stop. */
  cancelRequested: boolean;
  /** Why it is paused, failed or done (log-safe: no identifier). */
  message: string | null;
  /** The last report written for it. */
  reportPath: string | null;
}

/** One mapping CSV row as the job queries it. */
export interface RetrieveRowSpec {
  line: number;
  researchId: string;
  mrn: string | null;
  accession: string | null;
  /** Surgery_Date, YYYY-MM-DD. */
  surgeryDate: string;
}

export interface RetrieveRow extends RetrieveRowSpec {
  status: RetrieveRowStatus;
  /** The lookup step whose query took the studies (MatchedBy), or null. */
  matchedBy: string | null;
  /** Why, in words (may name CSV lines and counts; never a value). */
  message: string | null;
  /** StudyInstanceUIDs the row took (a study may be taken by several rows). */
  studyUids: string[];
}

/** A study a row's query took. */
export interface PlannedStudy {
  studyUid: string;
  /** StudyDate (YYYYMMDD, '' when none). */
  studyDate: string;
  /** ModalitiesInStudy joined by '\' ('' when the PACS gave none). */
  modalities: string;
  /** Instances the PACS holds (NumberOfStudyRelatedInstances), when it said. */
  expected: number | null;
}

export interface RetrieveStudy extends PlannedStudy {
  /** The CSV line of the first row that took it. */
  line: number;
  status: RetrieveStudyStatus;
  /** Instances of the study filed at the node when last counted. */
  filed: number;
  /** C-MOVE requests sent for it. */
  attempts: number;
  /** Status of the last C-MOVE-RSP, if any. */
  lastStatus: number | null;
  /** Sub-operation counts of the last move's final response. */
  completed: number | null;
  failed: number | null;
  warning: number | null;
  /** Why it is not complete, or a note (log-safe). */
  message: string | null;
  startedAt: number | null;
  finishedAt: number | null;
}

/** A change to a study's record (fields not given stay as they are). */
export type RetrieveStudyPatch = Partial<
  Pick<
    RetrieveStudy,
    | 'status'
    | 'expected'
    | 'filed'
    | 'attempts'
    | 'lastStatus'
    | 'completed'
    | 'failed'
    | 'warning'
    | 'message'
    | 'startedAt'
    | 'finishedAt'
  >
>;

/** The result of one row's queries. */
export interface RetrieveRowResult {
  status: Exclude<RetrieveRowStatus, 'pending'>;
  matchedBy?: string | null;
  message?: string | null;
  studies: readonly PlannedStudy[];
}

/** A job's progress, counted. */
export interface RetrieveJobCounts {
  rows: Record<RetrieveRowStatus, number>;
  studies: Record<RetrieveStudyStatus, number>;
  /** Sums over the job's studies (expected: of those with a known count). */
  expectedInstances: number;
  filedInstances: number;
}

/** What heartbeatRetrieveJob tells the runner. */
export interface RetrieveHeartbeat {
  /** False when another runner took the job (this one went silent too long): stop at once. */
  owned: boolean;
  cancelRequested: boolean;
}
