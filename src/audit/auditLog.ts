// The audit log: one CSV row per input file (batch) or received instance (node). It maps source
// paths and original UIDs to research IDs, so it is key material: it lives outside the output
// tree.
import fs from 'node:fs';
import path from 'node:path';

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

export function csvField(v: string): string {
  return /[",\r\n]/.test(v) || /^\s|\s$/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

export function auditLogName(d: Date): string {
  return `deid_log_${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}_${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}.csv`;
}

/** The header line of an audit log (with the byte order mark Excel needs to read UTF-8). */
export const AUDIT_HEADER_LINE = '\uFEFF' + AUDIT_HEADER.join(',') + '\r\n';

/** One row as a CSV line (CRLF-terminated). */
export function formatAuditRow(row: AuditRow): string {
  const fields = [
    row.sourcePath,
    row.status,
    row.matchedBy ?? '',
    row.researchId ?? '',
    row.newAccession ?? '',
    row.dayOffset === undefined ? '' : String(row.dayOffset),
    row.outputPath ?? '',
    row.message ?? '',
  ];
  return fields.map(csvField).join(',') + '\r\n';
}

/**
 * Creates a new audit log file in `logDir` (mode 0600, `deid_log_<time>.csv`, `_2`... when the
 * name is taken) holding the header line; returns its path and open descriptor.
 */
export function createAuditLogFile(logDir: string, now = new Date()): { file: string; fd: number } {
  fs.mkdirSync(logDir, { recursive: true });
  const base = auditLogName(now);
  let file = path.join(logDir, base);
  for (let i = 2; fs.existsSync(file); i++) file = path.join(logDir, base.replace(/\.csv$/, `_${i}.csv`));
  const fd = fs.openSync(file, 'wx', 0o600);
  fs.writeSync(fd, AUDIT_HEADER_LINE);
  return { file, fd };
}

export class AuditLog {
  readonly file: string;
  private fd: number;
  private buffer: string[] = [];

  constructor(logDir: string, now = new Date()) {
    ({ file: this.file, fd: this.fd } = createAuditLogFile(logDir, now));
  }

  write(row: AuditRow): void {
    this.buffer.push(formatAuditRow(row));
    if (this.buffer.length >= 256) this.flush();
  }

  flush(): void {
    if (this.buffer.length === 0) return;
    fs.writeSync(this.fd, this.buffer.join(''));
    this.buffer = [];
  }

  close(): void {
    this.flush();
    fs.closeSync(this.fd);
  }
}
