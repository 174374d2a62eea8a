import { describe, expect, it } from 'vitest';
import {
  checkMappingCsv,
  isExcelScientific,
  isNoInformation,
  isValidResearchId,
  parseMappingCsv,
} from '../../../src/core/mapping/mappingCsv.js';
import { MappingError } from '../../../src/core/types.js';

const HEADER = 'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,Notes';

function expectError(text: string, ...parts: (string | RegExp)[]): MappingError {
  let caught: unknown;
  try {
    parseMappingCsv(text);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(MappingError);
  const e = caught as MappingError;
  expect(e.message).not.toContain('\n');
  for (const p of parts) {
    if (typeof p === 'string') expect(e.message).toContain(p);
    else expect(e.message).toMatch(p);
  }
  return e;
}

describe('parseMappingCsv: parsing', () => {
  it('parses a plain file and computes the day offset', () => {
    const rows = parseMappingCsv(`${HEADER}\n12345,A100,R001,2024-06-01,2024-06-15,first\n`);
    expect(rows).toEqual([
      {
        line: 2,
        mrn: '12345',
        accession: 'A100',
        researchId: 'R001',
        surgeryDate: '2024-06-01',
        anchorDate: '2024-06-15',
        dayOffset: 14,
        notes: 'first',
      },
    ]);
  });

  it('uses columns 1 and 2 whatever their header names; others by name, case-insensitive, trimmed, any order', () => {
    const rows = parseMappingCsv(
      ' Patient MRN ,Acc #, notes ,  surgery_date ,NEW_PATIENT_ID\n777,X9,hello,2020-02-28,P-7\n',
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ mrn: '777', accession: 'X9', researchId: 'P-7', notes: 'hello' });
    // Anchor_Date column absent: default 2024-06-15.
    expect(rows[0]!.anchorDate).toBe('2024-06-15');
    expect(rows[0]!.dayOffset).toBe(1569); // 2020-02-28 -> 2024-06-15 (2020 and 2024 leap days)
  });

  it('accepts what Excel writes: BOM, CRLF, quoted commas/doubled quotes/line breaks, blank rows, trailing lines', () => {
    const text =
      '\uFEFF' +
      [
        HEADER,
        '"00123","A,1","R_1",2024-01-01,,"said ""hi"", left"',
        ',,,,,',
        '',
        ' 00456 , A2 , R_2 , 2024-01-02 , 2024-01-03 ,"multi',
        'line note"',
        '777,_____,R_3,2024-02-29,,',
        '',
        '',
      ].join('\r\n');
    const rows = parseMappingCsv(text);
    expect(rows.map((r) => [r.line, r.mrn, r.accession, r.researchId, r.dayOffset, r.notes])).toEqual([
      [2, '00123', 'A,1', 'R_1', 166, 'said "hi", left'],
      [5, '00456', 'A2', 'R_2', 1, 'multi\r\nline note'],
      [7, '777', null, 'R_3', 107, ''],
    ]);
  });

  it('treats empty and 5+ underscore values as no information (null)', () => {
    const rows = parseMappingCsv(
      `${HEADER}\n__________,ACC1,R1,2024-01-01,,\n,ACC2,R2,2024-01-01,,\nM3,   ,R3,2024-01-01,,\nM4,____,R4,2024-01-01,,\n`,
    );
    expect(rows.map((r) => [r.mrn, r.accession])).toEqual([
      [null, 'ACC1'],
      [null, 'ACC2'],
      ['M3', null],
      ['M4', '____'], // only 4 underscores: a real value
    ]);
    expect(isNoInformation('x_____y')).toBe(true);
    expect(isNoInformation('a_b_c_d_e_f')).toBe(false);
  });

  it('allows one MRN with the same research ID on several rows (several accessions)', () => {
    const rows = parseMappingCsv(`${HEADER}\nM1,A1,R1,2024-01-01,,\nM1,A2,R1,2024-03-01,,\n`);
    expect(rows).toHaveLength(2);
  });

  it('counts lines in LF and lone-CR files too', () => {
    expect(parseMappingCsv(`${HEADER}\n\nM1,A1,R1,2024-01-01,,\n\n\nM2,A2,R2,2024-01-01,,`).map((r) => r.line)).toEqual(
      [3, 6],
    );
    expect(parseMappingCsv(`${HEADER}\r\rM1,A1,R1,2024-01-01,,\r`).map((r) => r.line)).toEqual([3]);
    expect(() => parseMappingCsv(`${HEADER}\r\rM1,A1,R1,2024-01-32,,`)).toThrow(/^line 3: /);
  });

  it('refuses a header-only file: "no rows"', () => {
    expectError(`${HEADER}\r\n\r\n`, 'no rows');
  });

  it('prefixes the source name when given', () => {
    expect(() => parseMappingCsv(`${HEADER}\nM1,A1,R1,2023-13-01,,`, 'mapping.csv')).toThrow(
      'mapping.csv line 2: Surgery_Date "2023-13-01" is not a valid YYYY-MM-DD date',
    );
  });
});

describe('parseMappingCsv: validation errors', () => {
  it('bad Surgery_Date (month 13, Feb 29 in a non-leap year, other formats, empty)', () => {
    expectError(
      `${HEADER}\nM1,A1,R1,2024-01-01,,\nM2,A2,R2,2024-01-01,,\nM3,A3,R3,2023-13-01,,`,
      'line 4: Surgery_Date "2023-13-01" is not a valid YYYY-MM-DD date',
    );
    expectError(`${HEADER}\nM1,A1,R1,2023-02-29,,`, 'line 2', '"2023-02-29"');
    expectError(`${HEADER}\nM1,A1,R1,6/15/2024,,`, 'line 2', '"6/15/2024"');
    expectError(`${HEADER}\nM1,A1,R1,,,`, 'line 2', 'Surgery_Date is empty');
  });

  it('bad Anchor_Date', () => {
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,2024-02-30,`, 'line 2: Anchor_Date "2024-02-30"');
  });

  it('missing required columns', () => {
    expectError('MRN,Accession,Surgery_Date\nM1,A1,2024-01-01', 'line 1', 'the header has no New_Patient_ID column');
    expectError('MRN,Accession,New_Patient_ID\nM1,A1,R1', 'line 1', 'the header has no Surgery_Date column');
  });

  it('fewer than 2 columns / empty file', () => {
    expectError('MRN\n1', 'line 1', 'header has 1 column');
    expectError('', 'the file is empty');
  });

  it('empty New_Patient_ID', () => {
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,,\nM2,A2,  ,2024-01-01,,`, 'line 3: New_Patient_ID is empty');
  });

  it('research IDs that cannot be a folder name / LO value', () => {
    for (const bad of ['a/b', 'a\\\\b', '..', '.', '.hidden', 'x'.repeat(65), 'has space', 'é', 'CON', 'trail.']) {
      const csvValue = bad.includes(',') || bad.includes('"') ? `"${bad}"` : bad;
      const e = expectError(`${HEADER}\nM1,A1,${csvValue},2024-01-01,,`, 'line 2', 'New_Patient_ID');
      expect(e.message).toContain(JSON.stringify(bad.length > 80 ? bad.slice(0, 77) + '...' : bad));
    }
    expect(isValidResearchId('x'.repeat(64))).toBe(true);
    expect(isValidResearchId('R.1_a-B')).toBe(true);
  });

  it('research ID equal to the MRN or accession (would leak the identifier)', () => {
    expectError(`${HEADER}\nM1,A1,M1,2024-01-01,,`, 'line 2', '"M1"', 'MRN');
  });

  it('same MRN or Accession mapped to two research IDs', () => {
    expectError(
      `${HEADER}\nM1,A1,R1,2024-01-01,,\nM2,A2,R2,2024-01-01,,\nM1,A3,R9,2024-01-01,,`,
      'line 4',
      'MRN "M1"',
      '"R9"',
      'line 2',
      '"R1"',
    );
    expectError(
      `${HEADER}\nM1,A1,R1,2024-01-01,,\nM2,A1,R2,2024-01-01,,`,
      'line 3',
      'Accession "A1"',
      '"R2"',
      'line 2',
    );
  });

  it('row where both MRN and Accession are no information', () => {
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,,\n_____, ,R2,2024-01-01,,`, 'line 3', 'can never match', '"_____"');
  });

  it('values beyond the header columns', () => {
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,,,oops`, 'line 2', '"oops"', 'column 7');
  });

  it('malformed quoting', () => {
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,,"unterminated`, /^line 2: a quoted value .* never closed/);
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,,Left 5" cut`, /^line 2: a quote mark/);
  });
});

describe('checkMappingCsv: what Excel does to a file', () => {
  const errors = (text: string) =>
    checkMappingCsv(text)
      .problems.filter((p) => p.severity === 'error')
      .map((p) => `${p.line}: ${p.text}`);
  const warnings = (text: string) =>
    checkMappingCsv(text)
      .problems.filter((p) => p.severity === 'warning')
      .map((p) => `${p.line}: ${p.text}`);

  it('finds columns by header ignoring case, spaces, hyphens and underscores; quotes headers as written', () => {
    const csv = checkMappingCsv(
      'MRN,Accession,New Patient ID,surgery-date,ANCHOR DATE,notes\nM1,A1,R1,2024-01-01,2024-01-11,n\n',
    );
    expect(csv.problems).toEqual([]);
    expect(csv.rows[0]).toMatchObject({ researchId: 'R1', dayOffset: 10, notes: 'n' });
    expect(errors('MRN,Accession,New Patient ID,surgery-date\nM1,A1,R1,2024-13-01\n')).toEqual([
      '2: surgery-date "2024-13-01" is not a valid YYYY-MM-DD date',
    ]);
    expect(errors('MRN,Accession,New Patient ID,Surgery Date,SURGERY_DATE\nM1,A1,R1,2024-01-01,2024-01-01\n')).toEqual([
      '1: column Surgery_Date appears 2 times in the header ("Surgery Date", "SURGERY_DATE", columns 4, 5): keep one',
    ]);
  });

  it('detects ";" and tab separators from the header; commas stay inside values', () => {
    const semi = checkMappingCsv(
      'MRN;Accession;New_Patient_ID;Surgery_Date;Notes\r\nM1;A1;R1;2024-01-01;left, revision\r\n',
    );
    expect(semi.delimiter).toBe(';');
    expect(semi.rows[0]!.notes).toBe('left, revision');
    const tab = checkMappingCsv('MRN\tAccession\tNew_Patient_ID\tSurgery_Date\nM1\tA1\tR1\t2024-01-01\n');
    expect(tab.delimiter).toBe('\t');
    expect(tab.rows).toHaveLength(1);
    expect(checkMappingCsv('MRN,Accession,New_Patient_ID,Surgery_Date\nM1,A1,R1,2024-01-01\n').delimiter).toBe(',');
  });

  it('a header that no separator splits: says which separators work', () => {
    expect(errors('MRN|Accession|New_Patient_ID|Surgery_Date\n1|2|R|2024-01-01\n')[0]).toMatch(
      /^1: the header has 1 column\(s\) \("MRN\|Accession\|New_Patient_ID\|Surgery_Date"\).*commas, semicolons or tabs/,
    );
  });

  it('every problem of every row, each on its own, in line order', () => {
    const text = [
      'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date',
      'M1,A1,R1,2024-02-30,2024-13-01',
      'M2,A2,,2024-01-01,',
      'M3,A3,R3,2024-01-01,',
      'M1,A4,R9,2024-01-01,',
    ].join('\n');
    expect(errors(text)).toEqual([
      '2: Surgery_Date "2024-02-30" is not a valid YYYY-MM-DD date',
      '2: Anchor_Date "2024-13-01" is not a valid YYYY-MM-DD date',
      '3: New_Patient_ID is empty',
      '5: MRN "M1" is mapped to "R9" but line 2 maps it to "R1": one patient needs one research ID',
    ]);
    const e = (() => {
      try {
        parseMappingCsv(text, 'mapping.csv');
      } catch (err) {
        return err as MappingError;
      }
      throw new Error('no error');
    })();
    expect(e.message.split('\n')).toHaveLength(4);
    expect(e.message.split('\n')[0]).toBe(
      'mapping.csv line 2: Surgery_Date "2024-02-30" is not a valid YYYY-MM-DD date',
    );
    expect(e.problems).toHaveLength(4);
  });

  it('refuses identifiers Excel turned into numbers, with the fix', () => {
    expect(
      errors(
        'MRN,Accession,New_Patient_ID,Surgery_Date\n1.23457E+11,A1,R1,2024-01-01\nM2,"1,23457E+11",R2,2024-01-01\n',
      ),
    ).toEqual([
      '2: MRN "1.23457E+11" is a number Excel rewrote in scientific notation, not the identifier: in Excel, format the column as Text, type or paste the identifiers again, and save again',
      '3: Accession "1,23457E+11" is a number Excel rewrote in scientific notation, not the identifier: in Excel, format the column as Text, type or paste the identifiers again, and save again',
    ]);
    expect(isExcelScientific('1E5')).toBe(true);
    expect(isExcelScientific('A1E5')).toBe(false);
    expect(isExcelScientific('12345')).toBe(false);
  });

  it('explains dates Excel wrote in the local format, not a real date in the right format', () => {
    const [local, serial, wrongDay] = errors(
      'MRN,Accession,New_Patient_ID,Surgery_Date\nM1,A1,R1,3/10/2023\nM2,A2,R2,45000\nM3,A3,R3,2023-02-29\n',
    );
    expect(local).toMatch(
      /"3\/10\/2023" is not a valid YYYY-MM-DD date \(Excel writes dates in your computer's format/,
    );
    expect(serial).toMatch(/"45000" is not a valid YYYY-MM-DD date \(Excel writes dates/);
    expect(wrongDay).toBe('4: Surgery_Date "2023-02-29" is not a valid YYYY-MM-DD date');
  });

  it('refuses a Surgery_Date or Anchor_Date before 1900 or after 2100 (a typo that would shift dates out of DICOM range)', () => {
    const text = [
      'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date',
      'M1,,R1,2025-01-01,9999-12-31',
      'M2,,R2,0025-01-01,',
      'M3,,R3,1899-12-31,2101-01-01',
      'M4,,R4,1900-01-01,2100-12-31',
    ].join('\n');
    expect(errors(text)).toEqual([
      '2: Anchor_Date "9999-12-31" is outside the years 1900-2100 (check the year): dates would move by 2912807 days (7975 years)',
      '3: Surgery_Date "0025-01-01" is outside the years 1900-2100 (check the year): dates would move by 730285 days (1999 years)',
      '4: Surgery_Date "1899-12-31" is outside the years 1900-2100 (check the year): dates would move by 73415 days (201 years)',
      '4: Anchor_Date "2101-01-01" is outside the years 1900-2100 (check the year): dates would move by 73415 days (201 years)',
    ]);
    // The redacted wording (for the node's log) does not show the date.
    const redacted = checkMappingCsv(text).problems.map((p) => p.redacted);
    expect(redacted.join('\n')).not.toMatch(/9999|0025|1899|2101/);
    expect(warnings(text)).toEqual([]);
  });

  it('warns when Notes hold an MRN, an Accession or a date, naming line and column, never the value', () => {
    const text = [
      'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,NOTES',
      'MRN1001,ACC5001,R1,2025-01-01,,"Pt Testpat Alpha, MRN1001, DOB 14.02.1960, surgery 2025-03-14"',
      'MRN1002,ACC5002,R2,2025-01-01,,acc 5001 was the first; ACC-5002 this one',
      'MRN1003,,R3,2025-01-01,,seen 03/14/2025 and 20250314',
      'MRN1004,,R4,2025-01-01,,"left side, revision; grade 2 of 4, 12 mm, protocol v1.2.3"',
      'MRN1005,,R5,2025-01-01,,',
    ].join('\n');
    const csv = checkMappingCsv(text);
    expect(csv.problems.filter((p) => p.severity === 'error')).toEqual([]);
    expect(warnings(text)).toEqual([
      "2: NOTES holds this row's MRN and a date: notes are copied into every file of the patient and into notes.txt; remove identifiers from NOTES",
      "3: NOTES holds this row's Accession and another patient's Accession: notes are copied into every file of the patient and into notes.txt; remove identifiers from NOTES",
      '4: NOTES holds a date: notes are copied into every file of the patient and into notes.txt; remove identifiers from NOTES',
    ]);
    // No value in either wording; the rows are still usable (a warning, not an error).
    for (const p of csv.problems) expect(p.redacted).toBe(p.text);
    expect(csv.rows).toHaveLength(5);
  });

  it("gives the Excel hint for Excel's other date displays too, naming line and column", () => {
    const list = errors(
      [
        'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date',
        'M1,A1,R1,14-Mar-25,',
        'M2,A2,R2,2024-01-01,14-Mar-2025',
        'M3,A3,R3,"Mar 14, 2025",',
        'M4,A4,R4,14.03.2025,',
        'M5,A5,R5,14 March 2025,',
        'M6,A6,R6,soon,',
      ].join('\n'),
    );
    const hint = " (Excel writes dates in your computer's format";
    expect(list.map((e) => e.slice(0, e.indexOf(' is not'))).slice(0, 5)).toEqual([
      '2: Surgery_Date "14-Mar-25"',
      '3: Anchor_Date "14-Mar-2025"',
      '4: Surgery_Date "Mar 14, 2025"',
      '5: Surgery_Date "14.03.2025"',
      '6: Surgery_Date "14 March 2025"',
    ]);
    for (const e of list.slice(0, 5)) expect(e).toContain(hint);
    expect(list[5]).toBe('7: Surgery_Date "soon" is not a valid YYYY-MM-DD date');
  });

  it('accession collisions: every later ID against the first of its group, across rows with other errors', () => {
    const text = [
      'MRN,Accession,New_Patient_ID,Surgery_Date',
      'M1,A1,STUDY_2025_P001,2024-01-01',
      'M2,A2,STUDY_2025_P002,bad',
      'M3,A3,STUDY_2025_P003,2024-01-01',
      'M4,A4,STUDY_2025_P001,2024-01-01', // the same patient again: no collision with itself
      'M5,A5,SHORT01,2024-01-01',
    ].join('\n');
    const list = errors(text);
    expect(list).toHaveLength(3);
    expect(list[1]).toMatch(
      /^3: New_Patient_ID "STUDY_2025_P002" and "STUDY_2025_P001" on line 2 would both give AccessionNumber "STUDY_2025_P00_1" \(session 1\)/,
    );
    expect(list[2]).toMatch(
      /^4: New_Patient_ID "STUDY_2025_P003" and "STUDY_2025_P001" on line 2 .* first 11 characters/,
    );
    // Distinct from the 12th character on: accepted (collide only beyond session 9999).
    expect(
      errors(
        'MRN,Accession,New_Patient_ID,Surgery_Date\nM1,A1,ABCDEFGHIJK_1,2024-01-01\nM2,A2,ABCDEFGHIJX_1,2024-01-01\n',
      ),
    ).toEqual([]);
  });

  it('warns when the rows of one research ID give different day offsets, naming the rows', () => {
    const text =
      'MRN,Accession,New_Patient_ID,Surgery_Date\nM1,A1,R1,2024-01-01\nM1,A2,R1,2024-05-31\nM2,A3,R2,2024-01-01\nM2,A4,R2,2024-01-01\n';
    expect(warnings(text)).toEqual([
      '2: the rows of New_Patient_ID "R1" give different day offsets (line 2: 166 days, line 3: 15 days, from Surgery_Date and Anchor_Date), so the time between studies matched by different rows is not kept; each study takes the offset of the row it matches, and the audit log says which row a study matched by MRN alone used',
    ]);
    expect(checkMappingCsv(text).rows).toHaveLength(4); // a warning does not refuse the file
  });

  it('every problem also has a wording without any value from the file (for logs)', () => {
    const values = ['SECRET_MRN_1', 'SECRET_ACC_9', 'RID_X1', 'RID_X2', '2024-02-30', '1.2E+11', 'Bad Id!'];
    const text = [
      'MRN,Accession,New_Patient_ID,Surgery_Date',
      `${values[0]},${values[1]},${values[2]},${values[4]}`,
      `${values[0]},A2,${values[3]},2024-01-01`,
      `M3,${values[5]},${values[6]},2024-01-01`,
      'M4,A4,LONG_RESEARCH_1,2024-01-01',
      'M5,A5,LONG_RESEARCH_2,2024-01-01',
    ].join('\n');
    const problems = checkMappingCsv(text).problems;
    expect(problems.length).toBeGreaterThanOrEqual(5);
    for (const p of problems) {
      expect(p.redacted).toContain('(value not shown)');
      for (const value of [...values, 'LONG_RESEARCH']) expect(p.redacted).not.toContain(value);
    }
  });
});
