// Parses and validates the researcher's mapping CSV (MRN, Accession -> research ID + dates).
//
// Columns: column 1 is the MRN and column 2 the Accession whatever their headers say; the others
// are found by header name (case-insensitive, trimmed; spaces/hyphens count as underscores):
// New_Patient_ID (required), Surgery_Date (required), Anchor_Date (optional), Notes (optional).
// Accepts what Excel writes: UTF-8 BOM, CRLF/LF/CR, quoted fields with commas, doubled quotes and
// line breaks, blank rows and trailing empty lines (rows whose cells are all empty are skipped).
//
// Errors are MappingError with ONE line: `line N: <problem> "<value>"`, N being the physical line
// (1-based, header = line 1 normally) where the offending record starts. Pass `source` (e.g. the
// file name) to get `mapping.csv line N: ...`.

import { parse } from 'csv-parse/sync';
import { MappingError, type MappingRow } from '../types.js';
import { daysBetweenIso, isValidIsoDate } from '../dates.js';

export const DEFAULT_ANCHOR_DATE = '2024-06-15';

/** Longest research ID: the DICOM LO value length limit. */
export const MAX_RESEARCH_ID_LENGTH = 64;

/**
 * "No information": empty (after trimming) or containing a run of 5 or more underscores (the
 * `_____` placeholders people type into spreadsheets). Used for CSV cells and DICOM values alike.
 */
export function isNoInformation(value: string | null | undefined): boolean {
  if (value == null) return true;
  const t = value.replace(/^[\s\0]+|[\s\0]+$/g, '');
  return t === '' || /_{5,}/.test(t);
}

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;

/**
 * Whether `id` is usable as a folder name on any OS and as a DICOM LO value: 1..64 characters
 * from letters, digits, `_`, `-`, `.`; no leading or trailing `.` (so never `.` or `..`); not a
 * Windows device name (CON, NUL, COM1, ...).
 */
export function isValidResearchId(id: string): boolean {
  return (
    id.length >= 1 &&
    id.length <= MAX_RESEARCH_ID_LENGTH &&
    /^[A-Za-z0-9_.-]+$/.test(id) &&
    !id.startsWith('.') &&
    !id.endsWith('.') &&
    !WINDOWS_RESERVED.test(id)
  );
}

/** A value quoted for an error message: JSON escaping keeps the message on one line. */
function q(value: string): string {
  const v = value.length > 80 ? value.slice(0, 77) + '...' : value;
  return JSON.stringify(v);
}

function normaliseHeader(h: string): string {
  return h
    .replace(/^[\s\0\uFEFF]+|[\s\0]+$/g, '')
    .toLowerCase()
    .replace(/[\s-]+/g, '_');
}

/** Physical line number (1-based) of byte `offset` in `buf`: counts CRLF, LF and lone CR breaks. */
function makeLineCounter(buf: Buffer): (offset: number) => number {
  let pos = 0;
  let line = 1;
  return (offset: number) => {
    // Offsets are requested in increasing order, so count incrementally.
    for (; pos < offset && pos < buf.length; pos++) {
      const c = buf[pos];
      if (c === 0x0a) line++;
      else if (c === 0x0d && buf[pos + 1] !== 0x0a) line++;
    }
    return line;
  };
}

interface RawRecord {
  cells: string[];
  line: number;
}

function readRecords(text: string, fail: (line: number, msg: string) => never): RawRecord[] {
  const buf = Buffer.from(text, 'utf8');
  let parsed: { record: string[]; info: { bytes: number } }[];
  try {
    parsed = parse(buf, {
      bom: true,
      info: true,
      relax_column_count: true,
      skip_empty_lines: false,
    }) as { record: string[]; info: { bytes: number } }[];
  } catch (err) {
    const e = err as { lines?: number; message?: string };
    const msg = String(e.message ?? err).split(/\r?\n/)[0];
    fail(typeof e.lines === 'number' ? e.lines : 1, `malformed CSV: ${msg}`);
  }
  const lineAt = makeLineCounter(buf);
  const out: RawRecord[] = [];
  let start = 0;
  for (const { record, info } of parsed) {
    // The record starts where the previous one ended (info.bytes includes the record delimiter).
    let s = start;
    if (s === 0 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) s = 3;
    out.push({ cells: record, line: lineAt(s) });
    start = info.bytes;
  }
  return out;
}

/**
 * Parses and validates the mapping CSV text. Returns one MappingRow per non-empty data row, in
 * file order. Throws MappingError (one line naming the line number and the value) on any problem.
 */
export function parseMappingCsv(text: string, source?: string): MappingRow[] {
  const prefix = source ? `${source} line` : 'line';
  const fail = (line: number, msg: string): never => {
    throw new MappingError(`${prefix} ${line}: ${msg}`);
  };

  const records = readRecords(text, fail).filter((r) => r.cells.some((c) => c.trim() !== ''));
  const header = records.shift();
  if (!header) fail(1, 'the file is empty; expected a header row (MRN, Accession, New_Patient_ID, Surgery_Date, ...)');
  const h = header!;

  // Header: drop trailing empty header cells (Excel sometimes writes a trailing comma).
  const names = h.cells.map(normaliseHeader);
  while (names.length > 0 && names[names.length - 1] === '') names.pop();
  if (names.length < 2) {
    fail(
      h.line,
      `the header has ${names.length} column(s); need at least 2 (MRN, Accession) plus New_Patient_ID and Surgery_Date`,
    );
  }
  const find = (name: string, required: boolean): number => {
    const idx: number[] = [];
    names.forEach((n, i) => {
      if (i >= 2 && n === name) idx.push(i);
    });
    if (idx.length > 1) fail(h.line, `column ${q(name)} appears ${idx.length} times in the header`);
    if (idx.length === 0 && required) {
      fail(h.line, `missing required column ${q(name)} (header: ${q(h.cells.join(','))})`);
    }
    return idx.length ? idx[0]! : -1;
  };
  const colId = find('new_patient_id', true);
  const colSurgery = find('surgery_date', true);
  const colAnchor = find('anchor_date', false);
  const colNotes = find('notes', false);

  const rows: MappingRow[] = [];
  const byMrn = new Map<string, { researchId: string; line: number }>();
  const byAcc = new Map<string, { researchId: string; line: number }>();

  for (const { cells, line } of records) {
    const cell = (i: number): string => (i >= 0 && i < cells.length ? cells[i]!.trim() : '');
    for (let i = names.length; i < cells.length; i++) {
      if (cells[i]!.trim() !== '') {
        fail(line, `value ${q(cells[i]!.trim())} in column ${i + 1}, but the header has only ${names.length} columns`);
      }
    }

    const mrnRaw = cell(0);
    const accRaw = cell(1);
    const mrn = isNoInformation(mrnRaw) ? null : mrnRaw;
    const accession = isNoInformation(accRaw) ? null : accRaw;
    if (mrn === null && accession === null) {
      fail(
        line,
        `both MRN ${q(mrnRaw)} and Accession ${q(accRaw)} are empty/no information, so the row can never match`,
      );
    }

    const researchId = cell(colId);
    if (researchId === '') fail(line, `New_Patient_ID is empty`);
    if (!isValidResearchId(researchId)) {
      fail(
        line,
        `New_Patient_ID ${q(researchId)} is not allowed: use 1-${MAX_RESEARCH_ID_LENGTH} letters, digits, "_", "-" or "." (not first or last)`,
      );
    }
    if (researchId === mrn || researchId === accession) {
      fail(
        line,
        `New_Patient_ID ${q(researchId)} equals the row's ${researchId === mrn ? 'MRN' : 'Accession'}; it must not be an identifier`,
      );
    }

    const surgeryDate = cell(colSurgery);
    if (surgeryDate === '') fail(line, `Surgery_Date is empty (expected YYYY-MM-DD)`);
    if (!isValidIsoDate(surgeryDate)) fail(line, `Surgery_Date ${q(surgeryDate)} is not a valid YYYY-MM-DD date`);

    const anchorRaw = cell(colAnchor);
    const anchorDate = anchorRaw === '' ? DEFAULT_ANCHOR_DATE : anchorRaw;
    if (!isValidIsoDate(anchorDate)) fail(line, `Anchor_Date ${q(anchorDate)} is not a valid YYYY-MM-DD date`);

    if (mrn !== null) {
      const prev = byMrn.get(mrn);
      if (prev && prev.researchId !== researchId) {
        fail(
          line,
          `MRN ${q(mrn)} is mapped to ${q(researchId)} but line ${prev.line} maps it to ${q(prev.researchId)}`,
        );
      }
      if (!prev) byMrn.set(mrn, { researchId, line });
    }
    if (accession !== null) {
      const prev = byAcc.get(accession);
      if (prev && prev.researchId !== researchId) {
        fail(
          line,
          `Accession ${q(accession)} is mapped to ${q(researchId)} but line ${prev.line} maps it to ${q(prev.researchId)}`,
        );
      }
      if (!prev) byAcc.set(accession, { researchId, line });
    }

    rows.push({
      line,
      mrn,
      accession,
      researchId,
      surgeryDate,
      anchorDate,
      dayOffset: daysBetweenIso(surgeryDate, anchorDate),
      notes: cell(colNotes),
    });
  }
  return rows;
}
