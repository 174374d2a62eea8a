// What the HTTP side needs from the node, as one interface the node passes in (src/node/nodeApi.ts
// implements it for DeidNode). The HTTP side never reaches into the node's components: it reads
// the node's status (the status contract, src/status.ts) and calls these operations.
//
// Everything here is free of original identifiers except what `quarantine({ identifiers: true })`
// returns, which only the authenticated quarantine view asks for.
import type { NodeStatus } from '../node/nodeStatus.js';
import type { RetrieveProgress } from '../retrieve/retrieveRun.js';

/** Who the node is and how it is set up, without secrets or key material paths' contents. */
export interface NodeIdentity {
  aeTitle: string;
  /** dicom-deid's version (package.json). */
  version: string;
  pid: number;
  hostname: string;
  /** ISO 8601. */
  startedAt: string;
  /** Settings a person checks (ports, limits, destinations' addresses); never the access token. */
  config: Record<string, unknown>;
}

/** Room on the disk of one folder the node writes. */
export interface DiskRoom {
  /** 'spool', 'output', 'state', 'quarantine'. */
  name: string;
  path: string;
  freeBytes: number;
  totalBytes: number;
  /** The node's lower bound for this folder to count as having room (readiness). */
  minFreeBytes: number;
  /** The folder cannot be written (read-only file system, permissions), in words; else absent. */
  problem?: string;
}

/** Whether the node can take work now; `reasons` say why not (one line each, no identifier). */
export interface Readiness {
  ready: boolean;
  reasons: string[];
}

/** One filed study, de-identified values only. */
export interface StudyView {
  researchId: string;
  /** The new AccessionNumber ({researchId}_{N}, cut to 16 characters). */
  accession: string;
  /** Shifted StudyDate, YYYYMMDD, or ''. */
  studyDate: string;
  modalities: string[];
  instances: number;
  /** ISO 8601. */
  lastFiledAt: string;
  /** Per destination name: its items by queue state (pending, in_flight, delivered, dead). */
  forward: Record<string, Record<string, number>>;
}

/** One quarantined instance. */
export interface QuarantineItemView {
  id: string;
  receivedAt: string;
  callingAet: string;
}

/** Quarantined instances of one study and one reason. */
export interface QuarantineGroupView {
  /** The study folder's name (a hash, not a UID). */
  study: string;
  reason: string;
  /** Whether a replay can file them (see NOT_REPLAYABLE). */
  replayable: boolean;
  count: number;
  firstReceivedAt: string;
  lastReceivedAt: string;
  items: QuarantineItemView[];
  /**
   * Only with `identifiers: true` (the authenticated view): the keys the mapping was tried with,
   * the message, and the row to add to the CSV.
   */
  identifiers?: {
    patientId: string;
    accessionNumber: string;
    studyDate: string;
    message: string;
    /** A CSV line to complete (New_Patient_ID, Surgery_Date to fill in). */
    csvRow: string;
  };
}

/** One destination's queue, configured or left over from an earlier configuration. */
export interface QueueView {
  destination: string;
  /** In the node's configuration; false: items of a removed destination (they can be dropped). */
  configured: boolean;
  address: string | null;
  health: 'unknown' | 'up' | 'down' | 'not-configured';
  pending: number;
  inFlight: number;
  delivered: number;
  dead: number;
  oldestPendingAt: string | null;
  deadReasons: { reason: string; count: number }[];
}

export interface ReplayResult {
  selected: number;
  filed: number;
  stillUnmatched: number;
  skipped: number;
}

export interface EchoResult {
  ok: boolean;
  /** C-ECHO-RSP status, when an answer came. */
  status?: number;
  ms?: number;
  /** Why it failed, in words (no identifier). */
  error?: string;
}

/** Selection of quarantined items (see src/node/quarantine.ts). */
export interface QuarantineSelectionInput {
  item?: string;
  study?: string;
  reason?: string;
}

/**
 * The status page's counts, true whoever did the work: `filed`, the instances filed since the
 * node started (its own processing, and quarantine replays from the page, the API or the
 * `quarantine replay` command, read from the state; an instance filed again counts once);
 * `quarantined`, the instances its quarantine holds now.
 */
export interface StatusTotals {
  filed: number;
  quarantined: number;
}

/** A latency the node measured, in milliseconds: a C-STORE acknowledgement, or an instance's processing. */
export type LatencyKind = 'ack' | 'processing';

export interface NodeApi extends RetrieveApi {
  identity(): NodeIdentity;
  /** The node's status (src/node/nodeStatus.ts): cheap, no identifier. */
  status(): NodeStatus;
  readiness(): Promise<Readiness>;
  disks(): Promise<DiskRoom[]>;
  /** The `limit` most recently filed studies. */
  studies(limit: number): Promise<StudyView[]>;
  /** Quarantined instances grouped by study and reason; identifiers only when asked. */
  quarantine(opts: { identifiers: boolean }): Promise<QuarantineGroupView[]>;
  /** Instances per quarantine reason (for metrics). */
  quarantineCounts(): Promise<Record<string, number>>;
  /** What the status page counts, from the state and the quarantine folder (see StatusTotals). */
  totals(): Promise<StatusTotals>;
  /** Files the selected quarantined items with the current mapping; `who` goes to the log. */
  replayQuarantine(sel: QuarantineSelectionInput, who: string): Promise<ReplayResult>;
  /** Deletes the selected quarantined items (audited); returns how many. */
  deleteQuarantine(sel: QuarantineSelectionInput, who: string): Promise<number>;
  queue(): Promise<QueueView[]>;
  /** Dead items (of one destination, or all) are pending again; returns how many. */
  retryDead(destination: string | undefined, who: string): Promise<number>;
  /** Deletes the items of a destination that is no longer configured; throws for a configured one. */
  dropDestination(destination: string, who: string): Promise<number>;
  /** C-ECHO to a configured destination; throws ApiError 404 for an unknown name. */
  echo(destination: string): Promise<EchoResult>;
  /** Calls `listener` with each latency the node measures (for histograms). */
  onLatency(listener: (kind: LatencyKind, ms: number) => void): void;
}

/** An operation refused for a reason the caller can fix; `status` is the HTTP status to answer. */
export class ApiError extends Error {
  override name = 'ApiError';
  /** `status`: the HTTP status to answer (400, 404, 409, 503...); `message`: one line, no identifier. */
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A retrieve job to start, as `dicom-deid retrieve` takes it (src/retrieve/jobSettings.ts gives
 * the settings' meaning and checks). Absent settings take the defaults.
 */
export interface RetrieveStartInput {
  /** The PACS, `AET@host:port`. */
  from: string;
  /** The mapping CSV: an absolute path on the node's machine; default the node's own CSV. */
  csv?: string;
  daysBefore?: number;
  daysAfter?: number;
  /** Modality codes (CT, MR...); empty or absent for all. */
  modalities?: string[];
  concurrency?: number;
  /** Daily local time window moves may start in, "19:00-07:00". */
  window?: string;
  dryRun?: boolean;
  /** Timers: quiet period (ms), one study's longest wait (ms), PACS wait (ms); moves per study. */
  quietMs?: number;
  studyTimeoutMs?: number;
  pacsWaitMs?: number;
  maxAttempts?: number;
}

/** Settings a resume may change (pace and timers; the plan stays the job's). */
export type RetrieveResumeInput = Pick<
  RetrieveStartInput,
  'concurrency' | 'window' | 'quietMs' | 'studyTimeoutMs' | 'pacsWaitMs' | 'maxAttempts'
>;

/**
 * One retrieve job, without identifiers: its state, counts, the CSV line numbers of rows with
 * problems (in `summary`), and where its report is (a path; the report itself is key material
 * and never served).
 */
export interface RetrieveJobView {
  id: number;
  /** pending, running, paused, done, failed, cancelled. */
  state: string;
  /** The PACS, `AET@host:port`, and the AE title it moves to. */
  pacs: string;
  moveDestination: string;
  dryRun: boolean;
  /** ISO 8601. */
  createdAt: string;
  updatedAt: string;
  /** Who runs it (a process or node label), or null. */
  runner: string | null;
  /** This node runs it now. */
  runningHere: boolean;
  cancelRequested: boolean;
  /** Why it is paused, failed or done (log-safe). */
  message: string | null;
  /** The last report's path (key material: only the path is shown). */
  reportPath: string | null;
  /** Rows by query status, studies by move status, instances filed and expected. */
  counts: {
    rows: Record<string, number>;
    studies: Record<string, number>;
    filedInstances: number;
    expectedInstances: number;
  };
  /** The summary for a screen (counts and CSV line numbers), one line each. */
  summary: string[];
  /** Its progress, while this node runs it. */
  progress?: RetrieveProgress;
}

/** The node's retrieve jobs (issue 17): start, resume, follow and cancel them. */
export interface RetrieveApi {
  /**
   * Starts the job the input asks for: continues the unfinished one of the same CSV, PACS and
   * plan, or makes one. Throws ApiError 400 (bad input, an unreadable or invalid CSV), 409 (the
   * job runs elsewhere), 503 (the node is starting or stopping).
   */
  startRetrieve(input: RetrieveStartInput, who: string): Promise<{ job: RetrieveJobView; resumed: boolean }>;
  /** Runs a paused, failed or pending job again here; throws ApiError 404, 409, 503. */
  resumeRetrieve(id: number, input: RetrieveResumeInput, who: string): Promise<RetrieveJobView>;
  /** The `limit` newest jobs. */
  retrieveJobs(limit: number): Promise<RetrieveJobView[]>;
  /** One job; throws ApiError 404. */
  retrieveJob(id: number): Promise<RetrieveJobView>;
  /** Cancels a job for good (see RetrieveService.cancel); throws ApiError 404. */
  cancelRetrieve(id: number, who: string): Promise<RetrieveJobView>;
}
