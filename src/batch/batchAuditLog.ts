// The audit log of a batch run (src/audit/auditLog.ts has its columns). Each row is written to
// the file as soon as its input file is done, so a run that is interrupted, or killed, keeps the
// row of every file it wrote; when the run ends (or stops on a signal) the file is rewritten in
// walk order (walk.ts compareWalkOrder), since the workers finish files in any order.
import fs from 'node:fs';
import { AUDIT_HEADER_LINE, createAuditLogFile, formatAuditRow, type AuditRow } from '../audit/auditLog.js';
import { describeSystemError } from '../errors.js';
import { writeFileAtomicSync, writevAll } from '../io/durableWrite.js';
import { compareWalkOrder } from './walk.js';

/**
 * A batch run's audit CSV (see above): rows written as files finish, rewritten in walk order at the end. Key
 * material: `logDir` must be outside the output tree. Methods throw an Error naming the log and the cause in words
 * ("the disk is full") when it cannot be written.
 */
export class BatchAuditLog {
  /** The log's path: `<logDir>/deid_log_<YYYYMMDD_HHMMSS>.csv`. */
  readonly file: string;
  private fd: number | null;
  private readonly rows: { sourcePath: string; line: string }[] = [];
  private inOrder = true;
  /** Rows buffered, not yet written (buffer, flush). */
  private pending: string[] = [];

  /** Creates the log (mode 0600) with its header; throws an Error naming `logDir` and the cause in words when it cannot. */
  constructor(logDir: string, now = new Date()) {
    try {
      ({ file: this.file, fd: this.fd } = createAuditLogFile(logDir, now));
    } catch (e) {
      throw new Error(`cannot create the audit log in ${logDir}: ${describeSystemError(e)}`);
    }
  }

  /** How many rows were written. */
  get rowCount(): number {
    return this.rows.length;
  }

  /** Appends one row to the file now (one write: a killed process keeps the rows before it). */
  write(row: AuditRow): void {
    this.buffer(row);
    this.flush();
  }

  /**
   * Adds one row to write at the next `flush` (the run flushes after each batch of results a
   * worker sends: one write for several rows, before their resume journal lines).
   */
  buffer(row: AuditRow): void {
    if (this.fd === null) throw new Error('audit log closed');
    const line = formatAuditRow(row);
    const last = this.rows[this.rows.length - 1];
    if (last && compareWalkOrder(last.sourcePath, row.sourcePath) > 0) this.inOrder = false;
    this.rows.push({ sourcePath: row.sourcePath, line });
    this.pending.push(line);
  }

  /** Writes the buffered rows (one write). */
  flush(): void {
    if (this.fd === null || this.pending.length === 0) return;
    try {
      writevAll(this.fd, [Buffer.from(this.pending.join(''))]);
    } catch (e) {
      throw this.cannotWrite(e);
    }
    this.pending = [];
  }

  /** Closes the file, rewritten in walk order (atomically) when rows came out of order. */
  close(): void {
    if (this.fd === null) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = null;
    if (this.inOrder) return;
    this.rows.sort((a, b) => compareWalkOrder(a.sourcePath, b.sourcePath));
    const body = Buffer.from(AUDIT_HEADER_LINE + this.rows.map((r) => r.line).join(''));
    try {
      writeFileAtomicSync(this.file, body, 0o600);
    } catch (e) {
      // Every row is in the file already, in the order the files finished.
      throw new Error(
        `cannot sort the audit log ${this.file} in walk order: ${describeSystemError(e)} (its rows are all there)`,
      );
    }
  }

  /** A write that failed (a full disk), in words naming the log: the run stops, since a file without its row is lost to the key holder. */
  private cannotWrite(e: unknown): Error {
    return new Error(`cannot write the audit log ${this.file}: ${describeSystemError(e)}`);
  }
}
