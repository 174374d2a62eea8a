// The project's durable state, behind one interface that the node, batch mode and the commands
// use: the UID secret, session numbers, the record of filed instances and the forward queue.
//
// Every method is one whole transaction with a meaning (assign a session number, file instances
// and queue their forwards, claim due queue items...), never raw SQL, and every method is
// asynchronous: today's backend is SQLite on a local file (sqliteStateStore.ts, synchronous
// underneath), but a backend on a network database (PostgreSQL, for several nodes sharing one
// state) cannot answer synchronously, and must be addable without touching the callers.
// `openStateStore` (openStateStore.ts) is the one way to get a store.
//
// The state is KEY MATERIAL: the secret makes UID remapping reproducible; session keys hold
// accession numbers, Study Instance UIDs and source folder names; filed instances link original
// and new SOP Instance UIDs. It lives outside the output tree.
//
// Times are epoch milliseconds (`now` parameters default to Date.now(); tests pass their own).
// Any method may reject with the backend's own error (SQLite: an Error with `code`, e.g.
// SQLITE_BUSY after the 10 s busy timeout, SQLITE_FULL); a rejected method changed nothing.
//
// Keep src/state free of imports from outside src/state (node builtins and better-sqlite3 only):
// the multi-process test transpiles this folder alone and runs it in child processes.
import type {
  RetrieveHeartbeat,
  RetrieveJob,
  RetrieveJobCounts,
  RetrieveJobSpec,
  RetrieveJobState,
  RetrieveRow,
  RetrieveRowResult,
  RetrieveRowSpec,
  RetrieveStudy,
  RetrieveStudyPatch,
  RetrieveStudyStatus,
} from './retrieveRecords.js';

/** The state named by `openStateStore(location, { create: false })` does not exist. */
export class StateNotFoundError extends Error {
  override name = 'StateNotFoundError';
  /** `location`: the state file's path, named in the message "no state database at <location>". */
  constructor(readonly location: string) {
    super(`no state database at ${location}`);
  }
}

/** The state was written by a newer version of dicom-deid (a newer schema); one-line message. */
export class StateSchemaError extends Error {
  override name = 'StateSchemaError';
}

/** One de-identified instance the node filed (key material: it links original and new UIDs). */
export interface FiledInstance {
  /** SOP Instance UID after de-identification (2.25...); one record per new UID. */
  newSopUid: string;
  /** SOP Instance UID as received. */
  originalSopUid: string;
  /**
   * Study Instance UID as received (a retrieve job counts what arrived per study); null for
   * instances filed before it was recorded (schema v4).
   */
  originalStudyUid: string | null;
  researchId: string;
  /** Session number N of `{researchId}_{N}`. */
  sessionN: number;
  /** Path of the output file relative to the output tree. */
  outputPath: string;
  /** AE title of the association that sent it ('spool' or 'quarantine' when replayed). */
  callingAet: string;
  /** When it was (last) filed, epoch ms. */
  filedAt: number;
  /** The de-identified (shifted) StudyDate, YYYYMMDD, or '' when unknown. Not identifying. */
  studyDate?: string;
  /** The Modality (kept by de-identification), or ''. */
  modality?: string;
}

/** What `fileInstances` records for one instance, and the file to forward. */
export interface InstanceFiling extends Omit<FiledInstance, 'filedAt' | 'originalStudyUid'> {
  originalStudyUid?: string | null;
  /** The output file as the forwarder opens it (absolute path), queued for every destination. */
  forwardFile: string;
}

/**
 * One filed study ({researchId}_{sessionN}) as the status page lists it: de-identified values
 * and counts only, never an original identifier.
 */
export interface FiledStudy {
  researchId: string;
  sessionN: number;
  /** Shifted StudyDate (YYYYMMDD) of its instances, or '' when none had one. */
  studyDate: string;
  /** Distinct modalities, sorted. */
  modalities: string[];
  instances: number;
  /** Epoch ms: its first and last instance were filed (last filing time of each). */
  firstFiledAt: number;
  lastFiledAt: number;
  /** Its instances' forward queue items by destination name and state (absent: never queued). */
  forward: Record<string, Partial<Record<QueueState, number>>>;
}

/** A research patient's claim on a study (see StateStore.claimStudies). */
export interface StudyClaim {
  /** The study's de-identified Study Instance UID (the same for batch and node: one secret). */
  studyUid: string;
  researchId: string;
}

/** States of a forward queue item: pending -> in_flight -> delivered | pending (retry) | dead. */
export type QueueState = 'pending' | 'in_flight' | 'delivered' | 'dead';

/** One (file, destination) of the forward queue. */
export interface QueueItem {
  id: number;
  /** The file to send (absolute path). */
  filePath: string;
  /** The destination's name (today `AET@host:port`); items are keyed by it. */
  destination: string;
  state: QueueState;
  /** Failed attempts so far. */
  attempts: number;
  enqueuedAt: number;
  /** Epoch ms of the first failure since the last success or revival; null if none. */
  firstFailureAt: number | null;
  /** Not claimed before this time (epoch ms). */
  nextAttemptAt: number;
  /** Why the last attempt failed, or a warning of a delivery. */
  lastError: string | null;
  /** DIMSE status of the last response (C-STORE-RSP Status), if any. */
  lastStatus: number | null;
  deliveredAt: number | null;
}

/** The queue of one destination, counted by state. */
export interface DestinationCounts {
  destination: string;
  pending: number;
  inFlight: number;
  delivered: number;
  dead: number;
  /** enqueuedAt of the oldest pending or in-flight item, or null. */
  oldestPendingAt: number | null;
}

/** Dead items of one destination that share one reason. */
export interface DeadReason {
  destination: string;
  /** The item's last error; null when none was recorded. */
  reason: string | null;
  count: number;
}

/** A file to queue for a destination (by the destination's name). */
export interface ForwardRequest {
  filePath: string;
  destination: string;
}

/** The outcome of one claimed item in a forwarding round. */
export type ForwardOutcome =
  /** Delivered (a C-STORE success or warning; `note` holds the warning). */
  | { id: number; outcome: 'delivered'; status: number; note?: string | null }
  /** Failed for now: pending again at `nextAttemptAt`; counts one failed attempt. */
  | { id: number; outcome: 'retry'; reason: string; status?: number | null; nextAttemptAt: number }
  /** Failed for good: dead, with its reason; counts one failed attempt. */
  | { id: number; outcome: 'dead'; reason: string; status?: number | null };

/** What a forwarding round to one destination found out, recorded in one transaction. */
export interface ForwardRound {
  destination: string;
  outcomes: readonly ForwardOutcome[];
  /**
   * 'down': the destination is unreachable; its pending items never attempted start their
   * give-up clock (firstFailureAt) too. 'up': it delivered again; that clock stops for items it
   * never failed. Omitted: neither.
   */
  destinationHealth?: 'down' | 'up';
  now?: number;
}

export interface StateStore {
  /** Where the state is (a file path; ':memory:' in tests), for messages. */
  readonly location: string;

  // ---- UID secret ---------------------------------------------------------------------------

  /**
   * The project's 32-byte UID secret (HMAC key of the UID remapping): created on first use and
   * kept for ever. Processes opening a new state at the same time agree on one secret (creation
   * is one exclusive transaction). Returns a new copy on each call.
   */
  uidSecret(): Promise<Buffer>;

  // ---- Session numbers ({researchId}_{N}) ---------------------------------------------------

  /**
   * The session number of (researchId, key): the one it has (directly or as a linked key), or
   * the next free one (max + 1, from 1) of that research ID, assigned in one exclusive
   * transaction: unique and gap-free per research ID across processes. `key` is a study key
   * (accession or Study Instance UID) or a batch session folder key (src/core/accession.ts,
   * src/batch/layout.ts). Throws on an empty research ID.
   */
  sessionIndex(researchId: string, key: string): Promise<number>;

  /**
   * Batch form, one exclusive transaction: each key gets its number; keys without one get the
   * next free numbers in the ORDER GIVEN (batch passes folders in code point order). Duplicate
   * keys get one number. `sameAs` maps a key to another key naming the same session (a batch
   * session folder to the study found in it): when the key has no number but the other one has
   * (the node numbered that study first), the key is linked to that number instead of taking a
   * new one. Throws on an empty research ID; on any error nothing is assigned.
   */
  sessionIndices(
    researchId: string,
    keys: readonly string[],
    sameAs?: ReadonlyMap<string, string>,
  ): Promise<Map<string, number>>;

  /** The number already given to (researchId, key), directly or as a linked key; never assigns. */
  knownSessionIndex(researchId: string, key: string): Promise<number | undefined>;

  /** The highest session number of `researchId` (0 when it has none); never assigns. */
  highestSessionIndex(researchId: string): Promise<number>;

  /**
   * Records that each `key` names session `n` of `researchId` as well (the studies batch mode
   * found in a session folder, so that the node files a re-sent study under the same number),
   * unless the key already has a number. One transaction for all links.
   */
  linkSessionKeys(researchId: string, links: Iterable<readonly [key: string, n: number]>): Promise<void>;

  // ---- Study owners (one study, one research patient) ----------------------------------------

  /**
   * A study belongs to one patient (PS3.3 C.7.2.1), so to one research patient. Each claim gives
   * its study to its research patient unless the study already has one; returns, claim by claim
   * in order, the research ID that owns the study (the claimer's, or the earlier owner's: then
   * the caller holds the instance). One exclusive transaction: two processes claiming one study
   * at once agree on one owner. Throws on an empty study UID or research ID (nothing claimed).
   */
  claimStudies(claims: readonly StudyClaim[], now?: number): Promise<string[]>;

  /** The owners the state already gives these studies (de-identified Study Instance UIDs); never claims. */
  knownStudyOwners(studyUids: readonly string[]): Promise<Map<string, string>>;

  // ---- Filed instances ----------------------------------------------------------------------

  /**
   * Files instances and queues each one's `forwardFile` for every destination of `forwardTo`
   * (by name), all in one exclusive transaction (the node's group commit): a filed instance is
   * never left unqueued. Idempotent: filing an instance again (a re-send, a replay after a crash)
   * updates its output path and time, and an item already queued for a destination, in any
   * state, stays as it is.
   */
  fileInstances(filings: readonly InstanceFiling[], forwardTo: readonly string[], now?: number): Promise<void>;

  /** The filing record of a new SOP Instance UID, if any. */
  filedInstance(newSopUid: string): Promise<FiledInstance | undefined>;

  /** How many instances are filed (one per new SOP Instance UID). */
  filedInstanceCount(): Promise<number>;

  /**
   * A mark of the filings so far (their highest row id; filings are never deleted and a filing
   * again updates its row): filedInstancesSince(mark) later counts the instances filed after it.
   */
  filedInstanceMark(): Promise<number>;

  /** How many instances were filed for the first time after `mark` (filedInstanceMark()), by any process. */
  filedInstancesSince(mark: number): Promise<number>;

  /**
   * How many instances of each original Study Instance UID are filed (0 for a study with none);
   * one entry per distinct UID given.
   */
  filedCountsByStudy(originalStudyUids: readonly string[]): Promise<Map<string, number>>;

  /**
   * The `limit` studies filed most recently (by their last filing), newest first, with their
   * instance counts and forward states (a read of each listed study's filings).
   */
  recentStudies(limit: number): Promise<FiledStudy[]>;

  // ---- Forward queue (one item per file and destination name) -------------------------------

  /**
   * Queues files, one transaction for all. Idempotent per (file, destination): an item already
   * queued, in any state, is left as it is (`inserted` false, its id returned). One result per
   * request, in order.
   */
  enqueueForwards(requests: readonly ForwardRequest[], now?: number): Promise<{ id: number; inserted: boolean }[]>;

  /**
   * Claims up to `limit` pending items of `destination` due by `now` (oldest due first, then by
   * id) in one exclusive transaction: they are in_flight, and no other claim returns them until
   * their outcome is recorded or `recoverInFlightForwards` runs.
   */
  claimDueForwards(destination: string, limit: number, now?: number): Promise<QueueItem[]>;

  /**
   * Records a round's outcomes (delivered / retry / dead) and the destination's health, in one
   * exclusive transaction. Ids not in the queue are ignored.
   */
  recordForwardRound(round: ForwardRound): Promise<void>;

  /**
   * Startup recovery: items in_flight (of one destination, or all) are pending again (sent
   * again; a peer that has one already answers success or duplicate, both delivered). Only for
   * a process that owns those destinations: another's items in flight would be sent twice.
   * Returns how many.
   */
  recoverInFlightForwards(destination?: string): Promise<number>;

  /** The earliest nextAttemptAt of the pending items of `destination`; null when none. */
  nextForwardDueAt(destination: string): Promise<number | null>;

  /** Per destination (sorted by name): counts by state and the oldest pending item's time. */
  forwardCounts(): Promise<DestinationCounts[]>;

  /** Dead items grouped by destination and reason, most frequent first, at most `limit` groups (default 10). */
  deadForwardReasons(limit?: number): Promise<DeadReason[]>;

  /**
   * Dead items (of one destination, or all) are pending again, due `now`, with their attempts
   * and give-up clock reset. Returns how many.
   */
  retryDeadForwards(destination?: string, now?: number): Promise<number>;

  /**
   * Deletes every queue item of `destination` (any state): for a destination removed from the
   * configuration, whose items would otherwise wait for ever. Returns how many.
   */
  dropForwards(destination: string): Promise<number>;

  /** One item by id. */
  forwardItem(id: number): Promise<QueueItem | undefined>;

  /** Items of a destination (optionally in one state) by id, at most `limit` (default 1000). */
  forwardItems(destination: string, options?: { state?: QueueState; limit?: number }): Promise<QueueItem[]>;

  // ---- Retrieve jobs (retrieveRecords.ts) ---------------------------------------------------

  /** Creates a job (state pending) with its CSV rows (status pending), in one transaction. */
  createRetrieveJob(spec: RetrieveJobSpec, rows: readonly RetrieveRowSpec[], now?: number): Promise<RetrieveJob>;

  retrieveJob(id: number): Promise<RetrieveJob | undefined>;

  /** Jobs, newest first, at most `limit` (default 20). */
  retrieveJobs(limit?: number): Promise<RetrieveJob[]>;

  /**
   * The newest job with this PACS, move destination, CSV hash and plan key that is not done or
   * cancelled: the one a rerun of the same command continues.
   */
  unfinishedRetrieveJob(
    match: Pick<RetrieveJobSpec, 'pacs' | 'moveDestination' | 'csvSha256' | 'planKey'>,
  ): Promise<RetrieveJob | undefined>;

  /**
   * Takes a job to run it, in one exclusive transaction: only when its state is resumable
   * (RESUMABLE_JOB_STATES), no cancel was asked, and nobody else runs it (no runner, this
   * runner, or a runner whose heartbeat is older than `staleMs`). It becomes running under
   * `runner` (with `params` when given); its studies left `moving` by a run that stopped are
   * planned again. Returns the job, or undefined when it could not be taken.
   */
  claimRetrieveJob(
    id: number,
    runner: string,
    options?: { params?: string; staleMs?: number; now?: number },
  ): Promise<RetrieveJob | undefined>;

  /** The runner is alive; tells it whether it still owns the job and whether a cancel was asked. */
  heartbeatRetrieveJob(id: number, runner: string, now?: number): Promise<RetrieveHeartbeat>;

  /**
   * The runner leaves the job in `state` (paused, done, failed, cancelled) with a log-safe
   * message and, when given, the report it wrote. Does nothing when `runner` no longer owns it.
   */
  releaseRetrieveJob(
    id: number,
    runner: string,
    outcome: { state: RetrieveJobState; message?: string | null; reportPath?: string | null },
    now?: number,
  ): Promise<void>;

  /**
   * Asks a job to stop for good: a job nobody runs (no runner, or one silent for `staleMs`) is
   * cancelled at once; a running one is flagged and its runner stops on its next heartbeat.
   * Returns the job as it is after the request, undefined when there is no such job.
   */
  cancelRetrieveJob(id: number, options?: { staleMs?: number; now?: number }): Promise<RetrieveJob | undefined>;

  /** The job's rows in CSV line order, with the studies each took. */
  retrieveRows(jobId: number): Promise<RetrieveRow[]>;

  /**
   * Records a row's query outcome and the studies it took, one transaction: a study already
   * planned by another row of the job is linked to this row too, not planned twice.
   */
  recordRetrieveRow(jobId: number, line: number, result: RetrieveRowResult, now?: number): Promise<void>;

  /** The job's studies (in one status, or all), in the order they were planned. */
  retrieveStudies(jobId: number, status?: RetrieveStudyStatus): Promise<RetrieveStudy[]>;

  /** Updates one study's record. */
  updateRetrieveStudy(jobId: number, studyUid: string, patch: RetrieveStudyPatch, now?: number): Promise<void>;

  /** The job's rows and studies counted by status, and its instance sums. */
  retrieveJobCounts(jobId: number): Promise<RetrieveJobCounts>;

  // ---- Lifetime -----------------------------------------------------------------------------

  /** Closes the store; later calls reject. Closing twice is harmless. */
  close(): Promise<void>;
}

/** How `openStateStore` opens a state. */
export interface OpenStateOptions {
  /**
   * true: create the state (and its private folder) when it does not exist; the node and batch
   * mode do. false: never create anything; reject with StateNotFoundError when there is no
   * state (the management commands: they work on a node's state, never on a new one).
   */
  create: boolean;
  /**
   * true: read only (`batch --dry-run`): nothing is created, migrated or written, and every
   * method that would write rejects (SQLite: SQLITE_READONLY); `uidSecret` rejects when the
   * state has none yet. Needs `create: false`.
   */
  readOnly?: boolean;
}
