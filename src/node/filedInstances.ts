// What the node has filed: one row per de-identified instance (key material: it links original
// and new SOP Instance UIDs). Written in the same transaction as the forward enqueue.
import type { Database } from 'better-sqlite3';

export function ensureFiledSchema(db: Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS filed_instance (
      new_sop_uid      TEXT PRIMARY KEY,
      original_sop_uid TEXT NOT NULL,
      research_id      TEXT NOT NULL,
      session_n        INTEGER NOT NULL,
      output_path      TEXT NOT NULL,
      calling_aet      TEXT NOT NULL,
      filed_at         INTEGER NOT NULL
    );
  `);
}

export interface FiledInstance {
  newSopUid: string;
  originalSopUid: string;
  researchId: string;
  sessionN: number;
  outputPath: string;
  callingAet: string;
}

/** Idempotent: filing the same instance again (a re-send or a replay) updates the row. */
export function recordFiled(db: Database, f: FiledInstance, now = Date.now()): void {
  db.prepare(
    `INSERT INTO filed_instance (new_sop_uid, original_sop_uid, research_id, session_n, output_path, calling_aet, filed_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT(new_sop_uid) DO UPDATE SET output_path = excluded.output_path, filed_at = excluded.filed_at`,
  ).run(f.newSopUid, f.originalSopUid, f.researchId, f.sessionN, f.outputPath, f.callingAet, now);
}
