// The SQLite state's schema, as versioned migrations (PRAGMA user_version = the number applied).
// A migration is never edited once released: a change is a new one appended to the list.
//
// Before v3, the filed_instance and forward_queue tables were created outside this module by
// whichever entry point ran (`ensure*Schema`), so a v2 database may already hold them: v3 uses
// CREATE ... IF NOT EXISTS with exactly their old definitions, and such databases keep their rows.
import type Database from 'better-sqlite3';
import { StateSchemaError } from './stateStore.js';

/** Migrations: index i upgrades user_version i -> i + 1. */
const MIGRATIONS: readonly string[] = [
  // v1: the UID secret (meta) and session numbers.
  `
  CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
  );
  CREATE TABLE IF NOT EXISTS session_index (
    research_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    n           INTEGER NOT NULL CHECK (n >= 1),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (research_id, key),
    UNIQUE (research_id, n)
  );
  `,
  // v2: other keys of an already numbered session (batch mode links the studies it found in a
  // session folder, so the node later gives a re-sent study the same number).
  `
  CREATE TABLE IF NOT EXISTS session_alias (
    research_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (research_id, key)
  );
  `,
  // v3: what the node filed, and the forward queue (one row per file and destination name).
  `
  CREATE TABLE IF NOT EXISTS filed_instance (
    new_sop_uid      TEXT PRIMARY KEY,
    original_sop_uid TEXT NOT NULL,
    research_id      TEXT NOT NULL,
    session_n        INTEGER NOT NULL,
    output_path      TEXT NOT NULL,
    calling_aet      TEXT NOT NULL,
    filed_at         INTEGER NOT NULL
  );
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
  `,
  // v4: which research patient each study belongs to (a study has one patient, PS3.3 C.7.2.1),
  // keyed by its de-identified Study Instance UID.
  `
  CREATE TABLE study_owner (
    study_uid   TEXT PRIMARY KEY,
    research_id TEXT NOT NULL,
    claimed_at  INTEGER NOT NULL
  );
  `,
  // v5: retrieve jobs (issue 17). filed_instance learns each instance's original study, so a job
  // counts what arrived per study (older rows stay NULL: unknown).
  `
  ALTER TABLE filed_instance ADD COLUMN original_study_uid TEXT;
  CREATE INDEX filed_instance_study ON filed_instance(original_study_uid);
  CREATE TABLE retrieve_job (
    id               INTEGER PRIMARY KEY,
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending','running','paused','done','failed','cancelled')),
    pacs             TEXT    NOT NULL,
    move_destination TEXT    NOT NULL,
    csv_path         TEXT    NOT NULL,
    csv_sha256       TEXT    NOT NULL,
    plan_key         TEXT    NOT NULL,
    params           TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    runner           TEXT,
    heartbeat_at     INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    message          TEXT,
    report_path      TEXT
  );
  CREATE TABLE retrieve_row (
    job_id       INTEGER NOT NULL REFERENCES retrieve_job(id) ON DELETE CASCADE,
    line         INTEGER NOT NULL,
    research_id  TEXT    NOT NULL,
    mrn          TEXT,
    accession    TEXT,
    surgery_date TEXT    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending','found','not_found','ambiguous','query_incomplete','query_failed')),
    matched_by   TEXT,
    message      TEXT,
    updated_at   INTEGER,
    PRIMARY KEY (job_id, line)
  );
  CREATE TABLE retrieve_study (
    job_id      INTEGER NOT NULL REFERENCES retrieve_job(id) ON DELETE CASCADE,
    study_uid   TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    line        INTEGER NOT NULL,
    study_date  TEXT    NOT NULL,
    modalities  TEXT    NOT NULL,
    expected    INTEGER,
    filed       INTEGER NOT NULL DEFAULT 0,
    status      TEXT    NOT NULL DEFAULT 'planned'
                CHECK (status IN ('planned','moving','complete','incomplete','failed','already_filed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    completed   INTEGER,
    failed      INTEGER,
    warning     INTEGER,
    message     TEXT,
    started_at  INTEGER,
    finished_at INTEGER,
    updated_at  INTEGER,
    PRIMARY KEY (job_id, study_uid)
  );
  CREATE TABLE retrieve_row_study (
    job_id    INTEGER NOT NULL,
    line      INTEGER NOT NULL,
    study_uid TEXT    NOT NULL,
    PRIMARY KEY (job_id, line, study_uid),
    FOREIGN KEY (job_id, line) REFERENCES retrieve_row(job_id, line) ON DELETE CASCADE,
    FOREIGN KEY (job_id, study_uid) REFERENCES retrieve_study(job_id, study_uid) ON DELETE CASCADE
  );
  `,
];

/** The schema version this code writes (PRAGMA user_version). */
export const STATE_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings `db` to STATE_SCHEMA_VERSION, inside the caller's (exclusive) transaction so that
 * processes opening one database at once migrate it once. Throws StateSchemaError (one line
 * naming `location`) when the database was written by a newer version.
 */
export function migrate(db: Database.Database, location: string): void {
  let v = db.pragma('user_version', { simple: true }) as number;
  if (v > STATE_SCHEMA_VERSION) {
    throw new StateSchemaError(
      `state database ${location} has schema version ${v}, newer than this dicom-deid knows ` +
        `(${STATE_SCHEMA_VERSION}): use the dicom-deid version that wrote it, or a newer one`,
    );
  }
  for (; v < STATE_SCHEMA_VERSION; v++) {
    db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${v + 1}`);
  }
}
