// The audit log: one CSV row per input file (batch) or received instance (node). It maps source
// paths and original UIDs to research IDs, so it is key material: it lives outside the output
// tree.
import fs from 'node:fs';
import path from 'node:path';
import { mkdirRecursiveSync } from '../io/durableWrite.js';

/**
 * What happened to one input: written (`ok`), no mapping row, not DICOM, refused/failed
 * (`error`), a DICOMDIR (a media index, left out), held for its burned-in annotation (`held`),
 * held because its study belongs to another research patient (`conflict`), held by the leak
 * guard (`leak-guard`: an identifier of the source was found in what would have been written).
 */
export type FileStatus = 'ok' | 'no-mapping' | 'not-dicom' | 'error' | 'dicomdir' | 'held' | 'conflict' | 'leak-guard';

/** A count of 0 for every FileStatus (a run's and a dry run's tallies start here). */
export function zeroFileCounts(): Record<FileStatus, number> {
  return { ok: 0, 'no-mapping': 0, 'not-dicom': 0, error: 0, dicomdir: 0, held: 0, conflict: 0, 'leak-guard': 0 };
}

export interface AuditRow {
  sourcePath: string;
  status: FileStatus;
  matchedBy?: string;
  researchId?: string;
  newAccession?: string;
  dayOffset?: number;
  outputPath?: string;
  message?: string;
}

export const AUDIT_HEADER = [
  'source_path',
  'status',
  'matched_by',
  'research_id',
  'new_accession',
  'day_offset',
  'output_path',
  'message',
];

/**
 * One CSV field (RFC 4180): quoted, with inner quotes doubled, when it holds a quote, comma, CR or LF, or
 * starts or ends with white space; otherwise as it is.
 */
export function csvField(v: string): string {
  return /[",\r\n]/.test(v) || /^\s|\s$/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** The audit file's name for `d` in local time: `deid_log_YYYYMMDD_HHMMSS.csv`. */
export function auditLogName(d: Date): string {
  return `deid_log_${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}_${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}.csv`;
}

/** The header line of an audit log (with the byte order mark Excel needs to read UTF-8). */
export const AUDIT_HEADER_LINE = '\uFEFF' + AUDIT_HEADER.join(',') + '\r\n';

/** One row as a CSV line (CRLF-terminated). */
export function formatAuditRow(row: AuditRow): string {
  const fields = [
    asText(row.sourcePath),
    row.status,
    row.matchedBy ?? '',
    asText(row.researchId ?? ''),
    asText(row.newAccession ?? ''),
    row.dayOffset === undefined ? '' : String(row.dayOffset),
    asText(row.outputPath ?? ''),
    asText(row.message ?? ''),
  ];
  return fields.map(csvField).join(',') + '\r\n';
}

/**
 * A text value Excel and LibreOffice will not run as a formula when they open the log: one that
 * starts with =, +, -, @ (a folder named `=HYPERLINK(...)`) gets a leading apostrophe (OWASP, CSV
 * injection). Numbers are left alone.
 */
function asText(v: string): string {
  return /^[=+\-@]/.test(v) && !/^[-+]?\d+(\.\d+)?$/.test(v) ? `'${v}` : v;
}

/**
 * Creates a new audit log file in `logDir` (mode 0600, `deid_log_<time>.csv`, `_2`... when the
 * name is taken) holding the header line; returns its path and open descriptor.
 */
export function createAuditLogFile(logDir: string, now = new Date()): { file: string; fd: number } {
  mkdirRecursiveSync(logDir);
  const base = auditLogName(now);
  // Exclusive creation, the next name when taken: two runs starting in the same second each get
  // a file of their own (checking first, then creating, would leave a gap between them).
  for (let i = 1; ; i++) {
    const file = path.join(logDir, i === 1 ? base : base.replace(/\.csv$/, `_${i}.csv`));
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
    fs.writeSync(fd, AUDIT_HEADER_LINE);
    return { file, fd };
  }
}

/**
 * One audit CSV. `lazy`: the file is created at the first row (the node: a start that fails, or
 * a run that files nothing, leaves no empty audit file); otherwise at once (batch names it in
 * its summary).
 */
export class AuditLog {
  private current: string | undefined;
  private fd: number | undefined;
  private buffer: string[] = [];

  /**
   * `logDir`: the folder of audit files (created when missing); `now`: the time in the file's name.
   * Unless `lazy`, creates the file at once (createAuditLogFile): throws its system error (EACCES,
   * ENOSPC...).
   */
  constructor(
    private readonly logDir: string,
    private readonly now = new Date(),
    opts: { lazy?: boolean } = {},
  ) {
    if (!opts.lazy) this.open();
  }

  /** The CSV file (created now if it was not yet). */
  get file(): string {
    this.open();
    return this.current!;
  }

  private open(): number {
    if (this.fd !== undefined) return this.fd;
    ({ file: this.current, fd: this.fd } = createAuditLogFile(this.logDir, this.now));
    return this.fd;
  }

  /** Buffers one row; every 256 rows are written out (flush). Throws the write's system error. */
  write(row: AuditRow): void {
    this.buffer.push(formatAuditRow(row));
    if (this.buffer.length >= 256) this.flush();
  }

  /**
   * Writes the buffered rows (creating the file if it was lazy); synchronous, not fsync'd. Throws the system
   * error of the creation or write.
   */
  flush(): void {
    if (this.buffer.length === 0) return;
    fs.writeSync(this.open(), this.buffer.join(''));
    this.buffer = [];
  }

  /** Flushes and closes the file; closing again does nothing. */
  close(): void {
    this.flush();
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
