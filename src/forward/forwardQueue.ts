// Persistent forwarding queue in SQLite (better-sqlite3). One row per (file, destination).
//
// States: pending -> in_flight -> delivered | pending (retry) | dead.
// All functions take the Database handle first and run synchronous statements; none opens its
// own transaction except claimDue/recoverInFlight (which use db.transaction: inside a caller's
// transaction that becomes a savepoint), so enqueue() can be part of the caller's transaction.

import type { Database, Statement } from 'better-sqlite3';

export type QueueState = 'pending' | 'in_flight' | 'delivered' | 'dead';

export interface QueueItem {
  id: number;
  filePath: string;
  /** "AET@host:port" */
  destination: string;
  state: QueueState;
  /** Failed attempts so far. */
  attempts: number;
  enqueuedAt: number;
  /** Epoch ms of the first failure since the last success/revival; null if none. */
  firstFailureAt: number | null;
  nextAttemptAt: number;
  lastError: string | null;
  lastStatus: number | null;
  deliveredAt: number | null;
}

export interface DestinationCounts {
  destination: string;
  pending: number;
  inFlight: number;
  delivered: number;
  dead: number;
  /** enqueuedAt of the oldest pending or in-flight item, or null. */
  oldestPendingAt: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS forward_queue(
  id               INTEGER PRIMARY KEY,
  file_path        TEXT    NOT NULL,
  destination      TEXT    NOT NULL,
  state            TEXT    NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending','in_flight','delivered','dead')),
  attempts         INTEGER NOT NULL DEFAULT 0,
  enqueued_at      INTEGER NOT NULL,
  first_failure_at INTEGER,
  next_attempt_at  INTEGER NOT NULL,
  claimed_at       INTEGER,
  last_error       TEXT,
  last_status      INTEGER,
  delivered_at     INTEGER,
  UNIQUE(file_path, destination)
);
CREATE INDEX IF NOT EXISTS forward_queue_due ON forward_queue(destination, state, next_attempt_at);
`;

/** Creates the forward_queue table and index if missing. Idempotent. */
export function ensureSchema(db: Database): void {
  db.exec(SCHEMA);
}

// Prepared statements, cached per Database handle.
interface Stmts {
  insert: Statement;
  byKey: Statement;
  byId: Statement;
  selectDue: Statement;
  claim: Statement;
  delivered: Statement;
  retry: Statement;
  dead: Statement;
  counts: Statement;
  retryDeadAll: Statement;
  retryDeadOne: Statement;
  recoverAll: Statement;
  recoverOne: Statement;
  nextDue: Statement;
  markWaiting: Statement;
  clearWaiting: Statement;
}
const cache = new WeakMap<Database, Stmts>();

function stmts(db: Database): Stmts {
  let s = cache.get(db);
  if (!s) {
    s = {
      insert: db.prepare(
        `INSERT INTO forward_queue(file_path, destination, state, enqueued_at, next_attempt_at)
         VALUES (?, ?, 'pending', ?, ?) ON CONFLICT(file_path, destination) DO NOTHING`,
      ),
      byKey: db.prepare(`SELECT * FROM forward_queue WHERE file_path = ? AND destination = ?`),
      byId: db.prepare(`SELECT * FROM forward_queue WHERE id = ?`),
      selectDue: db.prepare(
        `SELECT * FROM forward_queue
          WHERE destination = ? AND state = 'pending' AND next_attempt_at <= ?
          ORDER BY next_attempt_at, id LIMIT ?`,
      ),
      claim: db.prepare(
        `UPDATE forward_queue SET state = 'in_flight', claimed_at = ? WHERE id = ? AND state = 'pending'`,
      ),
      delivered: db.prepare(
        `UPDATE forward_queue SET state = 'delivered', delivered_at = ?, last_status = ?, last_error = ?,
                claimed_at = NULL, first_failure_at = NULL
          WHERE id = ?`,
      ),
      retry: db.prepare(
        `UPDATE forward_queue SET state = 'pending', attempts = attempts + 1, last_error = ?, last_status = ?,
                next_attempt_at = ?, first_failure_at = COALESCE(first_failure_at, ?), claimed_at = NULL
          WHERE id = ?`,
      ),
      dead: db.prepare(
        `UPDATE forward_queue SET state = 'dead', attempts = attempts + 1, last_error = ?, last_status = ?,
                first_failure_at = COALESCE(first_failure_at, ?), claimed_at = NULL
          WHERE id = ?`,
      ),
      counts: db.prepare(
        `SELECT destination,
                SUM(state = 'pending')   AS pending,
                SUM(state = 'in_flight') AS inFlight,
                SUM(state = 'delivered') AS delivered,
                SUM(state = 'dead')      AS dead,
                MIN(CASE WHEN state IN ('pending','in_flight') THEN enqueued_at END) AS oldestPendingAt
           FROM forward_queue GROUP BY destination ORDER BY destination`,
      ),
      retryDeadAll: db.prepare(
        `UPDATE forward_queue SET state = 'pending', next_attempt_at = ?, first_failure_at = NULL, attempts = 0
          WHERE state = 'dead'`,
      ),
      retryDeadOne: db.prepare(
        `UPDATE forward_queue SET state = 'pending', next_attempt_at = ?, first_failure_at = NULL, attempts = 0
          WHERE state = 'dead' AND destination = ?`,
      ),
      recoverAll: db.prepare(`UPDATE forward_queue SET state = 'pending', claimed_at = NULL WHERE state = 'in_flight'`),
      recoverOne: db.prepare(
        `UPDATE forward_queue SET state = 'pending', claimed_at = NULL WHERE state = 'in_flight' AND destination = ?`,
      ),
      nextDue: db.prepare(
        `SELECT MIN(next_attempt_at) AS t FROM forward_queue WHERE destination = ? AND state = 'pending'`,
      ),
      markWaiting: db.prepare(
        `UPDATE forward_queue SET first_failure_at = ?
          WHERE destination = ? AND state = 'pending' AND first_failure_at IS NULL`,
      ),
      clearWaiting: db.prepare(
        `UPDATE forward_queue SET first_failure_at = NULL
          WHERE destination = ? AND state = 'pending' AND attempts = 0 AND first_failure_at IS NOT NULL`,
      ),
    };
    cache.set(db, s);
  }
  return s;
}

interface Row {
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

function toItem(r: Row): QueueItem {
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

/**
 * Queues `filePath` for `destination` ("AET@host:port"). Idempotent: if the same file+destination
 * is already queued (in any state) nothing changes and `inserted` is false.
 * Runs a single INSERT, so it may be called inside the caller's own transaction.
 */
export function enqueue(
  db: Database,
  item: { filePath: string; destination: string },
  now: number = Date.now(),
): { id: number; inserted: boolean } {
  const s = stmts(db);
  const info = s.insert.run(item.filePath, item.destination, now, now);
  if (info.changes > 0) return { id: Number(info.lastInsertRowid), inserted: true };
  const row = s.byKey.get(item.filePath, item.destination) as Row;
  return { id: row.id, inserted: false };
}

/**
 * Atomically moves up to `limit` due pending items of `destination` to in_flight and returns them
 * (oldest due first).
 */
export function claimDue(db: Database, destination: string, limit: number, now: number = Date.now()): QueueItem[] {
  const s = stmts(db);
  return db
    .transaction(() => {
      const rows = s.selectDue.all(destination, now, limit) as Row[];
      for (const r of rows) s.claim.run(now, r.id);
      return rows.map((r) => ({ ...toItem(r), state: 'in_flight' as const }));
    })
    .immediate(); // read then write: a deferred transaction would fail at once (SQLITE_BUSY) if another connection wrote in between
}

/** Marks an item delivered (status: the DIMSE status; note: e.g. a warning text). */
export function markDelivered(
  db: Database,
  id: number,
  status = 0,
  note: string | null = null,
  now: number = Date.now(),
): void {
  stmts(db).delivered.run(now, status, note, id);
}

/** Puts an item back to pending, to be retried at `nextAttemptAt`; counts a failed attempt. */
export function markRetry(
  db: Database,
  id: number,
  reason: string,
  nextAttemptAt: number,
  status: number | null = null,
  now: number = Date.now(),
): void {
  stmts(db).retry.run(reason, status, nextAttemptAt, now, id);
}

/** Gives up on an item: state dead, with its reason. */
export function markDead(
  db: Database,
  id: number,
  reason: string,
  status: number | null = null,
  now: number = Date.now(),
): void {
  stmts(db).dead.run(reason, status, now, id);
}

/** Per-destination counts, plus when the oldest not-yet-delivered item was enqueued. */
export function counts(db: Database): DestinationCounts[] {
  return (stmts(db).counts.all() as DestinationCounts[]).map((r) => ({
    destination: r.destination,
    pending: Number(r.pending ?? 0),
    inFlight: Number(r.inFlight ?? 0),
    delivered: Number(r.delivered ?? 0),
    dead: Number(r.dead ?? 0),
    oldestPendingAt: r.oldestPendingAt ?? null,
  }));
}

/** Moves dead items (of one destination, or all) back to pending, due now. Returns how many. */
export function retryDead(db: Database, destination?: string, now: number = Date.now()): number {
  const s = stmts(db);
  return destination === undefined ? s.retryDeadAll.run(now).changes : s.retryDeadOne.run(now, destination).changes;
}

/**
 * Startup recovery: items left in_flight by a process that died are pending again (they will be
 * re-sent; a peer already holding them answers success or duplicate, both count as delivered).
 */
export function recoverInFlight(db: Database, destination?: string): number {
  const s = stmts(db);
  return destination === undefined ? s.recoverAll.run().changes : s.recoverOne.run(destination).changes;
}

/** Earliest next_attempt_at among pending items of `destination`, or null if none. */
export function nextDueAt(db: Database, destination: string): number | null {
  const r = stmts(db).nextDue.get(destination) as { t: number | null };
  return r.t ?? null;
}

/**
 * While a destination is unreachable, starts the give-up clock of its waiting (never attempted)
 * items too (`markWaiting`), and stops it again once the destination is back (`clearWaiting`).
 */
export function markWaitingFailed(db: Database, destination: string, now: number = Date.now()): void {
  stmts(db).markWaiting.run(now, destination);
}
export function clearWaitingFailed(db: Database, destination: string): void {
  stmts(db).clearWaiting.run(destination);
}

/** One item by id (for tests and the status command). */
export function getItem(db: Database, id: number): QueueItem | undefined {
  const r = stmts(db).byId.get(id) as Row | undefined;
  return r ? toItem(r) : undefined;
}

/** Items of a destination in a given state (for status/inspection; bounded by `limit`). */
