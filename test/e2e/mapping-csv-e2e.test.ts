// End-to-end: mapping CSVs as Excel writes them (Windows-1252, UTF-16LE "Unicode text", UTF-8
// with BOM; `;` and tab separators; CRLF; header variants; workbooks; `1.23457E+11`) through the
// built CLI (`batch`, `check-csv`), checking exit codes, messages and the bytes written
// (PatientComments read back by pydicom, notes.txt as UTF-8).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(import.meta.dirname, '../..');
const cli = path.join(repo, 'dist', 'cli.js');
const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
let tmp: string;
let raw: string;

const NOTES = 'Hüfte rechts – revision';

/** Windows-1252 bytes, written out by hand (not with the library under test). */
function cp1252(text: string): Buffer {
  const special: Record<string, number> = { '–': 0x96, '€': 0x80, '’': 0x92 };
  return Buffer.from(
    [...text].map((ch) => {
      if (special[ch] !== undefined) return special[ch];
      const c = ch.codePointAt(0)!;
      if (c < 0x80 || (c >= 0xa0 && c <= 0xff)) return c;
      throw new Error(`no Windows-1252 byte for ${ch} in this test`);
    }),
  );
}

/** Excel's "Unicode text": UTF-16LE with a BOM. */
function utf16le(text: string): Buffer {
  return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
}

function utf8bom(text: string): Buffer {
  return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text, 'utf8')]);
}

/** The rows of every variant: header line 1, rows on lines 2-5. */
function table(sep: string, header: string[]): string {
  return (
    [
      header,
      ['1001', 'A1', 'RES001', '2023-03-10', '2024-06-15', NOTES],
      ['12345', 'A12345', 'RES002', '2023-01-01', '', ''],
      ['2002', 'B1', 'RES003', '2023-03-10', '2024-06-15', ''],
      ['2002', 'B2', 'RES003', '2023-08-08', '2024-06-15', ''],
    ]
      .map((r) => r.join(sep))
      .join('\r\n') + '\r\n'
  );
}

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, DEBUG: '' } });
}

/** A CSV in a folder of its own (its state and audit log go beside it). */
function writeCsv(name: string, bytes: Buffer): string {
  const dir = fs.mkdtempSync(path.join(tmp, 'case-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

function batch(csv: string) {
  const out = path.join(path.dirname(csv), 'out');
  const r = run(['batch', '--csv', csv, '--input', raw, '--output', out, '--workers', '1']);
  return { ...r, out };
}

function audit(csv: string): Record<string, string>[] {
  const dir = path.join(path.dirname(csv), 'dicom-deid-logs');
  const file = fs.readdirSync(dir).find((f) => f.startsWith('deid_log_'))!;
  return parse(fs.readFileSync(path.join(dir, file), 'utf8'), { columns: true, bom: true }) as Record<string, string>[];
}

function pydicomValue(file: string, keyword: string): string {
  return execFileSync(
    python,
    [
      '-c',
      'import sys, pydicom; ds = pydicom.dcmread(sys.argv[1]); sys.stdout.buffer.write(str(getattr(ds, sys.argv[2])).encode("utf-8"))',
      file,
      keyword,
    ],
    { encoding: 'utf8' },
  );
}

function stderrLines(r: { stderr: string }): string[] {
  return r.stderr.split('\n').filter((l) => l !== '');
}

beforeAll(() => {
  if (!fs.existsSync(cli)) execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repo, stdio: 'pipe' });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-csv-e2e-'));
  raw = path.join(tmp, 'Raw_Scans');
  const spec = {
    files: [
      { path: path.join(raw, 'Mueller_Hans', 'S1', 'a.dcm'), patientId: '1001', accession: 'A1' },
      // Excel turned the CSV's 0012345 into 12345: must not match, but must be pointed out.
      { path: path.join(raw, 'Zero_Zoe', 'S1', 'z.dcm'), patientId: '0012345', accession: 'AZ9' },
      // Matched by MRN alone; the patient's two rows disagree on the day offset.
      { path: path.join(raw, 'Multi_Max', 'S1', 'm.dcm'), patientId: '2002', accession: 'NOTINCSV' },
    ],
  };
  fs.writeFileSync(path.join(tmp, 'spec.json'), JSON.stringify(spec));
  execFileSync(python, [path.join(repo, 'test', 'fixtures', 'make_csv_scans.py'), path.join(tmp, 'spec.json')]);
});

afterAll(() => {
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

/** What every accepted variant must produce: exact notes, the two notes of the lookup. */
function expectGoodRun(csv: string, r: ReturnType<typeof batch>): void {
  expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  expect(r.status).toBe(1); // Zero_Zoe is not matched
  const session = path.join(r.out, 'RES001', 'RES001_1');
  const comments = pydicomValue(path.join(session, 'a.dcm'), 'PatientComments');
  expect(comments).toBe(`IMPORT_NOTES: ${NOTES}`);
  expect(fs.readFileSync(path.join(session, 'notes.txt'))).toEqual(Buffer.from(`${NOTES}\n`, 'utf8'));

  const rows = audit(csv);
  const zero = rows.find((x) => x.source_path === 'Zero_Zoe/S1/z.dcm')!;
  expect(zero.status).toBe('no-mapping');
  expect(zero.message).toMatch(/MRN on line 3 looks like this PatientID without its leading zeros/);
  expect(r.stdout).toMatch(/1 unmatched file would match the MRN or Accession on CSV line 3 with leading zeros/);
  expect(r.stdout).not.toMatch(/12345/); // the summary names lines, never values

  const multi = rows.find((x) => x.source_path === 'Multi_Max/S1/m.dcm')!;
  expect(multi.status).toBe('ok');
  expect(multi.matched_by).toBe('mrn');
  expect(multi.day_offset).toBe('463'); // line 4: 2023-03-10 -> 2024-06-15
  expect(multi.message).toMatch(/line 4: 463 days, line 5: 312 days\): used line 4's/);
  expect(pydicomValue(path.join(r.out, 'RES003', 'RES003_1', 'm.dcm'), 'StudyDate')).toBe('20240615');
}

describe('mapping CSV encodings and separators, through batch', () => {
  it('Windows-1252, ";"-separated, header variants: read exactly, and the guess is stated', () => {
    const header = ['MRN', 'Accession', 'New Patient ID', 'Surgery Date', 'anchor-date', 'NOTES'];
    const csv = writeCsv('mapping.csv', cp1252(table(';', header)));
    const r = batch(csv);
    expectGoodRun(csv, r);
    const warnings = stderrLines(r).filter((l) => l.includes('Windows-1252'));
    expect(warnings).toEqual([
      `dicom-deid: warning: mapping.csv: read as Windows-1252, a guess (the file is not UTF-8 and has no byte order mark): check the accented letters, e.g. line 2, NOTES: "${NOTES}"; if they look wrong, in Excel, use File > Save As and choose "CSV UTF-8 (Comma delimited) (*.csv)", then use that file`,
    ]);
    // The day-offset disagreement is warned about, naming the rows and the headers as written.
    expect(r.stderr).toMatch(
      /warning: mapping\.csv line 4: the rows of New Patient ID "RES003" give different day offsets \(line 4: 463 days, line 5: 312 days, from Surgery Date and anchor-date\)/,
    );
  });

  it('UTF-16LE with BOM, tab-separated (Excel "Unicode text"): no guess, same bytes out', () => {
    const header = ['MRN', 'Accession', 'New_Patient_ID', 'Surgery_Date', 'Anchor_Date', 'Notes'];
    const csv = writeCsv('mapping.txt', utf16le(table('\t', header)));
    const r = batch(csv);
    expectGoodRun(csv, r);
    expect(r.stderr).not.toMatch(/Windows-1252|guess/);
  });

  it('UTF-8 with BOM, comma-separated, CRLF: no guess, same bytes out', () => {
    const header = ['Patient MRN', 'Acc #', 'new_patient_id', 'SURGERY-DATE', 'Anchor Date', 'notes'];
    const csv = writeCsv('mapping.csv', utf8bom(table(',', header).replace(NOTES, `"${NOTES}"`)));
    const r = batch(csv);
    expectGoodRun(csv, r);
    expect(r.stderr).not.toMatch(/Windows-1252|guess/);
  });

  it('refuses bytes it cannot decode exactly, saying what to do; nothing is written', () => {
    const header = ['MRN', 'Accession', 'New_Patient_ID', 'Surgery_Date', 'Anchor_Date', 'Notes'];
    // 0x81 is no Windows-1252 character (and not UTF-8): no reading is exact.
    const bad = Buffer.concat([
      cp1252(table(',', header)),
      Buffer.from('3003,C1,RES009,2023-01-01,,x\x81y\r\n', 'latin1'),
    ]);
    const csv = writeCsv('mapping.csv', bad);
    const r = batch(csv);
    expect(r.status).toBe(2);
    expect(stderrLines(r)).toEqual([
      'dicom-deid: mapping.csv line 6: the file is not UTF-8, and this line holds a byte that is no Windows-1252 character either: in Excel, use File > Save As and choose "CSV UTF-8 (Comma delimited) (*.csv)", then use that file',
    ]);
    expect(fs.existsSync(r.out)).toBe(false);
    expect(fs.existsSync(path.join(path.dirname(csv), 'dicom-deid-logs'))).toBe(false);

    // UTF-16 saved without its byte order mark: NULs everywhere.
    const noBom = writeCsv('mapping.csv', Buffer.from(table(',', header), 'utf16le'));
    const r2 = batch(noBom);
    expect(r2.status).toBe(2);
    expect(r2.stderr).toMatch(
      /line 1: this line holds NUL characters: the file looks like UTF-16 .* without its byte order mark/,
    );
  });

  it('refuses an Excel workbook given as --csv', () => {
    // The start of a real .xlsx: a zip local file header.
    const xlsx = Buffer.concat([Buffer.from('PK\x03\x04\x14\x00\x06\x00', 'latin1'), Buffer.alloc(100)]);
    const csv = writeCsv('mapping.xlsx', xlsx);
    const r = batch(csv);
    expect(r.status).toBe(2);
    expect(stderrLines(r)).toEqual([
      'dicom-deid: mapping.xlsx: this is an Excel workbook (.xlsx) or another zipped document, not a CSV: in Excel, use File > Save As and choose "CSV UTF-8 (Comma delimited) (*.csv)", then use that file',
    ]);
  });
});

describe('mapping CSV problems, through batch', () => {
  it('reports every problem at once, one per line, naming line, column and value', () => {
    const lines = ['MRN;Accession;New Patient ID;Surgery Date'];
    // Excel damage: an accession as a number, dates in the computer's format.
    lines.push('1001;1.23457E+11;RES001;2023-03-10');
    for (let i = 0; i < 5; i++) lines.push(`20${i};B${i};RES1${i};${10 + i}.03.2023`);
    const csv = writeCsv('mapping.csv', Buffer.from(lines.join('\r\n') + '\r\n'));
    const r = batch(csv);
    expect(r.status).toBe(2);
    const out = stderrLines(r);
    expect(out).toHaveLength(6);
    expect(out[0]).toBe(
      'dicom-deid: mapping.csv line 2: Accession "1.23457E+11" is a number Excel rewrote in scientific notation, not the identifier: in Excel, format the column as Text, type or paste the identifiers again, and save again',
    );
    for (let i = 0; i < 5; i++) {
      expect(out[i + 1]).toMatch(
        new RegExp(
          `^dicom-deid: mapping\\.csv line ${i + 3}: Surgery Date "${10 + i}\\.03\\.2023" is not a valid YYYY-MM-DD date \\(Excel writes dates`,
        ),
      );
    }
    expect(fs.existsSync(r.out)).toBe(false);
  });

  it('caps the list and counts the rest', () => {
    const lines = ['MRN,Accession,New_Patient_ID,Surgery_Date'];
    for (let i = 0; i < 40; i++) lines.push(`M${i},A${i},R${i},2023-02-30`);
    const r = batch(writeCsv('mapping.csv', Buffer.from(lines.join('\n'))));
    expect(r.status).toBe(2);
    const out = stderrLines(r);
    expect(out).toHaveLength(26);
    expect(out[24]).toMatch(/^dicom-deid: mapping\.csv line 26: Surgery_Date "2023-02-30"/);
    expect(out[25]).toBe('dicom-deid: mapping.csv: ... and 15 more problems');
  });

  it('a header-only CSV is an error ("no rows"), not a walk that reports every file unmatched', () => {
    const csv = writeCsv('mapping.csv', Buffer.from('MRN,Accession,New_Patient_ID,Surgery_Date\r\n\r\n'));
    const r = batch(csv);
    expect(r.status).toBe(2);
    expect(stderrLines(r)).toEqual(['dicom-deid: mapping.csv: no rows: the file has a header but no data rows']);
    expect(fs.existsSync(path.join(path.dirname(csv), 'dicom-deid-logs'))).toBe(false);
  });

  it('refuses two research IDs that would give the same AccessionNumber, naming both rows and the length that works', () => {
    const csv = writeCsv(
      'mapping.csv',
      Buffer.from(
        'MRN,Accession,New_Patient_ID,Surgery_Date\n1,A,TRIAL2025_SITEA_0001,2023-01-01\n2,B,SHORT_ID,2023-01-01\n3,C,TRIAL2025_SITEA_0002,2023-01-01\n',
      ),
    );
    const r = batch(csv);
    expect(r.status).toBe(2);
    expect(stderrLines(r)).toEqual([
      `dicom-deid: mapping.csv line 4: New_Patient_ID "TRIAL2025_SITEA_0002" and "TRIAL2025_SITEA_0001" on line 2 would both give AccessionNumber "TRIAL2025_SITE_1" (session 1), so a research PACS would merge the two patients' studies: an AccessionNumber holds 16 characters and longer research IDs are cut, so research IDs must differ within their first 11 characters (IDs of at most 11 characters always work)`,
    ]);
  });

  it('says "not found" and "is a folder", never ENOENT or EISDIR', () => {
    let r = run(['batch', '--csv', path.join(tmp, 'none.csv'), '--input', raw, '--output', path.join(tmp, 'o')]);
    expect(r.status).toBe(2);
    expect(stderrLines(r)).toEqual([
      `dicom-deid: cannot read the mapping CSV ${path.join(tmp, 'none.csv')}: not found`,
    ]);
    r = run(['check-csv', raw]);
    expect(r.status).toBe(2);
    expect(stderrLines(r)).toEqual([`dicom-deid: cannot read the mapping CSV ${raw}: is a folder`]);
  });
});

describe('check-csv', () => {
  it('prints the row count, the research IDs and how the file was read', () => {
    const header = ['MRN', 'Accession', 'New Patient ID', 'Surgery Date', 'anchor-date', 'NOTES'];
    const csv = writeCsv('mapping.csv', cp1252(table(';', header)));
    const r = run(['check-csv', csv]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(
      [
        'mapping.csv: valid: 4 rows, 3 research IDs (Windows-1252 (a guess), semicolon-separated)',
        'Research IDs:',
        '  RES001  line 2; day offset 463',
        '  RES002  line 3; day offset 531',
        '  RES003  lines 4, 5; day offset 463 / 312',
        '',
      ].join('\n'),
    );
    expect(stderrLines(r)).toHaveLength(2); // the encoding guess and the day offsets, as warnings
    expect(r.stderr).toMatch(/^dicom-deid: warning: mapping\.csv: read as Windows-1252, a guess/);
  });

  it('reports every problem and exits 2; writes nothing beside the CSV', () => {
    const csv = writeCsv(
      'mapping.csv',
      Buffer.from('MRN,Accession,New_Patient_ID,Surgery_Date\nM1,A1,R1,2023-02-30\nM2,A2,,2023-01-01\n'),
    );
    const r = run(['check-csv', csv]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(stderrLines(r)).toEqual([
      'dicom-deid: mapping.csv line 2: Surgery_Date "2023-02-30" is not a valid YYYY-MM-DD date',
      'dicom-deid: mapping.csv line 3: New_Patient_ID is empty',
    ]);
    expect(fs.readdirSync(path.dirname(csv))).toEqual(['mapping.csv']);
  });

  // Found by a new-user trial: notes holding the row's MRN and a birth date passed as valid.
  it('warns about Notes holding an MRN or a date (line and column, no value); valid, exit 0', () => {
    const csv = writeCsv(
      'mapping.csv',
      Buffer.from(
        'MRN,Accession,New_Patient_ID,Surgery_Date,Notes\n' +
          'MRN1001,,R1,2025-01-01,left side\n' +
          'MRN1002,,R2,2025-01-01,"Pt Testpat Beta, MRN1002, DOB 14.02.1960, surgery 2025-03-14"\n',
      ),
    );
    const r = run(['check-csv', csv]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^mapping\.csv: valid: 2 rows/);
    expect(stderrLines(r)).toEqual([
      "dicom-deid: warning: mapping.csv line 3: Notes holds this row's MRN and a date: notes are copied into every file of the patient and into notes.txt; remove identifiers from Notes",
    ]);
  });

  // Found by a new-user trial: Anchor_Date 9999-12-31 passed, and batch emptied the study dates.
  it('refuses an Anchor_Date far outside 1900-2100 (exit 2), naming line and column', () => {
    const csv = writeCsv(
      'mapping.csv',
      Buffer.from('MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date\nMRN1001,,R2,2025-01-01,9999-12-31\n'),
    );
    const r = run(['check-csv', csv]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(stderrLines(r)).toEqual([
      'dicom-deid: mapping.csv line 2: Anchor_Date "9999-12-31" is outside the years 1900-2100 (check the year): dates would move by 2912807 days (7975 years)',
    ]);
  });

  // Found by a new-user trial: an unclosed quote was the only problem shown, hiding the rest.
  it('a quote never closed is named at the line it opens, after the problems of the lines above it', () => {
    const csv = writeCsv(
      'mapping.csv',
      Buffer.from(
        'MRN,Accession,New_Patient_ID,Surgery_Date,Notes\r\n' +
          'M1,A1,R1,2023-02-30,"two\r\nlines, quoted"\r\n' + // lines 2-3: a bad date
          'M2,A2,R 2,2023-01-01,\r\n' + // line 4: a bad research ID
          'M3,A3,R3,2023-01-05,"left\r\n' + // line 5: the quote never closed
          'open\r\nM4,A4,,2023-01-06,\r\n',
      ),
    );
    const r = run(['check-csv', csv]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(stderrLines(r)).toEqual([
      'dicom-deid: mapping.csv line 2: Surgery_Date "2023-02-30" is not a valid YYYY-MM-DD date',
      'dicom-deid: mapping.csv line 4: New_Patient_ID "R 2" is not allowed: use 1-64 letters, digits, "_", "-" or "." (not first or last)',
      'dicom-deid: mapping.csv line 5: a quoted value that starts on this line is never closed (a missing "): the lines after it could not be checked',
    ]);
    // A second line of the same record opening the quote: named by that line, not the record's first.
    const second = writeCsv(
      'mapping.csv',
      Buffer.from('MRN,Accession,New_Patient_ID,Surgery_Date,Notes,Extra\nM1,A1,R1,2023-02-01,"a\nb","open\nM2\n'),
    );
    expect(stderrLines(run(['check-csv', second]))).toEqual([
      'dicom-deid: mapping.csv line 3: a quoted value that starts on this line is never closed (a missing "): the lines after it could not be checked',
    ]);
  });
});
