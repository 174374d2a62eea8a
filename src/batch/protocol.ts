// Messages between the batch main thread and its workers.
import type { CohortEntry, IdentifyingValues } from '../core/identifiers/index.js';
import type { MappingRow, MatchedBy, MatchNote } from '../core/types.js';
import type { PlannedPath } from './pathPlan.js';

export type { FileStatus } from '../audit/auditLog.js';
import type { FileStatus } from '../audit/auditLog.js';

export interface WorkerInit {
  rows: MappingRow[];
  uidSecret: Uint8Array;
  inputDir: string;
  outputDir: string;
  /** Write instances whose Burned In Annotation is YES (--allow-burned-in) instead of holding them. */
  allowBurnedIn: boolean;
  /** Attributes (tags) whose leak guard hits are warnings only (--leak-guard-warn-only). */
  leakGuardWarnOnly: number[];
  /** Tests only: attributes kept whatever the rules say (DeidOptions.testOnlyKeep). */
  testOnlyKeep: number[];
}

export interface JobMessage {
  type: 'job';
  jobId: number;
  /** Relative source path, '/' separated. */
  rel: string;
  /** Its output path below the session folder, when the survey read it and a row matched. */
  planned?: PlannedPath;
  /** The research ID its study belongs to (StateStore.claimStudies), when the survey found one. */
  studyOwner?: string;
}

export interface SessionReply {
  type: 'session';
  reqId: number;
  n?: number;
  error?: string;
}

/** Read these files' identifying values for the survey (survey.ts). */
export interface SurveyRequest {
  type: 'survey';
  reqId: number;
  /** Relative source paths, '/' separated. */
  rels: string[];
}

/**
 * Jobs go to a worker, and results come back, a few per message: each message wakes the other
 * thread, which costs more than the message itself (0.1-0.2 ms on a virtual machine).
 */
export interface JobBatch {
  type: 'jobs';
  jobs: JobMessage[];
}

/**
 * The identifiers of every patient of the run (PathPlan.cohortEntries: the CSV's and the tree's),
 * for the leak guard; sent once to each worker before its first jobs.
 */
export interface CohortMessage {
  type: 'cohort';
  entries: CohortEntry[];
}

export type MainToWorker = JobBatch | SessionReply | SurveyRequest | CohortMessage;

/** The identifying values of a SurveyRequest's files, in its order (null: not DICOM or unreadable). */
export interface SurveyReply {
  type: 'surveyed';
  reqId: number;
  values: (IdentifyingValues | null)[];
}

export interface SessionRequest {
  type: 'session';
  reqId: number;
  researchId: string;
  patientFolder: string | null;
  key: string;
}

export interface JobResult {
  type: 'result';
  jobId: number;
  status: FileStatus;
  matchedBy?: MatchedBy;
  researchId?: string;
  /** Line of the mapping row that matched (to find its notes). */
  rowLine?: number;
  accessionNumber?: string;
  dayOffset?: number;
  sessionName?: string;
  /** The session number, and the study's own session key (linked to it in the state). */
  sessionN?: number;
  studyKey?: string;
  /** Output path relative to the output folder, '/' separated. */
  outRel?: string;
  message?: string;
  /** What the mapping lookup noted (its text is also in `message`). */
  note?: MatchNote;
  /** Written, but its pixels may hold burned-in text: why it is listed for review. */
  review?: string;
  /** Written with a leak guard warning (a warn-only attribute, the patient in the row's Notes). */
  leakGuardWarned?: boolean;
  /** Time the leak guard took on this file, and the whole job (ms of this worker's time). */
  guardMs?: number;
  jobMs?: number;
}

/** Results of finished jobs, in the order they finished (see JobBatch). */
export interface ResultBatch {
  type: 'results';
  results: JobResult[];
}

/** A worker's first message: its modules are loaded, it can take work now. */
export interface WorkerReady {
  type: 'ready';
}

export type WorkerToMain = SessionRequest | ResultBatch | SurveyReply | WorkerReady;

/** What happened to one file (a worker's JobResult without its envelope). */
export type FileOutcome = Omit<JobResult, 'type' | 'jobId'>;
