// Durable project state in SQLite: the UID secret and the session indices ({researchId}_{n}).
//
// This database is KEY MATERIAL: the secret makes UID remapping reproducible, and the session keys
// contain accession numbers / Study Instance UIDs / source folder names. Keep it outside the
// output tree; it is created with mode 0600 in a 0700 directory.
//
// Concurrency: several processes (node + batch runs) may share one file. WAL mode, a 10 s busy
// timeout and BEGIN IMMEDIATE write transactions serialise every read-modify-write, so indices are
// unique and gap-free per research ID and all processes agree on one secret.
//
// Keep this module free of local imports (node builtins and better-sqlite3 only): the concurrency
// test transpiles it alone and runs it in child processes.

import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { migrate } from './migrations.js';

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

export class StateDb {
  readonly db: Database.Database;
  private secret: Buffer | null = null;

  private readonly stmtGet: Database.Statement<[string, string], { n: number }>;
  private readonly stmtGetAlias: Database.Statement<[string, string], { n: number }>;
  private readonly stmtAlias: Database.Statement<[string, string, number]>;
  private readonly stmtMax: Database.Statement<[string], { m: number | null }>;
  private readonly stmtInsert: Database.Statement<[string, string, number]>;

  private constructor(db: Database.Database) {
    this.db = db;
    this.stmtGet = db.prepare('SELECT n FROM session_index WHERE research_id = ? AND key = ?');
    this.stmtGetAlias = db.prepare('SELECT n FROM session_alias WHERE research_id = ? AND key = ?');
    this.stmtAlias = db.prepare('INSERT OR IGNORE INTO session_alias (research_id, key, n) VALUES (?, ?, ?)');
    this.stmtMax = db.prepare('SELECT MAX(n) AS m FROM session_index WHERE research_id = ?');
    this.stmtInsert = db.prepare('INSERT INTO session_index (research_id, key, n) VALUES (?, ?, ?)');
  }

  /**
   * Opens (creating if needed) the state database: parent directories, WAL mode, busy_timeout
   * 10000, synchronous=FULL, schema migrated to STATE_SCHEMA_VERSION. Throws if the file was
   * written by a newer schema version.
   */
  static open(file: string): StateDb {
    if (file !== ':memory:') {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600)); // private before any content
    }
    const db = new Database(file);
    try {
      db.pragma('busy_timeout = 10000');
      retryBusy(() => db.pragma('journal_mode = WAL'));
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      retryBusy(() =>
        db
          .transaction(() => {
            migrate(db, file);
          })
          .immediate(),
      );
      return new StateDb(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * The project's 32-byte UID secret: created once (inside an IMMEDIATE transaction, so processes
   * opening a new database at the same time agree) and kept forever.
   */
  uidSecret(): Buffer {
    if (this.secret) return Buffer.from(this.secret);
    const get = this.db.prepare<[string], { value: Buffer }>('SELECT value FROM meta WHERE key = ?');
    const secret = this.db
      .transaction((): Buffer => {
        const row = get.get(UID_SECRET_KEY);
        if (row) return Buffer.from(row.value);
        const fresh = randomBytes(UID_SECRET_BYTES);
        this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run(UID_SECRET_KEY, fresh);
        return fresh;
      })
      .immediate();
    if (secret.length !== UID_SECRET_BYTES) {
      throw new Error(`state database: UID secret has ${secret.length} bytes, expected ${UID_SECRET_BYTES}`);
    }
    this.secret = secret;
    return Buffer.from(secret);
  }

  /**
   * The session index for (researchId, key): the existing one, or the next free number
   * (max + 1, starting at 1) for that research ID, assigned in one BEGIN IMMEDIATE transaction.
   */
  sessionIndex(researchId: string, key: string): number {
    return this.sessionIndices(researchId, [key]).get(key)!;
  }

  /**
   * Batch form: every key gets its existing index; keys not known yet get the next free numbers in
   * the ORDER GIVEN (callers pass alphabetical order). Duplicate keys are allowed and get one
   * index. One BEGIN IMMEDIATE transaction.
   *
   * `sameAs` maps a key to another key naming the same session (a batch session folder to the
   * study found in it): when the key is not known yet but the other one is (the node numbered
   * that study first), the key is recorded as an alias of that number instead of taking a new one.
   */
  sessionIndices(researchId: string, keys: string[], sameAs?: ReadonlyMap<string, string>): Map<string, number> {
    if (researchId === '') throw new Error('sessionIndices: empty research ID');
    return this.db
      .transaction((): Map<string, number> => {
        const out = new Map<string, number>();
        let next: number | null = null;
        for (const key of keys) {
          if (out.has(key)) continue;
          const n = this.knownSessionIndex(researchId, key);
          if (n !== undefined) {
            out.set(key, n);
            continue;
          }
          const other = sameAs?.get(key);
          const numbered = other === undefined ? undefined : this.knownSessionIndex(researchId, other);
          if (numbered !== undefined) {
            this.stmtAlias.run(researchId, key, numbered);
            out.set(key, numbered);
            continue;
          }
          if (next === null) next = (this.stmtMax.get(researchId)?.m ?? 0) + 1;
          this.stmtInsert.run(researchId, key, next);
          out.set(key, next);
          next++;
        }
        return out;
      })
      .immediate();
  }

  /** The index already given to (researchId, key), directly or as an alias; undefined if none. */
  knownSessionIndex(researchId: string, key: string): number | undefined {
    return (this.stmtGet.get(researchId, key) ?? this.stmtGetAlias.get(researchId, key))?.n;
  }

  /**
   * Records that `key` names session `n` of `researchId` as well (e.g. the study a batch session
   * folder holds), unless the key already has a number. One transaction for all links.
   */
  linkSessionKeys(researchId: string, links: Iterable<readonly [key: string, n: number]>): void {
    this.db
      .transaction(() => {
        for (const [key, n] of links) {
          if (!this.stmtGet.get(researchId, key)) this.stmtAlias.run(researchId, key, n);
        }
      })
      .immediate();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
