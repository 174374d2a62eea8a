// The StateStore on SQLite (better-sqlite3): one local file, shared by the node's threads, its
// commands and batch runs, each with its own connection.
//
// Concurrency: WAL mode, a 10 s busy timeout and BEGIN IMMEDIATE for every read-modify-write
// transaction serialise the writers, so session numbers are unique and gap-free per research ID,
// all processes agree on one secret, and a queue item is claimed once. synchronous=FULL: a
// committed transaction survives a power cut.
//
// better-sqlite3 is synchronous: each method runs its whole transaction in one call, so no other
// method of this connection can run in the middle of it; the async signatures are the
// interface's (see stateStore.ts), not a need of this backend.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { migrate, STATE_SCHEMA_VERSION } from './migrations.js';
import type {
  RetrieveJob,
  RetrieveJobCounts,
  RetrieveJobSpec,
  RetrieveJobState,
  RetrieveHeartbeat,
  RetrieveRow,
  RetrieveRowResult,
  RetrieveRowSpec,
  RetrieveStudy,
  RetrieveStudyPatch,
  RetrieveStudyStatus,
} from './retrieveRecords.js';
import { DEFAULT_RUNNER_STALE_MS, SqliteRetrieveTables } from './sqliteRetrieve.js';
import {
  StateNotFoundError,
  StateSchemaError,
  type DeadReason,
  type DestinationCounts,
  type FiledInstance,
  type FiledStudy,
  type ForwardRequest,
  type ForwardRound,
  type InstanceFiling,
  type OpenStateOptions,
  type QueueItem,
  type QueueState,
  type StateStore,
  type StudyClaim,
} from './stateStore.js';

const UID_SECRET_KEY = 'uid_secret';
const UID_SECRET_BYTES = 32;

function isBusy(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}

/** Runs fn, retrying while SQLite reports BUSY (some lock waits bypass the busy handler). */
function retryBusy<T>(fn: () => T, timeoutMs = 10_000): T {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err) || Date.now() > deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5 + Math.floor(Math.random() * 20));
    }
  }
}

interface QueueRow {
  id: number;
  file_path: string;
  destination: string;
  state: QueueState;
  attempts: number;
  enqueued_at: number;
  first_failure_at: number | null;
  next_attempt_at: number;
  last_error: string | null;
  last_status: number | null;
  delivered_at: number | null;
}

function toItem(r: QueueRow): QueueItem {
  return {
    id: r.id,
    filePath: r.file_path,
    destination: r.destination,
    state: r.state,
    attempts: r.attempts,
    enqueuedAt: r.enqueued_at,
    firstFailureAt: r.first_failure_at,
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
    lastStatus: r.last_status,
    deliveredAt: r.delivered_at,
  };
}

interface FiledRow {
  new_sop_uid: string;
  original_sop_uid: string;
  original_study_uid: string | null;
  research_id: string;
  session_n: number;
  output_path: string;
  calling_aet: string;
  filed_at: number;
  study_date: string | null;
  modality: string | null;
}

/** Prepared statements of one connection. */
function prepare(db: Database.Database) {
  return {
    secretGet: db.prepare<[string], { value: Buffer }>('SELECT value FROM meta WHERE key = ?'),
    secretInsert: db.prepare<[string, Buffer]>('INSERT INTO meta (key, value) VALUES (?, ?)'),

    sessionGet: db.prepare<[string, string], { n: number }>(
      'SELECT n FROM session_index WHERE research_id = ? AND key = ?',
    ),
    aliasGet: db.prepare<[string, string], { n: number }>(
      'SELECT n FROM session_alias WHERE research_id = ? AND key = ?',
    ),
    aliasInsert: db.prepare<[string, string, number]>(
      'INSERT OR IGNORE INTO session_alias (research_id, key, n) VALUES (?, ?, ?)',
    ),
    sessionMax: db.prepare<[string], { m: number | null }>(
      'SELECT MAX(n) AS m FROM session_index WHERE research_id = ?',
    ),
    sessionInsert: db.prepare<[string, string, number]>(
      'INSERT INTO session_index (research_id, key, n) VALUES (?, ?, ?)',
    ),

    // Filing again (a re-send or a replay) updates the row.
    filedUpsert: db.prepare<
      [string, string, string | null, string, number, string, string, number, string | null, string | null, string]
    >(
      `INSERT INTO filed_instance (new_sop_uid, original_sop_uid, original_study_uid, research_id, session_n,
                                   output_path, calling_aet, filed_at, study_date, modality, forward_file)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(new_sop_uid) DO UPDATE SET output_path = excluded.output_path, filed_at = excluded.filed_at,
              original_study_uid = COALESCE(excluded.original_study_uid, original_study_uid),
              study_date = excluded.study_date, modality = excluded.modality, forward_file = excluded.forward_file`,
    ),
    studyTouch: db.prepare<[string, number, number]>(
      `INSERT INTO filed_study (research_id, session_n, last_filed_at) VALUES (?, ?, ?)
       ON CONFLICT(research_id, session_n) DO UPDATE SET last_filed_at = MAX(last_filed_at, excluded.last_filed_at)`,
    ),
    // Newest first, by index (filed_study_time).
    recentStudies: db.prepare<[number], { research_id: string; session_n: number }>(
      'SELECT research_id, session_n FROM filed_study ORDER BY last_filed_at DESC, research_id, session_n LIMIT ?',
    ),
    studySummary: db.prepare<
      [string, number],
      { instances: number; first: number; last: number; study_date: string | null; modalities: string | null }
    >(
      `SELECT COUNT(*) AS instances, MIN(filed_at) AS first, MAX(filed_at) AS last, MAX(study_date) AS study_date,
              GROUP_CONCAT(DISTINCT modality) AS modalities
         FROM filed_instance WHERE research_id = ? AND session_n = ?`,
    ),
    studyForwards: db.prepare<[string, number], { destination: string; state: QueueState; n: number }>(
      `SELECT q.destination, q.state, COUNT(*) AS n
         FROM filed_instance f JOIN forward_queue q ON q.file_path = f.forward_file
        WHERE f.research_id = ? AND f.session_n = ?
        GROUP BY q.destination, q.state`,
    ),
    dropDestination: db.prepare<[string]>('DELETE FROM forward_queue WHERE destination = ?'),
    ownerGet: db.prepare<[string], { research_id: string }>('SELECT research_id FROM study_owner WHERE study_uid = ?'),
    ownerInsert: db.prepare<[string, string, number]>(
      'INSERT INTO study_owner (study_uid, research_id, claimed_at) VALUES (?, ?, ?)',
    ),

    filedGet: db.prepare<[string], FiledRow>('SELECT * FROM filed_instance WHERE new_sop_uid = ?'),
    filedCount: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM filed_instance'),
    // By rowid: a range of the table's own b-tree, only the rows filed since the mark.
    filedMark: db.prepare<[], { n: number | null }>('SELECT MAX(rowid) AS n FROM filed_instance'),
    filedSince: db.prepare<[number], { n: number }>('SELECT COUNT(*) AS n FROM filed_instance WHERE rowid > ?'),

    queueInsert: db.prepare<[string, string, number, number]>(
      `INSERT INTO forward_queue(file_path, destination, state, enqueued_at, next_attempt_at)
       VALUES (?, ?, 'pending', ?, ?) ON CONFLICT(file_path, destination) DO NOTHING`,
    ),
    queueByKey: db.prepare<[string, string], { id: number }>(
      'SELECT id FROM forward_queue WHERE file_path = ? AND destination = ?',
    ),
    queueById: db.prepare<[number], QueueRow>('SELECT * FROM forward_queue WHERE id = ?'),
    queueOfDestination: db.prepare<[string, number], QueueRow>(
      'SELECT * FROM forward_queue WHERE destination = ? ORDER BY id LIMIT ?',
    ),
    queueOfDestinationInState: db.prepare<[string, QueueState, number], QueueRow>(
      'SELECT * FROM forward_queue WHERE destination = ? AND state = ? ORDER BY id LIMIT ?',
    ),
    selectDue: db.prepare<[string, number, number], QueueRow>(
      `SELECT * FROM forward_queue
        WHERE destination = ? AND state = 'pending' AND next_attempt_at <= ?
        ORDER BY next_attempt_at, id LIMIT ?`,
    ),
    claim: db.prepare<[number, number]>(
      `UPDATE forward_queue SET state = 'in_flight', claimed_at = ? WHERE id = ? AND state = 'pending'`,
    ),
    delivered: db.prepare<[number, number, string | null, number]>(
      `UPDATE forward_queue SET state = 'delivered', delivered_at = ?, last_status = ?, last_error = ?,
              claimed_at = NULL, first_failure_at = NULL
        WHERE id = ?`,
    ),
    retry: db.prepare<[string, number | null, number, number, number]>(
      `UPDATE forward_queue SET state = 'pending', attempts = attempts + 1, last_error = ?, last_status = ?,
              next_attempt_at = ?, first_failure_at = COALESCE(first_failure_at, ?), claimed_at = NULL
        WHERE id = ?`,
    ),
    dead: db.prepare<[string, number | null, number, number]>(
      `UPDATE forward_queue SET state = 'dead', attempts = attempts + 1, last_error = ?, last_status = ?,
              first_failure_at = COALESCE(first_failure_at, ?), claimed_at = NULL
        WHERE id = ?`,
    ),
    markWaiting: db.prepare<[number, string]>(
      `UPDATE forward_queue SET first_failure_at = ?
        WHERE destination = ? AND state = 'pending' AND first_failure_at IS NULL`,
    ),
    clearWaiting: db.prepare<[string]>(
      `UPDATE forward_queue SET first_failure_at = NULL
        WHERE destination = ? AND state = 'pending' AND attempts = 0 AND first_failure_at IS NOT NULL`,
    ),
    counts: db.prepare<
      [],
      {
        destination: string;
        pending: number | null;
        inFlight: number | null;
        delivered: number | null;
        dead: number | null;
        oldestPendingAt: number | null;
      }
    >(
      `SELECT destination,
              SUM(state = 'pending')   AS pending,
              SUM(state = 'in_flight') AS inFlight,
              SUM(state = 'delivered') AS delivered,
              SUM(state = 'dead')      AS dead,
              MIN(CASE WHEN state IN ('pending','in_flight') THEN enqueued_at END) AS oldestPendingAt
         FROM forward_queue GROUP BY destination ORDER BY destination`,
    ),
    deadReasons: db.prepare<[number], { destination: string; reason: string | null; count: number }>(
      `SELECT destination, last_error AS reason, COUNT(*) AS count FROM forward_queue WHERE state = 'dead'
        GROUP BY destination, last_error ORDER BY count DESC, destination, reason LIMIT ?`,
    ),
    retryDeadAll: db.prepare<[number]>(
      `UPDATE forward_queue SET state = 'pending', next_attempt_at = ?, first_failure_at = NULL, attempts = 0
        WHERE state = 'dead'`,
    ),
    retryDeadOne: db.prepare<[number, string]>(
      `UPDATE forward_queue SET state = 'pending', next_attempt_at = ?, first_failure_at = NULL, attempts = 0
        WHERE state = 'dead' AND destination = ?`,
    ),
    recoverAll: db.prepare(`UPDATE forward_queue SET state = 'pending', claimed_at = NULL WHERE state = 'in_flight'`),
    recoverOne: db.prepare<[string]>(
      `UPDATE forward_queue SET state = 'pending', claimed_at = NULL WHERE state = 'in_flight' AND destination = ?`,
    ),
    nextDue: db.prepare<[string], { t: number | null }>(
      `SELECT MIN(next_attempt_at) AS t FROM forward_queue WHERE destination = ? AND state = 'pending'`,
    ),
  };
}

/**
 * The StateStore on SQLite through better-sqlite3 (see the header: WAL, 10 s busy timeout, BEGIN
 * IMMEDIATE per read-modify-write, synchronous FULL). Made by open(). The methods of the interface
 * carry its docstrings (@inheritDoc) and reject with SQLite's errors as better-sqlite3 throws them
 * (SqliteError: SQLITE_BUSY after the 10 s timeout, SQLITE_READONLY on a read-only connection,
 * SQLITE_FULL...).
 */
export class SqliteStateStore implements StateStore {
  private secret: Buffer | null = null;
  private readonly s: ReturnType<typeof prepare>;
  private readonly retrieve: SqliteRetrieveTables;

  private constructor(
    private readonly db: Database.Database,
    readonly location: string,
    private readonly readOnly = false,
  ) {
    this.s = prepare(db);
    this.retrieve = new SqliteRetrieveTables(db);
  }

  /**
   * Opens the state file, migrated to the current schema (migrations.ts). `create`: creates it
   * (mode 0600, before any content) and its folder (0700) when missing; otherwise rejects with
   * StateNotFoundError. Pragmas: WAL, busy_timeout 10000, synchronous FULL, foreign_keys ON.
   * Rejects with StateSchemaError for a newer schema, and with an Error naming the file for one
   * that is not an SQLite database (code SQLITE_NOTADB). ':memory:' is a private in-memory state
   * (tests).
   */
  static async open(file: string, options: OpenStateOptions): Promise<SqliteStateStore> {
    return SqliteStateStore.openSync(file, options);
  }

  private static openSync(file: string, { create, readOnly }: OpenStateOptions): SqliteStateStore {
    if (readOnly) return SqliteStateStore.openReadOnly(file);
    if (file !== ':memory:') {
      if (!create && !existsSync(file)) throw new StateNotFoundError(file);
      if (create) {
        makeFolders(dirname(file), 0o700);
        if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600)); // private before any content
      }
    }
    const db = new Database(file, { fileMustExist: file !== ':memory:' });
    try {
      db.pragma('busy_timeout = 10000');
      retryBusy(() => db.pragma('journal_mode = WAL'));
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      retryBusy(() => db.transaction(() => migrate(db, file)).immediate());
      return new SqliteStateStore(db, file);
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === 'SQLITE_NOTADB') {
        throw Object.assign(new Error(`state database ${file}: not an SQLite database`), { code: 'SQLITE_NOTADB' });
      }
      throw err;
    }
  }

  /**
   * A connection that never writes (PRAGMA query_only): no migration, no journal mode change.
   * Not SQLite's read-only open, which leaves the -wal and -shm files behind in WAL mode; this
   * connection removes them on close when it is the last one, leaving the folder as it was.
   */
  private static openReadOnly(file: string): SqliteStateStore {
    if (file !== ':memory:' && !existsSync(file)) throw new StateNotFoundError(file);
    const db = new Database(file, { fileMustExist: file !== ':memory:' });
    try {
      db.pragma('query_only = ON');
      db.pragma('busy_timeout = 10000');
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version !== STATE_SCHEMA_VERSION) {
        throw new StateSchemaError(
          `state database ${file} has schema version ${version}, this version of dicom-deid reads ${STATE_SCHEMA_VERSION}: ` +
            'a run that writes (without --dry-run) upgrades an older one',
        );
      }
      return new SqliteStateStore(db, file, true);
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === 'SQLITE_NOTADB') {
        throw Object.assign(new Error(`state database ${file}: not an SQLite database`), { code: 'SQLITE_NOTADB' });
      }
      throw err;
    }
  }

  /** @inheritDoc */
  async uidSecret(): Promise<Buffer> {
    if (this.secret) return Buffer.from(this.secret);
    if (this.readOnly) {
      const row = this.s.secretGet.get(UID_SECRET_KEY);
      if (!row) throw new Error(`state database ${this.location} has no UID secret yet`);
      this.secret = Buffer.from(row.value);
      return Buffer.from(this.secret);
    }
    const secret = this.db
      .transaction((): Buffer => {
        const row = this.s.secretGet.get(UID_SECRET_KEY);
        if (row) return Buffer.from(row.value);
        const fresh = randomBytes(UID_SECRET_BYTES);
        this.s.secretInsert.run(UID_SECRET_KEY, fresh);
        return fresh;
      })
      .immediate();
    if (secret.length !== UID_SECRET_BYTES) {
      throw new Error(`state database: UID secret has ${secret.length} bytes, expected ${UID_SECRET_BYTES}`);
    }
    this.secret = secret;
    return Buffer.from(secret);
  }

  /** @inheritDoc */
  async sessionIndex(researchId: string, key: string): Promise<number> {
    return this.assignSessions(researchId, [key]).get(key)!;
  }

  /** @inheritDoc */
  async sessionIndices(
    researchId: string,
    keys: readonly string[],
    sameAs?: ReadonlyMap<string, string>,
  ): Promise<Map<string, number>> {
    return this.assignSessions(researchId, keys, sameAs);
  }

  private assignSessions(
    researchId: string,
    keys: readonly string[],
    sameAs?: ReadonlyMap<string, string>,
  ): Map<string, number> {
    if (researchId === '') throw new Error('session numbers: empty research ID');
    return this.db
      .transaction((): Map<string, number> => {
        const out = new Map<string, number>();
        let next: number | null = null;
        for (const key of keys) {
          if (out.has(key)) continue;
          const n = this.known(researchId, key);
          if (n !== undefined) {
            out.set(key, n);
            continue;
          }
          const other = sameAs?.get(key);
          const numbered = other === undefined ? undefined : this.known(researchId, other);
          if (numbered !== undefined) {
            this.s.aliasInsert.run(researchId, key, numbered);
            out.set(key, numbered);
            continue;
          }
          if (next === null) next = (this.s.sessionMax.get(researchId)?.m ?? 0) + 1;
          this.s.sessionInsert.run(researchId, key, next);
          out.set(key, next);
          next++;
        }
        return out;
      })
      .immediate();
  }

  private known(researchId: string, key: string): number | undefined {
    return (this.s.sessionGet.get(researchId, key) ?? this.s.aliasGet.get(researchId, key))?.n;
  }

  /** @inheritDoc */
  async knownSessionIndex(researchId: string, key: string): Promise<number | undefined> {
    return this.known(researchId, key);
  }

  /** @inheritDoc */
  async highestSessionIndex(researchId: string): Promise<number> {
    return this.s.sessionMax.get(researchId)?.m ?? 0;
  }

  /** @inheritDoc */
  async linkSessionKeys(researchId: string, links: Iterable<readonly [key: string, n: number]>): Promise<void> {
    this.db
      .transaction(() => {
        for (const [key, n] of links) {
          if (!this.s.sessionGet.get(researchId, key)) this.s.aliasInsert.run(researchId, key, n);
        }
      })
      .immediate();
  }

  /** @inheritDoc */
  async claimStudies(claims: readonly StudyClaim[], now: number = Date.now()): Promise<string[]> {
    for (const c of claims) {
      if (c.studyUid === '' || c.researchId === '') throw new Error('study owner: empty study UID or research ID');
    }
    if (claims.length === 0) return [];
    return this.db
      .transaction(() =>
        claims.map((c) => {
          const owner = this.s.ownerGet.get(c.studyUid)?.research_id;
          if (owner !== undefined) return owner;
          this.s.ownerInsert.run(c.studyUid, c.researchId, now);
          return c.researchId;
        }),
      )
      .immediate();
  }

  /** @inheritDoc */
  async knownStudyOwners(studyUids: readonly string[]): Promise<Map<string, string>> {
    const owners = new Map<string, string>();
    for (const uid of studyUids) {
      const owner = this.s.ownerGet.get(uid)?.research_id;
      if (owner !== undefined) owners.set(uid, owner);
    }
    return owners;
  }

  /** @inheritDoc */
  async fileInstances(
    filings: readonly InstanceFiling[],
    forwardTo: readonly string[],
    now: number = Date.now(),
  ): Promise<void> {
    if (filings.length === 0) return;
    // Several writers (processing threads, the forwarder): take the write lock first.
    this.db
      .transaction(() => {
        for (const f of filings) {
          this.s.filedUpsert.run(
            f.newSopUid,
            f.originalSopUid,
            f.originalStudyUid ?? null,
            f.researchId,
            f.sessionN,
            f.outputPath,
            f.callingAet,
            now,
            f.studyDate ?? null,
            f.modality ?? null,
            f.forwardFile,
          );
          this.s.studyTouch.run(f.researchId, f.sessionN, now);
          for (const destination of forwardTo) this.s.queueInsert.run(f.forwardFile, destination, now, now);
        }
      })
      .immediate();
  }

  /** @inheritDoc */
  async filedInstance(newSopUid: string): Promise<FiledInstance | undefined> {
    const r = this.s.filedGet.get(newSopUid);
    if (!r) return undefined;
    return {
      newSopUid: r.new_sop_uid,
      originalSopUid: r.original_sop_uid,
      originalStudyUid: r.original_study_uid,
      researchId: r.research_id,
      sessionN: r.session_n,
      outputPath: r.output_path,
      callingAet: r.calling_aet,
      filedAt: r.filed_at,
      ...(r.study_date !== null ? { studyDate: r.study_date } : {}),
      ...(r.modality !== null ? { modality: r.modality } : {}),
    };
  }

  /** @inheritDoc */
  async recentStudies(limit: number): Promise<FiledStudy[]> {
    // One read transaction: the studies and their counts are of one moment.
    return this.db.transaction((): FiledStudy[] => {
      const found = this.s.recentStudies.all(limit).map((r) => ({ researchId: r.research_id, sessionN: r.session_n }));
      return found.map(({ researchId, sessionN }) => {
        const sum = this.s.studySummary.get(researchId, sessionN)!;
        const forward: FiledStudy['forward'] = {};
        for (const q of this.s.studyForwards.all(researchId, sessionN)) {
          (forward[q.destination] ??= {})[q.state] = q.n;
        }
        return {
          researchId,
          sessionN,
          studyDate: sum.study_date ?? '',
          modalities: (sum.modalities ?? '')
            .split(',')
            .filter((m) => m !== '')
            .sort(),
          instances: sum.instances,
          firstFiledAt: sum.first,
          lastFiledAt: sum.last,
          forward,
        };
      });
    })();
  }

  /** @inheritDoc */
  async filedInstanceCount(): Promise<number> {
    return this.s.filedCount.get()!.n;
  }

  /** @inheritDoc */
  async filedInstanceMark(): Promise<number> {
    return this.s.filedMark.get()!.n ?? 0;
  }

  /** @inheritDoc */
  async filedInstancesSince(mark: number): Promise<number> {
    return this.s.filedSince.get(mark)!.n;
  }

  /** @inheritDoc */
  async enqueueForwards(
    requests: readonly ForwardRequest[],
    now: number = Date.now(),
  ): Promise<{ id: number; inserted: boolean }[]> {
    return this.db
      .transaction(() =>
        requests.map((r) => {
          const info = this.s.queueInsert.run(r.filePath, r.destination, now, now);
          if (info.changes > 0) return { id: Number(info.lastInsertRowid), inserted: true };
          return { id: this.s.queueByKey.get(r.filePath, r.destination)!.id, inserted: false };
        }),
      )
      .immediate();
  }

  /** @inheritDoc */
  async claimDueForwards(destination: string, limit: number, now: number = Date.now()): Promise<QueueItem[]> {
    // Read, then write: a deferred transaction would fail at once (SQLITE_BUSY) if another
    // connection wrote in between.
    return this.db
      .transaction(() => {
        const rows = this.s.selectDue.all(destination, now, limit);
        for (const r of rows) this.s.claim.run(now, r.id);
        return rows.map((r) => ({ ...toItem(r), state: 'in_flight' as const }));
      })
      .immediate();
  }

  /** @inheritDoc */
  async recordForwardRound(round: ForwardRound): Promise<void> {
    const now = round.now ?? Date.now();
    this.db
      .transaction(() => {
        for (const o of round.outcomes) {
          if (o.outcome === 'delivered') this.s.delivered.run(now, o.status, o.note ?? null, o.id);
          else if (o.outcome === 'retry') this.s.retry.run(o.reason, o.status ?? null, o.nextAttemptAt, now, o.id);
          else this.s.dead.run(o.reason, o.status ?? null, now, o.id);
        }
        if (round.destinationHealth === 'down') this.s.markWaiting.run(now, round.destination);
        else if (round.destinationHealth === 'up') this.s.clearWaiting.run(round.destination);
      })
      .immediate();
  }

  /** @inheritDoc */
  async recoverInFlightForwards(destination?: string): Promise<number> {
    return destination === undefined ? this.s.recoverAll.run().changes : this.s.recoverOne.run(destination).changes;
  }

  /** @inheritDoc */
  async nextForwardDueAt(destination: string): Promise<number | null> {
    return this.s.nextDue.get(destination)?.t ?? null;
  }

  /** @inheritDoc */
  async forwardCounts(): Promise<DestinationCounts[]> {
    return this.s.counts.all().map((r) => ({
      destination: r.destination,
      pending: Number(r.pending ?? 0),
      inFlight: Number(r.inFlight ?? 0),
      delivered: Number(r.delivered ?? 0),
      dead: Number(r.dead ?? 0),
      oldestPendingAt: r.oldestPendingAt ?? null,
    }));
  }

  /** @inheritDoc */
  async deadForwardReasons(limit = 10): Promise<DeadReason[]> {
    return this.s.deadReasons.all(limit);
  }

  /** @inheritDoc */
  async retryDeadForwards(destination?: string, now: number = Date.now()): Promise<number> {
    return destination === undefined
      ? this.s.retryDeadAll.run(now).changes
      : this.s.retryDeadOne.run(now, destination).changes;
  }

  /** @inheritDoc */
  async dropForwards(destination: string): Promise<number> {
    return this.s.dropDestination.run(destination).changes;
  }

  /** @inheritDoc */
  async forwardItem(id: number): Promise<QueueItem | undefined> {
    const r = this.s.queueById.get(id);
    return r ? toItem(r) : undefined;
  }

  /** @inheritDoc */
  async forwardItems(destination: string, options: { state?: QueueState; limit?: number } = {}): Promise<QueueItem[]> {
    const limit = options.limit ?? 1000;
    const rows =
      options.state === undefined
        ? this.s.queueOfDestination.all(destination, limit)
        : this.s.queueOfDestinationInState.all(destination, options.state, limit);
    return rows.map(toItem);
  }

  /** @inheritDoc */
  async filedCountsByStudy(originalStudyUids: readonly string[]): Promise<Map<string, number>> {
    return this.retrieve.filedCountsByStudy(originalStudyUids);
  }

  /** @inheritDoc */
  async createRetrieveJob(
    spec: RetrieveJobSpec,
    rows: readonly RetrieveRowSpec[],
    now: number = Date.now(),
  ): Promise<RetrieveJob> {
    return this.retrieve.createJob(spec, rows, now);
  }

  /** @inheritDoc */
  async retrieveJob(id: number): Promise<RetrieveJob | undefined> {
    return this.retrieve.job(id);
  }

  /** @inheritDoc */
  async retrieveJobs(limit = 20): Promise<RetrieveJob[]> {
    return this.retrieve.jobs(limit);
  }

  /** @inheritDoc */
  async unfinishedRetrieveJob(
    match: Pick<RetrieveJobSpec, 'pacs' | 'moveDestination' | 'csvSha256' | 'planKey'>,
  ): Promise<RetrieveJob | undefined> {
    return this.retrieve.unfinishedJob(match);
  }

  /** @inheritDoc */
  async claimRetrieveJob(
    id: number,
    runner: string,
    options: { params?: string; staleMs?: number; now?: number } = {},
  ): Promise<RetrieveJob | undefined> {
    return this.retrieve.claimJob(
      id,
      runner,
      options.params,
      options.staleMs ?? DEFAULT_RUNNER_STALE_MS,
      options.now ?? Date.now(),
    );
  }

  /** @inheritDoc */
  async heartbeatRetrieveJob(id: number, runner: string, now: number = Date.now()): Promise<RetrieveHeartbeat> {
    return this.retrieve.heartbeat(id, runner, now);
  }

  /** @inheritDoc */
  async releaseRetrieveJob(
    id: number,
    runner: string,
    outcome: { state: RetrieveJobState; message?: string | null; reportPath?: string | null },
    now: number = Date.now(),
  ): Promise<void> {
    this.retrieve.release(id, runner, outcome, now);
  }

  /** @inheritDoc */
  async cancelRetrieveJob(
    id: number,
    options: { staleMs?: number; now?: number } = {},
  ): Promise<RetrieveJob | undefined> {
    return this.retrieve.cancel(id, options.staleMs ?? DEFAULT_RUNNER_STALE_MS, options.now ?? Date.now());
  }

  /** @inheritDoc */
  async retrieveRows(jobId: number): Promise<RetrieveRow[]> {
    return this.retrieve.rows(jobId);
  }

  /** @inheritDoc */
  async recordRetrieveRow(
    jobId: number,
    line: number,
    result: RetrieveRowResult,
    now: number = Date.now(),
  ): Promise<void> {
    this.retrieve.recordRow(jobId, line, result, now);
  }

  /** @inheritDoc */
  async retrieveStudies(jobId: number, status?: RetrieveStudyStatus): Promise<RetrieveStudy[]> {
    return this.retrieve.studies(jobId, status);
  }

  /** @inheritDoc */
  async updateRetrieveStudy(
    jobId: number,
    studyUid: string,
    patch: RetrieveStudyPatch,
    now: number = Date.now(),
  ): Promise<void> {
    this.retrieve.updateStudy(jobId, studyUid, patch, now);
  }

  /** @inheritDoc */
  async retrieveJobCounts(jobId: number): Promise<RetrieveJobCounts> {
    return this.retrieve.counts(jobId);
  }

  /** @inheritDoc */
  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

/**
 * mkdir -p one folder at a time (mode for those it makes). src/io's mkdirRecursiveSync does the
 * same, but src/state imports nothing from outside itself (its tests run it standalone). Node's
 * `recursive: true` loops forever where mkdir says ENOENT under an existing parent (/proc).
 * Throws the failing mkdir's error.
 */
function makeFolders(dir: string, mode: number): void {
  const missing: string[] = [];
  for (let d = dir; !exists(d); d = dirname(d)) {
    missing.push(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
