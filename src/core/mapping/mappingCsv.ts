// Parses and validates the researcher's mapping CSV (MRN, Accession -> research ID + dates).
//
// Bytes in (see csvEncoding.ts for the encodings), rows and every problem out: nothing here stops
// at the first bad line, so a researcher fixes the whole file in one go.
//
// Columns: column 1 is the MRN and column 2 the Accession whatever their headers say; the others
// are found by header name, ignoring case, spaces, hyphens and underscores (`Surgery Date`,
// `surgery-date` and `SURGERY_DATE` are Surgery_Date): New_Patient_ID (required), Surgery_Date
// (required), Anchor_Date (optional), Notes (optional). Messages quote headers as written.
// Separators: `,`, `;` (European Excel) or tab (Excel's "Unicode text"), found from the header.
// Accepts what Excel writes: CRLF/LF/CR, quoted fields with separators, doubled quotes and line
// breaks, blank rows and trailing empty lines (rows whose cells are all empty are skipped).
//
// Problems name the physical line (1-based, header = line 1 normally) where the record starts.

import { parse } from 'csv-parse/sync';
import { ACCESSION_DISTINCT_LENGTH, firstAccessionCollision, newAccessionNumber } from '../accession.js';
import { daysBetweenIso, isValidIsoDate } from '../dates.js';
import type { MappingRow } from '../types.js';
import { decodeCsvBytes, SAVE_AS_CSV_UTF8, type CsvEncoding } from './csvEncoding.js';
import { mappingErrorOf, v, words, type CsvProblem, type Severity } from './csvProblem.js';
import { notesIdentifierProblems, type NotesRow } from './notesIdentifiers.js';

export const DEFAULT_ANCHOR_DATE = '2024-06-15';

/**
 * The years a Surgery_Date or Anchor_Date may fall in: outside them a date is a typo, and the
 * shift (up to 200 years within them) would take study dates beyond DICOM's years 0000-9999.
 */
export const MIN_YEAR = 1900;
export const MAX_YEAR = 2100;

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

/** An identifier Excel turned into a number and displays in scientific notation (`1.23457E+11`). */
export function isExcelScientific(value: string): boolean {
  return /^[+-]?\d+([.,]\d+)?E[+-]?\d+$/i.test(value);
}

/** An English month name or its abbreviation, as Excel displays it (`Mar`, `March`, `Sept`). */
const MONTH_WORD = '(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\\.?';
/** Excel's date displays with a month name: `14-Mar-25`, `14-Mar-2025`, `14 March 2025`, `Mar 14, 2025`. */
const EXCEL_NAMED_DATE = new RegExp(
  `^(?:\\d{1,2}[- ]${MONTH_WORD}[- ]\\d{2,4}|${MONTH_WORD}[- ]\\d{1,2},? \\d{2,4}|${MONTH_WORD}[- ]\\d{2,4})$`,
  'i',
);

/**
 * A date Excel rewrote in the computer's own format (`10.03.2023`, `3/10/2023`, `14-Mar-25`,
 * `Mar 14, 2025`) or as a serial (`45000`).
 */
function looksLikeExcelDate(value: string): boolean {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return false; // the right form, just not a real date
  return /^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$/.test(value) || /^\d{5}$/.test(value) || EXCEL_NAMED_DATE.test(value);
}

export type CsvDelimiter = ',' | ';' | '\t';

/** The validated mapping CSV: its rows (only when there is no error) and every problem found. */
export interface MappingCsv {
  rows: MappingRow[];
  /** Errors and warnings, in line order (whole-file problems, line 0, first). */
  problems: CsvProblem[];
  /** How the bytes were read (null when they could not be). */
  encoding: { name: CsvEncoding; bom: boolean; guessed: boolean } | null;
  delimiter: CsvDelimiter | null;
}

/** The documented name of each column found by header, and its normalised form. */
const COLUMNS = {
  researchId: 'New_Patient_ID',
  surgeryDate: 'Surgery_Date',
  anchorDate: 'Anchor_Date',
  notes: 'Notes',
} as const;
type Column = keyof typeof COLUMNS;

/** Case, spaces, hyphens and underscores ignored: `Surgery Date` = `surgery-date` = `Surgery_Date`. */
function normaliseHeader(h: string): string {
  return h.replace(/[\s\0\uFEFF_-]+/g, '').toLowerCase();
}

const KNOWN_HEADERS = new Set(Object.values(COLUMNS).map(normaliseHeader));

/** The cells of one line split on `delimiter` outside double quotes (enough for a header line). */
function splitLine(line: string, delimiter: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    else if (ch === delimiter && !quoted) {
      cells.push(cell);
      cell = '';
    } else cell += ch;
  }
  cells.push(cell);
  return cells;
}

/**
 * The separator of the file, from its first non-blank line: the one that splits it into the most
 * known column names, then into the most columns; a comma when nothing tells.
 */
export function detectDelimiter(text: string): CsvDelimiter {
  const first = text.split(/\r\n|\n|\r/).find((l) => l.trim() !== '') ?? '';
  let best: CsvDelimiter = ',';
  let bestScore = -1;
  for (const d of [',', ';', '\t'] as const) {
    const cells = splitLine(first, d);
    const score = cells.filter((c) => KNOWN_HEADERS.has(normaliseHeader(c))).length * 10_000 + cells.length;
    if (score > bestScore) {
      best = d;
      bestScore = score;
    }
  }
  return best;
}

/** `items` grouped by `key`, groups and items in first-seen order. */
function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

interface RawRecord {
  cells: string[];
  line: number;
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

const CSV_PARSE_WORDS: Record<string, string> = {
  CSV_QUOTE_NOT_CLOSED:
    'a quoted value that starts on this line is never closed (a missing "): the lines after it could not be checked',
  INVALID_OPENING_QUOTE:
    'a quote mark (") inside a value that is not quoted as a whole: put the whole value in quotes and double the quote marks inside it ("")',
  CSV_INVALID_CLOSING_QUOTE:
    'a quote mark (") inside a value that is not quoted as a whole: put the whole value in quotes and double the quote marks inside it ("")',
};

/**
 * The records of the text with the line each starts on; when the CSV is malformed, also the
 * problem, at the line where the record that could not be read starts (for a quote never
 * closed, the line of that opening quote), and the records before it, still checked: a bad
 * quote does not hide the problems of the lines above it. What follows it cannot be split into
 * records (an unclosed quote swallows the rest of the file), so it is not checked.
 */
function readRecords(text: string, delimiter: CsvDelimiter): { records: RawRecord[]; problem?: CsvProblem } {
  const buf = Buffer.from(text, 'utf8');
  const lineAt = makeLineCounter(buf);
  const records: RawRecord[] = [];
  let start = 0; // byte where the next record starts (context.bytes includes the record delimiter)
  try {
    parse(buf, {
      delimiter,
      relax_column_count: true,
      skip_empty_lines: false,
      on_record: (record: string[], context) => {
        records.push({ cells: record, line: lineAt(start) });
        // csv-parse 5 passes its Info here (bytes read so far), which its types leave out.
        start = (context as unknown as { bytes: number }).bytes;
        return null; // kept above, with its line
      },
    });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const known = typeof code === 'string' ? CSV_PARSE_WORDS[code] : undefined;
    const text = known ?? `malformed CSV: ${String((err as Error).message ?? err).split(/\r?\n/)[0]}`;
    const at = code === 'CSV_QUOTE_NOT_CLOSED' ? (unclosedQuoteAt(buf, start, delimiter) ?? start) : start;
    return {
      records,
      problem: {
        severity: 'error',
        line: lineAt(at),
        text,
        redacted: known ?? `malformed CSV (${typeof code === 'string' ? code : 'parse error'})`,
      },
    };
  }
  return { records };
}

/**
 * The byte offset of the quote that opens a field and is never closed, scanning the records from
 * byte `from` as csv-parse reads them (RFC 4180: a field quoted from its first character, `""`
 * inside it a quote); undefined when every quoted field from there is closed.
 */
function unclosedQuoteAt(buf: Buffer, from: number, delimiter: CsvDelimiter): number | undefined {
  const sep = delimiter.charCodeAt(0);
  let fieldStart = true;
  for (let pos = from; pos < buf.length;) {
    const c = buf[pos]!;
    if (fieldStart && c === 0x22) {
      const open = pos++;
      for (;;) {
        if (pos >= buf.length) return open;
        if (buf[pos] === 0x22) {
          if (buf[pos + 1] !== 0x22) break;
          pos++;
        }
        pos++;
      }
      pos++; // the closing quote
      fieldStart = false;
      continue;
    }
    fieldStart = c === sep || c === 0x0a || c === 0x0d;
    pos++;
  }
  return undefined;
}

/**
 * Reads and validates a mapping CSV: bytes as saved (or text already decoded). Never throws:
 * every problem is in `problems` (errors and warnings, each naming the line, the column as the
 * header spells it and the value), and `rows` holds one MappingRow per non-empty data row, in
 * file order, only when there is no error.
 */
export function checkMappingCsv(input: Uint8Array | string): MappingCsv {
  const problems: CsvProblem[] = [];
  const add = (severity: Severity, line: number, w: { text: string; redacted: string }): void => {
    problems.push({ severity, line, ...w });
  };
  const result: MappingCsv = { rows: [], problems, encoding: null, delimiter: null };
  const done = (): MappingCsv => {
    problems.sort((a, b) => a.line - b.line);
    if (problems.some((p) => p.severity === 'error')) result.rows = [];
    return result;
  };

  let text: string;
  if (typeof input === 'string') {
    text = input.replace(/^\uFEFF/, '');
  } else {
    const d = decodeCsvBytes(input);
    if ('problem' in d) {
      add('error', d.problem.line, { text: d.problem.text, redacted: d.problem.text });
      return done();
    }
    text = d.decoded.text;
    result.encoding = { name: d.decoded.encoding, bom: d.decoded.bom, guessed: d.decoded.guessed };
  }
  const delimiter = detectDelimiter(text);
  result.delimiter = delimiter;
  const read = readRecords(text, delimiter);
  if (read.problem) problems.push(read.problem);
  const records = read.records.filter((r) => r.cells.some((c) => c.trim() !== ''));
  // A malformed header: nothing below it can be read by column.
  if (read.problem && records.length === 0) return done();

  // --- The header. ---
  const header = records.shift();
  if (!header) {
    add('error', 0, {
      text: 'the file is empty; expected a header row (MRN, Accession, New_Patient_ID, Surgery_Date, ...)',
      redacted: 'the file is empty',
    });
    return done();
  }
  const written = header.cells.map((c) => c.replace(/^[\s\0\uFEFF]+|[\s\0]+$/g, ''));
  while (written.length > 0 && written[written.length - 1] === '') written.pop(); // Excel's trailing separator
  const names = written.map(normaliseHeader);
  const headerWords = written.map((w) => JSON.stringify(w)).join(', ');
  if (names.length < 2) {
    add('error', header.line, {
      text: `the header has ${names.length} column(s) (${headerWords}); it needs MRN and Accession first, then New_Patient_ID and Surgery_Date, separated by commas, semicolons or tabs`,
      redacted: `the header has ${names.length} column(s); separate the columns with commas, semicolons or tabs`,
    });
    return done();
  }
  const col = {} as Record<Column, number>;
  let headerBad = false;
  for (const key of Object.keys(COLUMNS) as Column[]) {
    const idx: number[] = [];
    names.forEach((n, i) => {
      if (i >= 2 && n === normaliseHeader(COLUMNS[key])) idx.push(i);
    });
    col[key] = idx[0] ?? -1;
    if (idx.length > 1) {
      const w = `column ${COLUMNS[key]} appears ${idx.length} times in the header (${idx.map((i) => JSON.stringify(written[i])).join(', ')}, columns ${idx.map((i) => i + 1).join(', ')}): keep one`;
      add('error', header.line, { text: w, redacted: w });
      headerBad = true;
    }
    if (idx.length === 0 && (key === 'researchId' || key === 'surgeryDate')) {
      add('error', header.line, {
        text: `the header has no ${COLUMNS[key]} column (its columns: ${headerWords}); case, spaces, hyphens and underscores in names do not matter`,
        redacted: `the header has no ${COLUMNS[key]} column`,
      });
      headerBad = true;
    }
  }
  if (headerBad) return done();
  /** The column's name as the researcher wrote it (the documented name if the cell is empty). */
  const nameOf = (i: number, documented: string): string => (written[i] ? written[i]! : documented);
  const mrnName = nameOf(0, 'MRN');
  const accName = nameOf(1, 'Accession');
  const idName = nameOf(col.researchId, COLUMNS.researchId);
  const surgeryName = nameOf(col.surgeryDate, COLUMNS.surgeryDate);
  const anchorName = col.anchorDate >= 0 ? nameOf(col.anchorDate, COLUMNS.anchorDate) : COLUMNS.anchorDate;

  // --- The rows: every problem of every row. ---
  const rows: MappingRow[] = [];
  /** Every row with a valid research ID, even one with other problems (for the accession check). */
  const idRows: { researchId: string; line: number }[] = [];
  /** Every row's identifiers and notes, even a row with other problems (for the notes check). */
  const notesRows: NotesRow[] = [];
  const byMrn = new Map<string, { researchId: string; line: number }>();
  const byAcc = new Map<string, { researchId: string; line: number }>();
  const dateHint =
    " (Excel writes dates in your computer's format: format the column as Text, or with the custom format yyyy-mm-dd, before saving)";

  for (const { cells, line } of records) {
    const cell = (i: number): string => (i >= 0 && i < cells.length ? cells[i]!.trim() : '');
    let rowOk = true;
    const fail = (w: { text: string; redacted: string }) => {
      add('error', line, w);
      rowOk = false;
    };
    for (let i = names.length; i < cells.length; i++) {
      if (cells[i]!.trim() !== '') {
        fail(words`value ${v(cells[i]!.trim())} in column ${i + 1}, but the header has only ${names.length} columns`);
      }
    }

    const mrnRaw = cell(0);
    const accRaw = cell(1);
    const mrn = isNoInformation(mrnRaw) ? null : mrnRaw;
    const accession = isNoInformation(accRaw) ? null : accRaw;
    if (mrn === null && accession === null) {
      fail(
        words`both ${mrnName} ${v(mrnRaw)} and ${accName} ${v(accRaw)} are empty or "no information", so the row can never match`,
      );
    }
    for (const [name, value] of [
      [mrnName, mrn],
      [accName, accession],
    ] as const) {
      if (value !== null && isExcelScientific(value)) {
        fail(
          words`${name} ${v(value)} is a number Excel rewrote in scientific notation, not the identifier: in Excel, format the column as Text, type or paste the identifiers again, and save again`,
        );
      }
    }

    const researchId = cell(col.researchId);
    if (researchId === '') fail(words`${idName} is empty`);
    else if (!isValidResearchId(researchId)) {
      fail(
        words`${idName} ${v(researchId)} is not allowed: use 1-${MAX_RESEARCH_ID_LENGTH} letters, digits, "_", "-" or "." (not first or last)`,
      );
    } else if (researchId === mrn || researchId === accession) {
      fail(
        words`${idName} ${v(researchId)} equals the row's ${researchId === mrn ? mrnName : accName}; it must not be an identifier`,
      );
    }

    const surgeryDate = cell(col.surgeryDate);
    if (surgeryDate === '') fail(words`${surgeryName} is empty (expected YYYY-MM-DD)`);
    else if (!isValidIsoDate(surgeryDate)) {
      fail(
        words`${surgeryName} ${v(surgeryDate)} is not a valid YYYY-MM-DD date${looksLikeExcelDate(surgeryDate) ? dateHint : ''}`,
      );
    }
    const anchorRaw = cell(col.anchorDate);
    const anchorDate = anchorRaw === '' ? DEFAULT_ANCHOR_DATE : anchorRaw;
    if (!isValidIsoDate(anchorDate)) {
      fail(
        words`${anchorName} ${v(anchorDate)} is not a valid YYYY-MM-DD date${looksLikeExcelDate(anchorDate) ? dateHint : ''}`,
      );
    }

    // A real date far from today is a typo (9999-12-31, 0025-01-01): it would shift the studies'
    // dates by thousands of years, beyond what DICOM dates can hold (they would be emptied).
    if (isValidIsoDate(surgeryDate) && isValidIsoDate(anchorDate)) {
      const days = daysBetweenIso(surgeryDate, anchorDate);
      const shift = `dates would move by ${days} days (${Math.round(days / 365.2425)} years)`;
      for (const [name, value] of [
        [surgeryName, surgeryDate],
        [anchorName, anchorDate],
      ] as const) {
        const year = Number(value.slice(0, 4));
        if (year < MIN_YEAR || year > MAX_YEAR) {
          fail(words`${name} ${v(value)} is outside the years ${MIN_YEAR}-${MAX_YEAR} (check the year): ${shift}`);
        }
      }
    }

    notesRows.push({ line, researchId, mrn, accession, notes: cell(col.notes) });
    if (isValidResearchId(researchId)) idRows.push({ researchId, line });
    if (researchId !== '') {
      for (const [name, value, index] of [
        [mrnName, mrn, byMrn],
        [accName, accession, byAcc],
      ] as const) {
        if (value === null) continue;
        const prev = index.get(value);
        if (prev && prev.researchId !== researchId) {
          fail(
            words`${name} ${v(value)} is mapped to ${v(researchId)} but line ${prev.line} maps it to ${v(prev.researchId)}: one patient needs one research ID`,
          );
        }
        if (!prev) index.set(value, { researchId, line });
      }
    }
    if (!rowOk) continue;
    rows.push({
      line,
      mrn,
      accession,
      researchId,
      surgeryDate,
      anchorDate,
      dayOffset: daysBetweenIso(surgeryDate, anchorDate),
      notes: cell(col.notes),
    });
  }

  if (records.length === 0 && !read.problem) {
    add('error', 0, {
      text: 'no rows: the file has a header but no data rows',
      redacted: 'no rows: the file has a header but no data rows',
    });
  }

  // --- Across rows: AccessionNumbers that two research IDs would share; day offsets. ---
  const firstRowOf = new Map<string, { researchId: string; line: number }>();
  for (const r of idRows) if (!firstRowOf.has(r.researchId)) firstRowOf.set(r.researchId, r);
  const byPrefix = groupBy([...firstRowOf.values()], (r) => r.researchId.slice(0, ACCESSION_DISTINCT_LENGTH));
  for (const group of byPrefix.values()) {
    const [first, ...others] = group;
    for (const r of others) {
      const n = firstAccessionCollision(first!.researchId, r.researchId)!;
      add(
        'error',
        r.line,
        words`${idName} ${v(r.researchId)} and ${v(first!.researchId)} on line ${first!.line} would both give AccessionNumber ${v(newAccessionNumber(r.researchId, n))} (session ${n}), so a research PACS would merge the two patients' studies: an AccessionNumber holds 16 characters and longer research IDs are cut, so research IDs must differ within their first ${ACCESSION_DISTINCT_LENGTH} characters (IDs of at most ${ACCESSION_DISTINCT_LENGTH} characters always work)`,
      );
    }
  }
  for (const list of groupBy(rows, (r) => r.researchId).values()) {
    const offsets = new Set(list.map((r) => r.dayOffset));
    if (offsets.size < 2) continue;
    const detail = list.map((r) => `line ${r.line}: ${r.dayOffset} days`).join(', ');
    add(
      'warning',
      list[0]!.line,
      words`the rows of ${idName} ${v(list[0]!.researchId)} give different day offsets (${detail}, from ${surgeryName} and ${anchorName}), so the time between studies matched by different rows is not kept; each study takes the offset of the row it matches, and the audit log says which row a study matched by MRN alone used`,
    );
  }

  // --- Notes that hold an MRN, an Accession or a date (see notesIdentifiers.ts). ---
  if (col.notes >= 0) {
    const notesName = nameOf(col.notes, COLUMNS.notes);
    problems.push(...notesIdentifierProblems(notesRows, { notes: notesName, mrn: mrnName, accession: accName }));
  }

  // --- The encoding, when it was a guess: show what was read so the researcher can judge. ---
  if (result.encoding?.guessed) {
    let example: { line: number; name: string; value: string } | undefined;
    for (const r of [header, ...records]) {
      const i = r.cells.findIndex((c) => /[^\x00-\x7f]/.test(c));
      if (i >= 0) {
        example = {
          line: r.line,
          name: r === header ? 'the header' : nameOf(i, `column ${i + 1}`),
          value: r.cells[i]!.trim(),
        };
        break;
      }
    }
    const shown = example
      ? words`, e.g. line ${example.line}, ${example.name}: ${v(example.value)}`
      : { text: '', redacted: '' };
    add('warning', 0, {
      text: `read as Windows-1252, a guess (the file is not UTF-8 and has no byte order mark): check the accented letters${shown.text}; if they look wrong, ${SAVE_AS_CSV_UTF8}`,
      redacted: `read as Windows-1252, a guess (the file is not UTF-8 and has no byte order mark)${shown.redacted}`,
    });
  }

  result.rows = rows;
  return done();
}

/** The rows of a checked CSV; throws MappingError (every error, one per line) when it has errors. */
export function rowsOrThrow(csv: MappingCsv, source: string): MappingRow[] {
  if (csv.problems.some((p) => p.severity === 'error')) throw mappingErrorOf(csv.problems, source);
  return csv.rows;
}

/**
 * Parses and validates mapping CSV text (already decoded). Returns one MappingRow per non-empty
 * data row, in file order. Throws MappingError naming every error, one line each (`source line N:
 * ...`, or `line N: ...` without a source) when the file does not validate. Warnings are
 * dropped: use checkMappingCsv to see them.
 */
export function parseMappingCsv(text: string, source = ''): MappingRow[] {
  return rowsOrThrow(checkMappingCsv(text), source);
}
